//! `Server::new` checks its context against every linked `#[remote]`
//! function: a missing type is a start-up error naming the type and the
//! functions that borrow it, not a status 1 on each call.

use rpc_core::{remote, Context, Error, Server};

/// A context type of this test program only.
pub struct Counter(i64);

/// Reads the counter.
#[remote]
pub async fn startup_count(counter: &Counter) -> i64 {
    counter.0
}

/// Adds to the counter's value.
#[remote]
pub async fn startup_add(counter: &Counter, n: i64) -> i64 {
    counter.0 + n
}

#[test]
fn a_missing_context_type_is_named_at_start() {
    let err = Server::new(Context::new()).unwrap_err();
    assert!(matches!(err, Error::MissingContext { .. }), "{err}");
    let text = err.to_string();
    println!("{text}");
    assert!(
        text.contains(
            "startup::Counter (borrowed by startup::startup_add, startup::startup_count)"
        ),
        "{text}"
    );
    assert!(
        text.contains("add each with Context::with(value)"),
        "{text}"
    );
    // Debug, as `fn main() -> Result<(), Error>` prints it, is the same sentence.
    assert_eq!(format!("{err:?}"), text);
}

#[test]
fn a_complete_context_starts() {
    let ctx = Context::new().with(Counter(1));
    match Server::new(ctx) {
        Ok(_) => {}
        // Other linked libraries' types may be missing, never this one.
        Err(e) => assert!(!e.to_string().contains("startup::Counter"), "{e}"),
    }
}
