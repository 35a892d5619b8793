//! # rpc-macros
//!
//! The `#[remote]` and `#[event]` attributes. Use them through
//! `rpc_core::remote` and `rpc_core::event`: the code they generate names
//! `::rpc_core` and nothing else.
//!
//! # Layout
//!
//! In serde_derive's shape: each attribute goes `attr` → `ast` → `check` →
//! `expand`, with every error collected in a `ctxt` so that all the rules an
//! item breaks are reported at once.
//!
//! - `ctxt`: the error collector;
//! - `attr`: the attributes' own arguments (`name = "..."`, the event name);
//! - `ast`: the function or type as the expansion sees it (wire name,
//!   parameters classified as context or payload keys);
//! - `check`: the rules, one small function each;
//! - `expand/`: `handler` (arguments struct, handler, registration), `stub`
//!   (the typed client trait) and `event`.

use proc_macro::TokenStream;

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;

/// Makes an `async fn` callable remotely, by name, with a CBOR map payload
/// whose keys are its parameter names.
///
/// - `#[remote]` registers the function under its own name;
///   `#[remote(name = "wire.name")]` chooses another.
/// - A parameter of type `&T` is a context: the server passes the `T` it
///   holds (`Context::with`); a function may take several. `&rpc_core::Peer`
///   is the caller, which every call has (no context needed). Every other
///   parameter is a payload key.
/// - The return type is any `Serialize` value, or a `Result<T, E>` whose
///   error's `Display` text becomes a status 1 reply byte for byte. Which
///   one is decided by the trait system, so an alias of `Result` is a
///   `Result` and a type that merely has the name is an error.
///
/// The function itself is left as written, for local callers. Beside it,
/// with the function's visibility, comes its typed client stub: for `echo`,
/// a trait `EchoRemote` with one method `echo` taking the same parameters
/// minus the context and returning
/// `impl Future<Output = Result<T, rpc_core::CallError>>` (`T` the return
/// type, or the `Ok` type of a return type written `…Result<T, …>`; either
/// way a function's error arrives as `CallError::Status`, so the stub of an
/// alias `Res<T>` returns `Result<Res<T>, CallError>` whose inner value is
/// always `Ok`). It is implemented for every `rpc_core::client::Transport`,
/// so the payload parameters must be `Serialize` as well as `Deserialize`,
/// and the reply `DeserializeOwned`.
///
/// The registration also records the arguments and reply types, which
/// `rpc.describe` traces into its CDDL (`rpc_core::builtins::describe`).
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
    let options = attr::remote(attr)?;
    let function: syn::ItemFn = syn::parse2(item)?;
    let cx = ctxt::Ctxt::default();
    let remote = ast::Remote::from_fn(&cx, &options, &function);
    check::remote(&cx, &remote);
    cx.check()?;
    Ok(expand::remote(&remote))
}

/// Declares an event: the payload type it is put on is fired under the wire
/// name given, `#[event("on_echo_fired")]` (or `#[event(name = "...")]`).
///
/// Implements `rpc_core::events::Event` for the type and registers the name,
/// so that a server knows it (`rpc.subscribe` refuses unknown names). The
/// type must be a non-generic `struct` or `enum` that is `Serialize + Clone +
/// Send + Sync + 'static`; names starting with `rpc.` are reserved. When it
/// is also `Deserialize`, `rpc.describe`'s CDDL describes its payload
/// (`NAME-payload`); otherwise the payload is `any` there.
#[proc_macro_attribute]
pub fn event(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_event(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_event(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let name = attr::event(attr)?;
    let item: syn::Item = syn::parse2(item)?;
    let event = ast::Event::from_item(&name, &item)?;
    let cx = ctxt::Ctxt::default();
    check::event(&cx, &event);
    cx.check()?;
    Ok(expand::event::expand(&event))
}
