//! The attributes' own arguments: `#[remote(name = "...")]` and
//! `#[event("name")]` / `#[event(name = "...")]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::LitStr;

/// What `#[remote(...)]` says.
#[derive(Default)]
pub(crate) struct RemoteOptions {
    /// `name = "..."`: the wire name, if not the function's.
    pub(crate) name: Option<LitStr>,
}

/// Parses the arguments of `#[remote(...)]`.
pub(crate) fn remote(attr: TokenStream) -> syn::Result<RemoteOptions> {
    let mut options = RemoteOptions::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if options.name.is_some() {
                return Err(meta.error("`name` given twice"));
            }
            options.name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown `#[remote]` option; expected `name = \"...\"`"))
        }
    });
    parser.parse2(attr)?;
    Ok(options)
}

/// Parses the wire name of `#[event("name")]` or `#[event(name = "name")]`.
pub(crate) fn event(attr: TokenStream) -> syn::Result<LitStr> {
    const USAGE: &str = "expected the event's wire name: `#[event(\"name\")]`";
    if attr.is_empty() {
        return Err(syn::Error::new(Span::call_site(), USAGE));
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
    name.ok_or_else(|| syn::Error::new(Span::call_site(), USAGE))
}
