//! `#[event("name")]`: parse the name, check the item, and expand to the
//! `Event` impl and the `EventDef` registration (with the payload's shape,
//! for `rpc.describe`). Small enough for one file.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::{Item, LitStr};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let name = name(attr)?;
    let item: Item = syn::parse2(item)?;
    let (ident, generics) = match &item {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`#[event]` goes on the payload's `struct` or `enum`",
            ))
        }
    };
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let value = name.value();
    if value.is_empty() {
        push(syn::Error::new_spanned(
            &name,
            "the event name must not be empty",
        ));
    }
    if value.starts_with("rpc.") {
        push(syn::Error::new_spanned(
            &name,
            "event names starting with `rpc.` are reserved for built-ins",
        ));
    }
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        push(syn::Error::new_spanned(
            generics,
            "`#[event]` types cannot be generic: an event has one payload type",
        ));
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let type_name = ident.to_string();
    Ok(quote! {
        #item

        #[doc(hidden)]
        const _: () = {
            impl ::rpc_core::__private::Event for #ident {
                const NAME: &'static ::core::primitive::str = #name;
            }

            // For rpc.describe: the payload traced when it is `Deserialize`.
            fn __event_payload() -> ::rpc_core::__private::Shape {
                #[allow(unused_imports)]
                use ::rpc_core::__private::{TracedPayload as _, UntracedPayload as _};
                (&::rpc_core::__private::PayloadProbe::<#ident>::new()).shape()
            }

            ::rpc_core::__private::inventory::submit! {
                ::rpc_core::__private::EventDef {
                    name: #name,
                    path: ::core::concat!(::core::module_path!(), "::", #type_name),
                    payload: __event_payload,
                }
            }
        };
    })
}

/// `"name"` or `name = "name"`.
fn name(attr: TokenStream) -> syn::Result<LitStr> {
    const USAGE: &str = "expected the event's wire name: `#[event(\"name\")]`";
    if attr.is_empty() {
        return Err(syn::Error::new(proc_macro2::Span::call_site(), USAGE));
    }
    if let Ok(lit) = syn::parse2::<LitStr>(attr.clone()) {
        return Ok(lit);
    }
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") && name.is_none() {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(USAGE))
        }
    });
    parser.parse2(attr)?;
    name.ok_or_else(|| syn::Error::new(proc_macro2::Span::call_site(), USAGE))
}
