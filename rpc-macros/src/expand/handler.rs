//! The server side of `#[remote]`: an arguments struct named after the
//! parameters, a handler that decodes it and calls the function with the
//! server's context, and its registration (with the arguments and reply
//! types, traced for `rpc.describe`, and the types its `&T` parameters borrow).
//! Whether the function returns a `Result` is left to the trait system
//! (`ReturnProbe`), so an alias of `Result` is one.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use super::stub::{return_span, return_type};
use crate::ast::{Param, Remote};

/// The arguments struct, the handler and its registration.
pub(crate) fn expand(remote: &Remote<'_>) -> TokenStream {
    let function = remote.function;
    let fn_ident = &function.sig.ident;
    let fn_name = fn_ident.to_string();
    let name = &remote.name;

    let mut fields = Vec::new();
    let mut keys = Vec::new();
    let mut call_args = Vec::new();
    let mut contexts = Vec::new();
    for param in &remote.params {
        match param {
            Param::Context(reference) => {
                let local = format_ident!("__context{}", contexts.len());
                contexts.push((&*reference.elem, local.clone()));
                call_args.push(quote!(&*#local));
            }
            Param::Payload { ident, key, ty } => {
                fields.push(quote!(#ident: #ty));
                keys.push(key);
                call_args.push(quote!(__args.#ident));
            }
        }
    }

    // Each `&T` from the scope: the server's context, or the caller for
    // `&Peer` (the scope tells them apart by type, not by spelling).
    let take_contexts = contexts.iter().map(|(ty, local)| {
        quote! {
            let #local = match __ctx.get::<#ty>() {
                ::core::option::Option::Some(context) => context,
                ::core::option::Option::None => {
                    return ::rpc_core::__private::Call::Ready(
                        ::rpc_core::__private::missing_context::<#ty>(#name),
                    );
                }
            };
        }
    });
    let borrows = contexts.iter().map(|(ty, _)| {
        quote! {
            ::rpc_core::__private::Borrow {
                type_name: ::core::any::type_name::<#ty>,
                present: ::rpc_core::__private::Scope::provides::<#ty>,
            }
        }
    });
    let ret = return_type(&function.sig.output);
    let args_struct = format_ident!("__RemoteArgs_{}", fn_ident);
    // A return type that cannot be a reply is reported on the type.
    let span = return_span(function);
    let encode = quote_spanned! {span=>
        ::rpc_core::__private::ReturnProbe::<#ret>::new().encode(#name, __ret)
    };
    let types = quote_spanned! {span=>
        ::rpc_core::__private::ReturnProbe::<#ret>::new().types::<#args_struct>()
    };

    quote! {
        #[doc(hidden)]
        const _: () = {
            #[derive(::rpc_core::__private::serde::Deserialize)]
            #[serde(crate = "::rpc_core::__private::serde")]
            #[allow(non_camel_case_types)]
            struct #args_struct {
                #(#fields,)*
            }

            fn __remote_handler(
                __ctx: &::rpc_core::__private::Scope<'_>,
                __payload: &[::core::primitive::u8],
            ) -> ::rpc_core::__private::Call {
                let __args: #args_struct = match ::rpc_core::__private::decode_args(#name, __payload) {
                    ::core::result::Result::Ok(args) => args,
                    ::core::result::Result::Err(reply) => {
                        return ::rpc_core::__private::Call::Ready(reply);
                    }
                };
                #(#take_contexts)*
                ::rpc_core::__private::Call::Pending(::std::boxed::Box::pin(async move {
                    let __ret = #fn_ident(#(#call_args),*).await;
                    #[allow(unused_imports)]
                    use ::rpc_core::__private::PlainReturn as _;
                    #encode
                }))
            }

            fn __remote_types() -> ::rpc_core::__private::Types {
                #[allow(unused_imports)]
                use ::rpc_core::__private::PlainReturn as _;
                #types
            }

            ::rpc_core::__private::inventory::submit! {
                ::rpc_core::__private::Method {
                    name: #name,
                    params: &[#(#keys),*],
                    path: ::core::concat!(::core::module_path!(), "::", #fn_name),
                    handler: __remote_handler,
                    types: __remote_types,
                    borrows: &[#(#borrows),*],
                }
            }
        };
    }
}
