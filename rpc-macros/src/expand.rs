//! The code `#[remote]` generates beside the function: an arguments struct
//! named after the parameters, a handler that decodes it and calls the
//! function with the server's context, and the handler's registration.
//!
//! Every path is absolute (`::rpc_core`, `::core`, `::std`) so that the
//! expansion works in any module, `#![no_implicit_prelude]` included.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use crate::check::{Param, Remote};

pub(crate) fn remote(function: &ItemFn, remote: &Remote) -> TokenStream {
    let fn_ident = &function.sig.ident;
    let fn_name = fn_ident.to_string();
    let name = &remote.name;

    let mut fields = Vec::new();
    let mut keys = Vec::new();
    let mut call_args = Vec::new();
    let mut context = None;
    for param in &remote.params {
        match param {
            Param::Context(ty) => {
                context = Some(ty);
                call_args.push(quote!(&*__context));
            }
            Param::Payload { ident, key, ty } => {
                fields.push(quote!(#ident: #ty));
                keys.push(key);
                call_args.push(quote!(__args.#ident));
            }
        }
    }

    let take_context = context.map(|ty| {
        quote! {
            let __context = match __ctx.get::<#ty>() {
                ::core::option::Option::Some(context) => context,
                ::core::option::Option::None => {
                    return ::rpc_core::registry::Call::Ready(
                        ::rpc_core::Context::missing::<#ty>(#name),
                    );
                }
            };
        }
    });
    let encode = if remote.returns_result {
        quote!(::rpc_core::__private::encode_result(#name, __ret))
    } else {
        quote!(::rpc_core::__private::encode_ok(#name, &__ret))
    };
    let args_struct = format_ident!("__RemoteArgs_{}", fn_ident);

    quote! {
        #function

        #[doc(hidden)]
        const _: () = {
            #[derive(::rpc_core::__private::serde::Deserialize)]
            #[serde(crate = "::rpc_core::__private::serde")]
            #[allow(non_camel_case_types)]
            struct #args_struct {
                #(#fields,)*
            }

            fn __remote_handler(
                __ctx: &::rpc_core::Context,
                __payload: &[::core::primitive::u8],
            ) -> ::rpc_core::registry::Call {
                let __args: #args_struct = match ::rpc_core::__private::decode_args(#name, __payload) {
                    ::core::result::Result::Ok(args) => args,
                    ::core::result::Result::Err(reply) => {
                        return ::rpc_core::registry::Call::Ready(reply);
                    }
                };
                #take_context
                ::rpc_core::registry::Call::Pending(::std::boxed::Box::pin(async move {
                    let __ret = #fn_ident(#(#call_args),*).await;
                    #encode
                }))
            }

            ::rpc_core::__private::inventory::submit! {
                ::rpc_core::Method {
                    name: #name,
                    params: &[#(#keys),*],
                    path: ::core::concat!(::core::module_path!(), "::", #fn_name),
                    handler: __remote_handler,
                }
            }
        };
    }
}
