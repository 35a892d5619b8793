//! TLS for `tls:HOST:PORT` listeners: the server's certificate and key
//! (and, for mutual TLS, the CA clients must chain to) from PEM files, a
//! config that SIGHUP reloads, and [`TlsStream`], the accepted connection
//! that performs its handshake lazily inside the connection's own task.
//!
//! Why lazy: [`Listener::accept`](super::Listener::accept) must be
//! cancel-safe and quick, and a slow or silent client must never hold up
//! the accept loop. So `accept` only wraps the TCP stream; the first read,
//! write or [`Stream::handshake`](super::Stream::handshake) drives the
//! handshake, bounded by [`HANDSHAKE_TIMEOUT`], in the per-connection task.
//! `Connection` and the accept loop see one more kind of byte stream, and
//! the framing inside TLS is byte for byte that of plain TCP.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::{Accept, TlsAcceptor};
use tracing::{debug, error, info, warn};

use super::Config;
use crate::{pem, Error};

/// How long a client has, from its TCP accept, to finish the TLS handshake
/// before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a mutual-TLS client is, from the certificate it presented: what an
/// authorisation layer (a `Peer`) can decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The certificate's subject, RFC 4514-ish: `CN=alice, O=Example`.
    pub subject: String,
    /// The subject alternative names, each with its kind: `DNS:host`,
    /// `IP:127.0.0.1`, `email:a@example.com`, `URI:spiffe://...`; other
    /// kinds are left out.
    pub sans: Vec<String>,
}

impl TlsIdentity {
    /// The identity in a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<TlsIdentity> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => sans.push(format!("DNS:{dns}")),
                    GeneralName::RFC822Name(email) => sans.push(format!("email:{email}")),
                    GeneralName::URI(uri) => sans.push(format!("URI:{uri}")),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_of(bytes) {
                            sans.push(format!("IP:{ip}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(TlsIdentity {
            subject: cert.subject().to_string(),
            sans,
        })
    }
}

fn ip_of(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The PEM files of a TLS listener, from [`Config::tls_cert`],
/// [`Config::tls_key`] and [`Config::tls_client_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate chained to this CA.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files `config` names for `address` (a `tls:` address, for the
    /// message); an [`Error::Tls`] if the certificate or key is not given.
    pub fn from_config(config: &Config, address: &str) -> Result<TlsFiles, Error> {
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Ok(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.tls_client_ca.clone(),
            }),
            (None, _) => Err(Error::Tls(format!(
                "{address} needs a certificate: set RPC_TLS_CERT (and RPC_TLS_KEY) to PEM files"
            ))),
            (Some(_), None) => Err(Error::Tls(format!(
                "{address} needs the certificate's private key: set RPC_TLS_KEY to a PEM file"
            ))),
        }
    }

    /// Reads the files into a rustls config: TLS 1.3 and 1.2 on ring,
    /// client certificates required when [`client_ca`](Self::client_ca) is set.
    pub fn load(&self) -> Result<Arc<ServerConfig>, Error> {
        let chain = pem::certificates("certificate", &self.cert)?;
        let key = pem::private_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(pem::provider())
            .with_protocol_versions(pem::VERSIONS)
            .map_err(|e| Error::Tls(format!("TLS: {e}")))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let roots = pem::roots("client CA", ca)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), pem::provider())
                        .build()
                        .map_err(|e| {
                            Error::Tls(format!("the TLS client CA {}: {e}", ca.display()))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            Error::Tls(format!(
                "the TLS certificate {} and key {} do not go together: {e}",
                self.cert.display(),
                self.key.display()
            ))
        })?;
        Ok(Arc::new(config))
    }
}

/// The files and the config in force, read at every handshake and
/// replaced whole on reload (connections already open keep theirs).
#[derive(Debug)]
pub(crate) struct TlsState {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Loads `files`, failing on the first file that cannot be used.
    pub(crate) fn new(files: TlsFiles) -> Result<Arc<TlsState>, Error> {
        let config = files.load()?;
        Ok(Arc::new(TlsState {
            files,
            current: RwLock::new(config),
        }))
    }

    /// Re-reads the files; on failure the config in force stays.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let config = self.files.load()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wraps an accepted TCP stream; the handshake runs on its first poll.
    pub(crate) fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> TlsStream {
        let accept = TlsAcceptor::from(self.config()).accept(tcp);
        TlsStream {
            state: State::Handshaking {
                accept,
                deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
            },
            peer,
            identity: None,
        }
    }
}

/// Reloads `state` on every SIGHUP until aborted (the listener's drop).
/// The handler is installed before this returns, so a SIGHUP right after
/// start-up reloads rather than kills the process.
pub(crate) fn reload_on_sighup(
    state: &Arc<TlsState>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        let state = Arc::clone(state);
        Ok(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match state.reload() {
                    Ok(()) => info!(
                        cert = %state.files.cert.display(),
                        "SIGHUP: TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => error!(
                        error = %e,
                        "SIGHUP: TLS reload failed; keeping the certificate in force"
                    ),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        Ok(tokio::spawn(async {}))
    }
}

/// A TLS connection accepted by a `tls:` [`Bound`](super::Bound): the
/// handshake first (within [`HANDSHAKE_TIMEOUT`]), then the decrypted bytes.
pub struct TlsStream {
    state: State,
    peer: SocketAddr,
    identity: Option<TlsIdentity>,
}

enum State {
    Handshaking {
        accept: Accept<TcpStream>,
        deadline: Pin<Box<Sleep>>,
    },
    Ready(tokio_rustls::server::TlsStream<TcpStream>),
    /// The handshake failed or timed out: every later poll fails alike.
    Failed(io::ErrorKind),
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Handshaking { .. } => "handshaking",
            State::Ready(_) => "ready",
            State::Failed(_) => "failed",
        };
        f.debug_struct("TlsStream")
            .field("state", &state)
            .field("peer", &self.peer)
            .field("identity", &self.identity)
            .finish()
    }
}

impl TlsStream {
    /// The client's address, as accepted.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The client certificate's identity, once the handshake is done and
    /// if the client presented one (mutual TLS).
    pub fn identity(&self) -> Option<&TlsIdentity> {
        self.identity.as_ref()
    }

    /// Completes the handshake (at once if it is done); the error says why
    /// it failed or that it timed out.
    pub fn handshake(&mut self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| self.poll_handshake(cx))
    }

    fn poll_handshake(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let (accept, deadline) = match &mut self.state {
            State::Ready(_) => return Poll::Ready(Ok(())),
            State::Failed(kind) => {
                return Poll::Ready(Err(io::Error::new(*kind, "the TLS handshake failed")))
            }
            State::Handshaking { accept, deadline } => (accept, deadline),
        };
        let outcome = match Pin::new(accept).poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => {
                ready!(deadline.as_mut().poll(cx));
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the TLS handshake did not finish within {} s",
                        HANDSHAKE_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
        match outcome {
            Ok(stream) => {
                let (_, session) = stream.get_ref();
                self.identity = session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| TlsIdentity::from_der(leaf));
                debug!(
                    peer = %self.peer,
                    version = ?session.protocol_version(),
                    client = ?self.identity,
                    "TLS handshake done"
                );
                self.state = State::Ready(stream);
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "TLS handshake failed; connection dropped");
                self.state = State::Failed(e.kind());
                Poll::Ready(Err(e))
            }
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match &mut this.state {
            State::Ready(stream) => match ready!(Pin::new(stream).poll_read(cx, buf)) {
                // A client that closes without close_notify has ended its
                // stream: frames carry their lengths, so a cut is seen as
                // one by the framing, as over plain TCP.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
                other => Poll::Ready(other),
            },
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match &mut this.state {
            State::Ready(stream) => Pin::new(stream).poll_write(cx, buf),
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Ready(stream) => Pin::new(stream).poll_flush(cx),
            // Nothing of ours is buffered before the handshake.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            // Sends close_notify, then closes the TCP write half.
            State::Ready(stream) => Pin::new(stream).poll_shutdown(cx),
            // Dropping closes a connection that never finished its handshake.
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_has_the_subject_and_every_kind_of_san() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.subject_alt_names.extend([
            rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
            rcgen::SanType::Rfc822Name("alice@example.com".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example/alice".try_into().unwrap()),
        ]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let identity = TlsIdentity::from_der(cert.der()).unwrap();
        assert!(identity.subject.contains("CN=alice"), "{identity:?}");
        assert!(identity.subject.contains("O=Example"), "{identity:?}");
        assert_eq!(
            identity.sans,
            [
                "DNS:client.example",
                "IP:127.0.0.1",
                "email:alice@example.com",
                "URI:spiffe://example/alice"
            ]
        );
        assert_eq!(TlsIdentity::from_der(b"not a certificate"), None);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        assert!(err.contains("certificate"), "{err}");
        std::fs::write(&files.cert, "no PEM here").unwrap();
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let none = TlsFiles::from_config(&Config::default(), "tls:h:1").unwrap_err();
        assert!(none.to_string().contains("RPC_TLS_CERT"), "{none}");
    }
}
