//! The wire: everything that knows how bytes look on a socket.
//!
//! # Layout
//!
//! - `frame` (re-exported here): the frame codec for requests, replies and
//!   event frames, the status codes and the frame limit;
//! - `mux` (re-exported here): the multiplexed framing `rpc.hello` switches
//!   a connection to, and the names of its built-ins;
//! - [`cbor`]: CBOR decoding and encoding, the only code that touches the CBOR
//!   crates;
//! - [`Reply`]: a status and its body, what a call answers;
//! - the wire names of the built-in methods.

pub mod cbor;
mod frame;
mod mux;

pub use frame::*;
pub use mux::*;

/// The built-in method that describes the server (`rpc.describe`).
pub const DESCRIBE: &str = "rpc.describe";
/// The built-in method that subscribes a connection to events.
pub const SUBSCRIBE: &str = "rpc.subscribe";
/// The built-in method that ends a connection's subscriptions.
pub const UNSUBSCRIBE: &str = "rpc.unsubscribe";

/// The result of one call: a status and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// [`STATUS_OK`] or [`STATUS_ERROR`].
    pub status: i32,
    /// One CBOR item for status 0, UTF-8 text for status 1.
    pub body: Vec<u8>,
}

impl Reply {
    /// A status 0 reply carrying an encoded CBOR item.
    pub fn ok(cbor: Vec<u8>) -> Self {
        Reply {
            status: STATUS_OK,
            body: cbor,
        }
    }

    /// A status 1 reply; an empty text is replaced so that the body is never empty.
    pub fn error(text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.is_empty() {
            text.push_str("error (the handler gave no text)");
        }
        Reply {
            status: STATUS_ERROR,
            body: text.into_bytes(),
        }
    }
}
