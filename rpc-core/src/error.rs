//! The one error type of the runtime.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong outside a single call: an address, binding,
/// connecting, the configuration, the table of methods.
///
/// Call-level failures (bad arguments, unknown methods, handler errors) are
/// not errors of the runtime: the server answers them with status 1, and a
/// client sees them as [`CallError`](crate::client::CallError)s.
///
/// `Debug` prints the same sentence as `Display`, so that a `main` returning
/// `Result<(), rpc_core::Error>` reports a readable message.
#[derive(thiserror::Error)]
pub enum Error {
    /// An address string is not `tcp:HOST:PORT`, `tls:HOST:PORT` or `unix:PATH`.
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
    /// Something other than a socket is at the path of a `unix:` address: a
    /// regular file, a symbolic link, a directory... Only a stale socket is
    /// ever removed; this is left as it is.
    #[error(
        "cannot bind unix:{}: {what} is there, not a stale socket; it is left alone",
        path.display()
    )]
    UnixPathTaken {
        /// The path.
        path: PathBuf,
        /// What is there: `"a regular file"`, `"a symbolic link"`, `"a directory"`...
        what: &'static str,
    },
    /// A server answers on the socket at the path of a `unix:` address; its
    /// socket is left as it is.
    #[error("cannot bind unix:{}: another server is listening on {}", .0.display(), .0.display())]
    UnixPathInUse(PathBuf),
    /// Connecting to a server failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address given.
        address: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
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
    /// The program links no `#[remote]` function: the server would answer
    /// only the built-ins.
    #[error(
        "this program links no #[remote] function, so the server would answer only rpc.*: \
         a library's functions are linked only when the binary names the library; \
         add `use mylib as _;` (the library's crate name) to the server's main file"
    )]
    NoFunctions,
    /// The context lacks types that linked `#[remote]` functions borrow.
    #[error("{}", missing_context(missing))]
    MissingContext {
        /// Each missing type, with the Rust paths of the functions that borrow it.
        missing: Vec<(&'static str, Vec<&'static str>)>,
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
    /// TLS could not be set up: a certificate, key or CA file is missing,
    /// unreadable or unusable (the text names the file), or a `tls:`
    /// address was given no certificate.
    #[error("{0}")]
    Tls(String),
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

fn missing_context(missing: &[(&'static str, Vec<&'static str>)]) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|(type_name, paths)| format!("{type_name} (borrowed by {})", paths.join(", ")))
        .collect();
    format!(
        "the server's context lacks {} that #[remote] functions borrow: {}; \
         add each with Context::with(value) before Server::new",
        if missing.len() == 1 {
            "a type"
        } else {
            "types"
        },
        list.join("; ")
    )
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_reads_as_the_sentence() {
        let e = Error::DuplicateMethod {
            name: "echo",
            first: "a::echo",
            second: "b::echo",
        };
        assert_eq!(
            format!("{e:?}"),
            r#"duplicate method "echo": registered by both a::echo and b::echo"#
        );
        assert_eq!(format!("{e:?}"), e.to_string());
    }
}
