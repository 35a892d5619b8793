//! The client side of `#[remote]`: the typed stub, a trait named after the
//! function and implemented for every `Transport`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{GenericArgument, ItemFn, PathArguments, ReturnType, Type};

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
    let ret = return_type(&function.sig.output);
    // The stub's success type: the `Ok` type of a return type spelled
    // `…Result<…>`, else the return type itself (a `Result` alias then
    // arrives whole, its `Err` as `CallError::Status`).
    let (ok, decode, check) = if remote.returns_result {
        let ok = ok_type(&ret);
        let check = quote! {
            // The `Ok` type read off the spelling is the trait's.
            const _: () = {
                #[allow(dead_code)]
                fn __remote_ok_type() {
                    let _: ::core::marker::PhantomData<#ok> = ::core::marker::PhantomData::<
                        <#ret as ::rpc_core::__private::RemoteResult>::Ok,
                    >;
                }
            };
        };
        let decode = quote!(::rpc_core::__private::decode_reply::<#ok>(#name, &__body));
        (ok, decode, Some(check))
    } else {
        let decode = quote_spanned! {return_span(function)=> {
            #[allow(unused_imports)]
            use ::rpc_core::__private::PlainDecode as _;
            ::rpc_core::__private::ReturnProbe::<#ret>::new().decode(#name, &__body)
        }};
        (ret.clone(), decode, None)
    };
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
                    #decode
                }
            }
        }

        #check
    }
}

/// The function's return type, `()` when none is written.
pub(crate) fn return_type(output: &ReturnType) -> TokenStream {
    match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    }
}

/// Where errors about the return type point: the type, or the function's
/// name when none is written.
pub(crate) fn return_span(function: &ItemFn) -> Span {
    match &function.sig.output {
        ReturnType::Default => function.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

/// The `Ok` type of a return type spelled `…Result<T, …>`: `T` as written,
/// for readable stub signatures (checked against the trait's, see
/// `expand`), or the trait's projection for an alias without arguments.
fn ok_type(ret: &TokenStream) -> TokenStream {
    if let Ok(Type::Path(path)) = syn::parse2::<Type>(ret.clone()) {
        if let Some(PathArguments::AngleBracketed(args)) =
            path.path.segments.last().map(|last| &last.arguments)
        {
            if let Some(GenericArgument::Type(ok)) = args.args.first() {
                return quote!(#ok);
            }
        }
    }
    quote!(<#ret as ::rpc_core::__private::RemoteResult>::Ok)
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
