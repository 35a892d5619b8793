//! The items as the expansion sees them: a `#[remote]` function with its
//! wire name and classified parameters, an `#[event]` type with its name.
//! Building them reports what cannot be classified at all; the rules live
//! in `check`.

use syn::ext::IdentExt;
use syn::{FnArg, Generics, Ident, Item, ItemFn, LitStr, Pat, ReturnType, Type, TypeReference};

use crate::attr::RemoteOptions;
use crate::ctxt::Ctxt;

/// A `#[remote]` function.
pub(crate) struct Remote<'a> {
    /// The function as written, left in place for local callers.
    pub(crate) function: &'a ItemFn,
    /// `name = "..."`, if given.
    pub(crate) name_option: Option<&'a LitStr>,
    /// The wire name.
    pub(crate) name: String,
    /// The parameters in declaration order.
    pub(crate) params: Vec<Param>,
    /// Whether the return type is spelled as a `Result`: read only for the
    /// stub's signature; the handler asks the trait system (`ReturnProbe`).
    pub(crate) returns_result: bool,
}

/// One parameter.
pub(crate) enum Param {
    /// `name: &T`: the context, taken from the server.
    Context(TypeReference),
    /// `name: T`: a payload key.
    Payload {
        /// The parameter's name.
        ident: Ident,
        /// Its payload key: the name without `r#`.
        key: String,
        /// Its type.
        ty: Box<Type>,
    },
}

impl<'a> Remote<'a> {
    /// Classifies the parameters; a receiver or a pattern is an error here.
    pub(crate) fn from_fn(cx: &Ctxt, options: &'a RemoteOptions, function: &'a ItemFn) -> Self {
        let sig = &function.sig;
        let mut params = Vec::new();
        for input in &sig.inputs {
            let arg = match input {
                FnArg::Receiver(receiver) => {
                    cx.error_spanned_by(
                        receiver,
                        "`#[remote]` functions cannot take `self`; take the context as a `&T` parameter",
                    );
                    continue;
                }
                FnArg::Typed(arg) => arg,
            };
            let ident = match &*arg.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    pat.ident.clone()
                }
                other => {
                    cx.error_spanned_by(
                        other,
                        "`#[remote]` parameters must be plain names: each name is a payload key",
                    );
                    continue;
                }
            };
            params.push(match &*arg.ty {
                Type::Reference(reference) => Param::Context(reference.clone()),
                ty => Param::Payload {
                    key: ident.unraw().to_string(),
                    ident,
                    ty: Box::new(ty.clone()),
                },
            });
        }
        Remote {
            function,
            name_option: options.name.as_ref(),
            name: match &options.name {
                Some(lit) => lit.value(),
                None => sig.ident.unraw().to_string(),
            },
            params,
            returns_result: returns_result(&sig.output),
        }
    }
}

/// Whether the return type is spelled `Result<..>` (any path ending so,
/// `io::Result<T>` and aliases named `Result` included).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|last| last.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// An `#[event]` type.
pub(crate) struct Event<'a> {
    /// The item as written.
    pub(crate) item: &'a Item,
    /// The wire name.
    pub(crate) name: &'a LitStr,
    /// The type's name.
    pub(crate) ident: &'a Ident,
    /// Its generics, which must be empty.
    pub(crate) generics: &'a Generics,
}

impl<'a> Event<'a> {
    /// The event on a `struct` or `enum`; anything else is an error.
    pub(crate) fn from_item(name: &'a LitStr, item: &'a Item) -> syn::Result<Self> {
        let (ident, generics) = match item {
            Item::Struct(s) => (&s.ident, &s.generics),
            Item::Enum(e) => (&e.ident, &e.generics),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "`#[event]` goes on the payload's `struct` or `enum`",
                ))
            }
        };
        Ok(Event {
            item,
            name,
            ident,
            generics,
        })
    }
}
