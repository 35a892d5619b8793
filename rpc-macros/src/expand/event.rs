//! `#[event("name")]`: the `Event` impl and the `EventDef` registration
//! (with the payload's shape, for `rpc.describe`).

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Event;

/// The item, its `Event` impl and its registration.
pub(crate) fn expand(event: &Event<'_>) -> TokenStream {
    let Event {
        item, name, ident, ..
    } = event;
    let type_name = ident.to_string();
    quote! {
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
    }
}
