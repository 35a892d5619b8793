//! The options of `#[remote(...)]`.

use syn::parse::Parser;
use syn::LitStr;

/// What the attribute says.
#[derive(Default)]
pub(crate) struct Options {
    /// `name = "..."`: the wire name, if not the function's.
    pub(crate) name: Option<LitStr>,
}

pub(crate) fn options(attr: proc_macro2::TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
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
