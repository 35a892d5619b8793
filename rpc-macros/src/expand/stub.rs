//! The client side of `#[remote]`: the typed stub, a trait named after the
//! function and implemented for every `Transport`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{GenericArgument, PathArguments, ReturnType, Type};

use crate::ast::{Param, Remote};

/// The client stub: a trait named after the function (`echo` → `EchoRemote`)
/// with one method of the same name and parameters minus the context,
/// implemented for every `Transport`. Its payload struct borrows the
/// arguments under the same field names as the server's arguments struct, so
/// the keys cannot drift apart.
pub(crate) fn expand(remote: &Remote<'_>) -> TokenStream {
    let function = remote.function;
    let fn_ident = &function.sig.ident;
    let vis = &function.vis;
    let name = &remote.name;
    let plain_name = fn_ident.unraw().to_string();
    let trait_ident = format_ident!(
        "{}Remote",
        upper_camel_case(&plain_name),
        span = fn_ident.span()
    );

    let mut idents = Vec::new();
    let mut types = Vec::new();
    for param in &remote.params {
        if let Param::Payload { ident, ty, .. } = param {
            idents.push(ident);
            types.push(ty);
        }
    }
    let lifetime = (!idents.is_empty()).then(|| quote!(<'__a>));
    let ok = ok_type(&function.sig.output, remote.returns_result);
    let output = quote! {
        impl ::core::future::Future<
            Output = ::core::result::Result<#ok, ::rpc_core::__private::CallError>,
        > + ::core::marker::Send
    };
    let fn_docs = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"));
    let trait_doc = format!(
        " The remote stub of `{plain_name}`: calls `\"{name}\"` through any \
         [`Transport`](::rpc_core::__private::Transport)."
    );
    let method_doc = format!(
        " Calls `{plain_name}` remotely (method `\"{name}\"`): a status 1 reply \
         arrives as [`CallError::Status`](::rpc_core::__private::CallError::Status)."
    );

    quote! {
        #[doc = #trait_doc]
        #[allow(dead_code)]
        #vis trait #trait_ident {
            #(#fn_docs)*
            #[doc = ""]
            #[doc = #method_doc]
            fn #fn_ident(&self, #(#idents: #types),*) -> #output;
        }

        impl<__T: ::rpc_core::__private::Transport> #trait_ident for __T {
            fn #fn_ident(&self, #(#idents: #types),*) -> #output {
                #[derive(::rpc_core::__private::serde::Serialize)]
                #[serde(crate = "::rpc_core::__private::serde")]
                struct __RemoteArgsRef #lifetime {
                    #(#idents: &'__a #types,)*
                }
                let __payload = ::rpc_core::__private::encode_args(
                    #name,
                    &__RemoteArgsRef { #(#idents: &#idents,)* },
                );
                let __call = ::core::result::Result::map(__payload, |__payload| {
                    <__T as ::rpc_core::__private::Transport>::call(self, #name, __payload)
                });
                async move {
                    let __body = __call?.await?;
                    ::rpc_core::__private::decode_reply::<#ok>(#name, &__body)
                }
            }
        }
    }
}

/// What a successful call returns: `T` of a `Result<T, E>`, else the return
/// type itself. A `Result` alias without type arguments is resolved by the
/// trait system instead of by its spelling.
pub(crate) fn ok_type(output: &ReturnType, returns_result: bool) -> TokenStream {
    let ty = match output {
        ReturnType::Default => return quote!(()),
        ReturnType::Type(_, ty) => ty,
    };
    if !returns_result {
        return quote!(#ty);
    }
    if let Type::Path(path) = &**ty {
        if let Some(PathArguments::AngleBracketed(args)) =
            path.path.segments.last().map(|last| &last.arguments)
        {
            if let Some(GenericArgument::Type(ok)) = args.args.first() {
                return quote!(#ok);
            }
        }
    }
    quote!(<#ty as ::rpc_core::__private::RemoteResult>::Ok)
}

/// `hygiene_no_params` → `HygieneNoParams`.
fn upper_camel_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .flat_map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars)
        })
        .collect()
}
