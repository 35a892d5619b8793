//! # rpc-macros
//!
//! The `#[remote]` attribute. Use it through `rpc_core::remote`: the code it
//! generates names `::rpc_core` and nothing else.
//!
//! # Layout
//!
//! - `parse`: the attribute's options (`name = "..."`);
//! - `check`: the signature rules, each violation a spanned error;
//! - `expand`: the arguments struct, the handler and its registration, and
//!   the client stub.

use proc_macro::TokenStream;

mod check;
mod expand;
mod parse;

/// Makes an `async fn` callable remotely, by name, with a CBOR map payload
/// whose keys are its parameter names.
///
/// - `#[remote]` registers the function under its own name;
///   `#[remote(name = "wire.name")]` chooses another.
/// - A parameter of type `&T` is the function's context: the server passes
///   the `T` it holds. Every other parameter is a payload key.
/// - The return type is any `Serialize` value, or a `Result<T, E>` whose
///   error's `Display` text becomes a status 1 reply byte for byte.
///
/// The function itself is left as written, for local callers. Beside it,
/// with the function's visibility, comes its typed client stub: for `echo`,
/// a trait `EchoRemote` with one method `echo` taking the same parameters
/// minus the context and returning
/// `impl Future<Output = Result<T, rpc_core::RpcError>>` (`T` the return
/// type, or the `Ok` type of a `Result`, whose error arrives as
/// `RpcError::Status`). It is implemented for every `rpc_core::Transport`,
/// so the payload parameters must be `Serialize` as well as `Deserialize`,
/// and the reply `DeserializeOwned`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_remote(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_remote(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let options = parse::options(attr)?;
    let function: syn::ItemFn = syn::parse2(item)?;
    let remote = check::function(&options, &function)?;
    Ok(expand::remote(&function, &remote))
}
