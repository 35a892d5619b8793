//! The rules, one small function each. Every broken rule is recorded in
//! the [`Ctxt`], pinned to the offending tokens, so that all are reported.

use syn::{ReturnType, Signature, Type, TypeReference};

use crate::ast::{Event, Param, Remote};
use crate::ctxt::Ctxt;

/// Every rule of a `#[remote]` function.
pub(crate) fn remote(cx: &Ctxt, remote: &Remote<'_>) {
    let sig = &remote.function.sig;
    is_async(cx, sig);
    not_generic(cx, sig);
    no_where_clause(cx, sig);
    not_variadic(cx, sig);
    concrete_return(cx, sig);
    if let Some(lit) = remote.name_option {
        wire_name(cx, lit, "method");
    }
    no_impl_trait_parameters(cx, sig);
    for param in &remote.params {
        if let Param::Context(reference) = param {
            context_parameter(cx, reference);
        }
    }
}

/// Every rule of an `#[event]` type.
pub(crate) fn event(cx: &Ctxt, event: &Event<'_>) {
    wire_name(cx, event.name, "event");
    if !event.generics.params.is_empty() || event.generics.where_clause.is_some() {
        cx.error_spanned_by(
            event.generics,
            "`#[event]` types cannot be generic: an event has one payload type",
        );
    }
}

fn is_async(cx: &Ctxt, sig: &Signature) {
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, "`#[remote]` functions must be `async`");
    }
}

fn not_generic(cx: &Ctxt, sig: &Signature) {
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "`#[remote]` functions cannot be generic: the server needs one concrete signature",
        );
    }
}

/// Apart from [`not_generic`]: `Generics` prints without its where clause,
/// so an error spanned on it alone would point at the attribute.
fn no_where_clause(cx: &Ctxt, sig: &Signature) {
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "`#[remote]` functions cannot have a `where` clause: the server needs one concrete signature",
        );
    }
}

fn not_variadic(cx: &Ctxt, sig: &Signature) {
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "`#[remote]` functions cannot be variadic");
    }
}

fn concrete_return(cx: &Ctxt, sig: &Signature) {
    if let ReturnType::Type(_, ty) = &sig.output {
        if contains_impl_trait(ty) {
            cx.error_spanned_by(
                ty,
                "`#[remote]` functions must return a concrete type, not `impl Trait`",
            );
        }
    }
}

/// A wire name given in the attribute: not empty, not in `rpc.*`.
fn wire_name(cx: &Ctxt, lit: &syn::LitStr, what: &str) {
    let name = lit.value();
    if name.is_empty() {
        cx.error_spanned_by(lit, format!("the {what} name must not be empty"));
    }
    if name.starts_with("rpc.") {
        let reserved = match what {
            "method" => "method names starting with `rpc.` are reserved for built-in methods",
            _ => "event names starting with `rpc.` are reserved for built-ins",
        };
        cx.error_spanned_by(lit, reserved);
    }
}

fn no_impl_trait_parameters(cx: &Ctxt, sig: &Signature) {
    for input in &sig.inputs {
        if let syn::FnArg::Typed(arg) = input {
            if contains_impl_trait(&arg.ty) {
                cx.error_spanned_by(
                    &arg.ty,
                    "`#[remote]` parameters cannot be `impl Trait`: a payload decodes into a concrete type",
                );
            }
        }
    }
}

/// A `&T` parameter is a context: shared and sized.
fn context_parameter(cx: &Ctxt, reference: &TypeReference) {
    if reference.mutability.is_some() {
        cx.error_spanned_by(
            reference,
            "the context parameter must be a shared reference `&T`: calls run concurrently",
        );
    } else if let Some(owned) = unsized_payload(&reference.elem) {
        cx.error_spanned_by(
            reference,
            format!(
                "a `&T` parameter of a `#[remote]` function is its context: a value the \
                 server holds (`Context::with`), lent to each call, so `T` must be a sized \
                 `Send + Sync + 'static` type; a payload parameter is owned: take {owned}"
            ),
        );
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// For a borrowed unsized type (`&str`, `&[T]`, `&dyn Trait`, `&Path`...),
/// the owned type to take instead; such a reference cannot be a context.
fn unsized_payload(elem: &Type) -> Option<&'static str> {
    match elem {
        Type::Slice(_) => Some("`Vec<T>` for a list"),
        Type::TraitObject(_) => Some("a concrete type"),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            match last.ident.to_string().as_str() {
                "str" => Some("`String` for text"),
                "Path" => Some("`PathBuf` for a path"),
                "OsStr" => Some("`OsString`"),
                "CStr" => Some("`CString`"),
                _ => None,
            }
        }
        _ => None,
    }
}
