//! [`Peer`]: who is on the other end of a connection, as its listener saw
//! it. A `#[remote]` function takes it as a `&Peer` parameter, beside its
//! context, to decide what the caller may do.

use std::net::SocketAddr;

/// The caller of a `#[remote]` function: the peer of the connection its
/// request came on. Take it as a `&Peer` parameter (no context needed: every
/// call has one), for example to refuse callers:
///
/// ```
/// use rpc_core::{remote, Peer};
///
/// /// Who may stop the service: the user id the server was told.
/// pub struct Owner { pub uid: u32 }
///
/// /// Stops the service; only its owner, on the unix socket, may.
/// #[remote]
/// pub async fn stop(owner: &Owner, peer: &Peer) -> Result<(), String> {
///     if peer.uid() != Some(owner.uid) {
///         return Err(format!("stop: permission denied for {peer}"));
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// New kinds of peers are new variants: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP client, by its address (the client's local address).
    Tcp {
        /// The client's address and port.
        addr: SocketAddr,
    },
    /// A unix socket client, by the credentials the kernel recorded when it
    /// connected (`SO_PEERCRED`): they cannot be forged by the client.
    Unix {
        /// The client process's effective user id.
        uid: u32,
        /// Its effective group id.
        gid: u32,
        /// Its process id, where the platform reports it.
        pid: Option<i32>,
    },
    /// A TLS client, by its address and, under mutual TLS, the certificate
    /// it presented (verified against the client CA before any call runs).
    Tls {
        /// The client's address and port.
        addr: SocketAddr,
        /// The client certificate's subject (`CN=alice, O=Example`);
        /// `None` when the client presented no certificate.
        subject: Option<String>,
        /// Its subject alternative names, each with its kind: `DNS:host`,
        /// `IP:127.0.0.1`, `email:a@example.com`, `URI:spiffe://...`.
        sans: Vec<String>,
    },
    /// A caller the listener does not name: an in-process call through
    /// `Registry::call`, a custom listener, or credentials the system
    /// would not give.
    Unknown,
}

impl Peer {
    /// The TCP address, for a TCP or TLS peer.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Peer::Tcp { addr } | Peer::Tls { addr, .. } => Some(*addr),
            _ => None,
        }
    }

    /// The client certificate's subject, for a mutual-TLS peer.
    pub fn tls_subject(&self) -> Option<&str> {
        match self {
            Peer::Tls { subject, .. } => subject.as_deref(),
            _ => None,
        }
    }

    /// The user id, for a unix socket peer.
    pub fn uid(&self) -> Option<u32> {
        match self {
            Peer::Unix { uid, .. } => Some(*uid),
            _ => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp { addr } => write!(f, "tcp:{addr}"),
            Peer::Unix { uid, gid, pid } => {
                write!(f, "unix peer uid {uid} gid {gid}")?;
                match pid {
                    Some(pid) => write!(f, " pid {pid}"),
                    None => Ok(()),
                }
            }
            Peer::Tls { addr, subject, .. } => match subject {
                Some(subject) => write!(f, "tls:{addr} ({subject})"),
                None => write!(f, "tls:{addr}"),
            },
            Peer::Unknown => f.write_str("an unknown peer"),
        }
    }
}
