//! The error collector: every rule broken by one item is reported at once,
//! each error pinned to its tokens (serde_derive's `Ctxt`).

use std::cell::RefCell;

/// Collects errors while an item is parsed and checked.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Option<syn::Error>>,
}

impl Ctxt {
    /// Records an error spanned on `tokens`.
    pub(crate) fn error_spanned_by(
        &self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records `error`.
    pub(crate) fn push(&self, error: syn::Error) {
        let mut errors = self.errors.borrow_mut();
        match &mut *errors {
            Some(all) => all.combine(error),
            None => *errors = Some(error),
        }
    }

    /// `Ok` if nothing was recorded, else every error combined.
    pub(crate) fn check(self) -> syn::Result<()> {
        match self.errors.into_inner() {
            Some(errors) => Err(errors),
            None => Ok(()),
        }
    }
}
