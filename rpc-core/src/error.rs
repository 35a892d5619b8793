//! The one error type of the runtime.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the runtime outside a single request.
///
/// Request-level failures (bad arguments, unknown methods, handler errors)
/// are not errors of the runtime: they become status 1 replies.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address string is not `tcp:HOST:PORT` or `unix:PATH`.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `unix:` address was given on a platform without unix sockets.
    #[error("unix sockets are not supported on this platform: {0:?}")]
    UnixUnsupported(String),
    /// The path of a `unix:` address is a directory, which is never removed.
    #[error("cannot bind unix:{}: the path is a directory", .0.display())]
    UnixPathIsDirectory(PathBuf),
    /// Binding the listening socket failed.
    #[error("cannot bind {address}: {source}")]
    Bind {
        /// The address that could not be bound.
        address: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// Two `#[remote]` functions were registered under the same wire name.
    #[error("duplicate method {name:?}: registered by both {first} and {second}")]
    DuplicateMethod {
        /// The wire name registered twice.
        name: &'static str,
        /// The Rust path of the first registration.
        first: &'static str,
        /// The Rust path of the second registration.
        second: &'static str,
    },
    /// Two `#[event]` types were registered under the same wire name.
    #[error("duplicate event {name:?}: registered by both {first} and {second}")]
    DuplicateEvent {
        /// The wire name registered twice.
        name: &'static str,
        /// The Rust path of the first registration.
        first: &'static str,
        /// The Rust path of the second registration.
        second: &'static str,
    },
    /// A limit given in the environment is not a valid value.
    #[error("invalid {name}={value:?}: {reason}")]
    InvalidConfig {
        /// The variable.
        name: &'static str,
        /// Its value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A frame header announced more bytes than the configured limit.
    #[error("{what} of {len} bytes exceeds the frame limit of {max} bytes")]
    FrameTooLarge {
        /// Which part of the frame: `"method name"`, `"payload"`, or
        /// `"method name plus payload"` when only the two together are too large.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// An I/O error on a socket.
    #[error(transparent)]
    Io(#[from] io::Error),
}
