//! Calling remote functions: the [`Transport`] trait the generated stubs call
//! through, the [`CallError`] they return, and (feature `client`) `Client`,
//! a pipelined connection shared by any number of tasks.
//!
//! # Layout
//!
//! - [`Transport`]: "something that can make a call": a method name and a
//!   CBOR payload in, the CBOR body of a status 0 reply out;
//! - [`CallError`]: every way a remote call can fail;
//! - `Client` (feature `client`): a TCP, TLS or unix connection. One writer task
//!   takes requests off a queue, registers each caller in a FIFO of pending
//!   replies and writes the frames in batches; one reader task hands each
//!   reply to the oldest pending caller. A round trip holds no lock, so many
//!   calls are in flight on one connection at once. Event frames (status 2,
//!   `PROTOCOL.md`) take no place in that order: the reader hands them to
//!   the `Subscription`s of their event;
//! - `tls` (feature `client`): `ClientOptions` (the CA, a client
//!   certificate, the server name, the connect timeout) and
//!   `connect_stream`, the connected byte stream of any address kind, a
//!   TLS handshake failure put in words.
//!
//! For every `#[remote] fn echo(...)`, the macro generates a trait
//! `EchoRemote` whose method `echo` is the typed stub, implemented for every
//! [`Transport`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::wire::cbor::DecodeError;

/// Something that can make a remote call: sends `payload` (a CBOR map whose
/// keys are the parameter names) to the method `method`, and gives back the
/// body of a status 0 reply (one CBOR item), or an error. A status 1 reply is
/// [`CallError::Status`].
///
/// `Client` (feature `client`) is the networked transport; tests may implement it in memory.
pub trait Transport {
    /// Makes one call.
    fn call(
        &self,
        method: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send;
}

/// Why one remote call failed. Failures to reach the server at all
/// (a bad address, a refused connection) are [`crate::Error`]s, given by
/// `Client::connect`, not by a call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered status 1 with this text (the function's error, bad
    /// arguments, an unknown method, ...).
    #[error("{0}")]
    Status(String),
    /// The server answered a status other than 0 or 1.
    #[error("unexpected reply status {status} ({} body bytes)", body.len())]
    UnexpectedStatus {
        /// The status received.
        status: i32,
        /// The body received with it.
        body: Bytes,
    },
    /// An event's envelope or payload did not decode into the expected type.
    #[error("event {event}: the envelope did not decode: {source}")]
    EventDecode {
        /// The event's name.
        event: &'static str,
        /// What was wrong, and where in the envelope.
        #[source]
        source: DecodeError,
    },
    /// The reply's CBOR body did not decode into the expected type.
    #[error("{method}: the reply did not decode: {source}")]
    Decode {
        /// The method called.
        method: &'static str,
        /// What was wrong, and where in the reply.
        #[source]
        source: DecodeError,
    },
    /// The arguments could not be encoded as CBOR.
    #[error("{method}: cannot encode the arguments: {message}")]
    Encode {
        /// The method called.
        method: &'static str,
        /// The encoder's reason.
        message: String,
    },
    /// The connection is closed or died (end of stream, I/O error, a reply
    /// that broke the framing) before the reply arrived. Every pending and
    /// later call of the connection gets this error.
    #[error("the connection is closed")]
    Closed,
    /// No reply within the call's timeout (on a multiplexed connection,
    /// also the server's `METHOD: deadline exceeded` for the same deadline).
    /// The connection stays usable: a late reply is discarded when it
    /// arrives, and a multiplexed call is cancelled on the server.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

#[cfg(feature = "client")]
mod connection;

#[cfg(feature = "client")]
mod tls;

#[cfg(feature = "client")]
pub use connection::{Client, Protocol, Subscription, DEFAULT_TIMEOUT, SUBSCRIPTION_QUEUE};
#[cfg(feature = "client")]
pub use tls::{connect_stream, ClientOptions, ClientStream, DEFAULT_CONNECT_TIMEOUT};

/// Encodes a stub's arguments struct as the call's payload.
pub fn encode_args<T: serde::Serialize>(
    method: &'static str,
    args: &T,
) -> Result<Vec<u8>, CallError> {
    crate::wire::cbor::to_vec(args).map_err(|e| CallError::Encode {
        method,
        message: e.to_string(),
    })
}

/// Decodes the body of a status 0 reply into a stub's return type.
pub fn decode_reply<T: serde::de::DeserializeOwned>(
    method: &'static str,
    body: &[u8],
) -> Result<T, CallError> {
    crate::wire::cbor::from_slice(body).map_err(|source| CallError::Decode { method, source })
}

impl<T, E> crate::handler::ReturnProbe<Result<T, E>> {
    /// Decodes a status 0 reply of a function whose return type is a
    /// `Result` not spelled as one (an alias): the body holds the `Ok` value,
    /// and a status 1 reply arrived as [`CallError::Status`] before this.
    pub fn decode(&self, method: &'static str, body: &[u8]) -> Result<Result<T, E>, CallError>
    where
        T: serde::de::DeserializeOwned,
    {
        decode_reply(method, body).map(Ok)
    }
}

/// How a stub decodes the reply of a plain (not `Result`) return type `R`;
/// the inherent method of `ReturnProbe<Result<T, E>>` takes precedence.
pub trait PlainDecode<R> {
    /// Decodes the body of a status 0 reply.
    fn decode(&self, method: &'static str, body: &[u8]) -> Result<R, CallError>
    where
        R: serde::de::DeserializeOwned;
}

impl<R> PlainDecode<R> for crate::handler::ReturnProbe<R> {
    fn decode(&self, method: &'static str, body: &[u8]) -> Result<R, CallError>
    where
        R: serde::de::DeserializeOwned,
    {
        decode_reply(method, body)
    }
}
