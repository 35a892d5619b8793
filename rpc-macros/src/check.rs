//! The rules a `#[remote]` function must follow, each broken rule an error
//! pinned to the offending tokens. All errors are reported, not just the first.

use syn::ext::IdentExt;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::parse::Options;

/// A checked function, ready to expand.
pub(crate) struct Remote {
    /// The wire name.
    pub(crate) name: String,
    /// The parameters in declaration order.
    pub(crate) params: Vec<Param>,
    /// Whether the function returns a `Result`.
    pub(crate) returns_result: bool,
}

/// One parameter.
pub(crate) enum Param {
    /// `name: &T`: the context, taken from the server.
    Context(Type),
    /// `name: T`: a payload key.
    Payload {
        ident: syn::Ident,
        key: String,
        ty: Type,
    },
}

#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

pub(crate) fn function(options: &Options, function: &ItemFn) -> syn::Result<Remote> {
    let sig = &function.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "`#[remote]` functions must be `async`",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "`#[remote]` functions cannot be generic: the server needs one concrete signature",
        ));
    }
    // Checked apart: `Generics` prints without its where clause, so an error
    // spanned on it alone would point at the attribute.
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "`#[remote]` functions cannot have a `where` clause: the server needs one concrete signature",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[remote]` functions cannot be variadic",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if contains_impl_trait(ty) {
            errors.push(syn::Error::new_spanned(
                ty,
                "`#[remote]` functions must return a concrete type, not `impl Trait`",
            ));
        }
    }

    let name = match &options.name {
        Some(lit) => {
            let name = lit.value();
            if name.is_empty() {
                errors.push(syn::Error::new_spanned(
                    lit,
                    "the method name must not be empty",
                ));
            }
            if name.starts_with("rpc.") {
                errors.push(syn::Error::new_spanned(
                    lit,
                    "method names starting with `rpc.` are reserved for built-in methods",
                ));
            }
            name
        }
        None => sig.ident.unraw().to_string(),
    };

    let mut params = Vec::new();
    let mut has_context = false;
    for input in &sig.inputs {
        let arg = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "`#[remote]` functions cannot take `self`; take the context as a `&T` parameter",
                ));
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        let ident = match &*arg.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    "`#[remote]` parameters must be plain names: each name is a payload key",
                ));
                continue;
            }
        };
        if contains_impl_trait(&arg.ty) {
            errors.push(syn::Error::new_spanned(
                &arg.ty,
                "`#[remote]` parameters cannot be `impl Trait`: a payload decodes into a concrete type",
            ));
            continue;
        }
        match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_some() => {
                errors.push(syn::Error::new_spanned(
                    reference,
                    "the context parameter must be a shared reference `&T`: calls run concurrently",
                ));
            }
            Type::Reference(reference) if unsized_payload(&reference.elem).is_some() => {
                let owned = unsized_payload(&reference.elem).unwrap_or("an owned type");
                errors.push(syn::Error::new_spanned(
                    reference,
                    format!(
                        "a `&T` parameter of a `#[remote]` function is its context: a value the \
                         server holds (`Context::with`), lent to each call, so `T` must be a sized \
                         `Send + Sync + 'static` type; a payload parameter is owned: take {owned}"
                    ),
                ));
            }
            Type::Reference(reference) if has_context => {
                errors.push(syn::Error::new_spanned(
                    reference,
                    "`#[remote]` functions take at most one context parameter `&T`",
                ));
            }
            Type::Reference(reference) => {
                has_context = true;
                params.push(Param::Context((*reference.elem).clone()));
            }
            ty => params.push(Param::Payload {
                key: ident.unraw().to_string(),
                ident,
                ty: ty.clone(),
            }),
        }
    }

    if let Some(error) = errors.0 {
        return Err(error);
    }
    Ok(Remote {
        name,
        params,
        returns_result: returns_result(&sig.output),
    })
}

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
