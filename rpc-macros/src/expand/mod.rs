//! The generated code. Every path is absolute (`::rpc_core`, `::core`,
//! `::std`) so that the expansion works in any module,
//! `#![no_implicit_prelude]` included; `rpc_core` items are named only
//! through `::rpc_core::__private`.
//!
//! # Layout
//!
//! - `handler`: a `#[remote]` function's arguments struct, handler and
//!   registration;
//! - `stub`: its typed client stub;
//! - `event`: an `#[event]` type's `Event` impl and registration.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Remote;

pub(crate) mod event;
mod handler;
mod stub;

/// The function as written, its stub, and its registration.
pub(crate) fn remote(remote: &Remote<'_>) -> TokenStream {
    let function = remote.function;
    let stub = stub::expand(remote);
    let handler = handler::expand(remote);
    quote! {
        #function

        #stub

        #handler
    }
}
