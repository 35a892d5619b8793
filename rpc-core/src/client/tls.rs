//! How a client connects: [`ClientOptions`] (the TLS trust, an optional
//! client certificate, the name to check, the connect timeout) and
//! [`connect_stream`], the byte stream of any address kind, which
//! [`Client`](super::Client) and raw tools (`rpc listen`) share.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::Protocol;
use crate::{pem, Address, Error};

/// The connect timeout unless [`ClientOptions::connect_timeout`] says
/// otherwise: TCP connect and TLS handshake together.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to connect: what a `tls:` connection trusts and presents, and how
/// long connecting may take. `ClientOptions::default()` trusts the
/// system's root certificates and presents no certificate.
///
/// A server that asks for a client certificate when none is configured is
/// refused at connect ([`Error::Connect`], "requires a client
/// certificate"): under TLS 1.3 its own refusal would come only at the
/// first read, as a closed connection. (This also refuses a server for
/// which the certificate is optional.)
///
/// ```
/// use rpc_core::client::ClientOptions;
/// let options = ClientOptions::default()
///     .ca("/etc/rpc/ca.pem")
///     .client_cert("/etc/rpc/me.pem", "/etc/rpc/me.key")
///     .server_name("rpc.internal");
/// assert_eq!(options.server_name.as_deref(), Some("rpc.internal"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// CA certificates (PEM) the server's certificate must chain to;
    /// `None` trusts the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS, with [`key`](Self::key).
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of [`cert`](Self::cert).
    pub key: Option<PathBuf>,
    /// The name the server's certificate must be valid for; `None` is the
    /// address's host (a DNS name or an IP address).
    pub server_name: Option<String>,
    /// How long the TCP connect and the TLS handshake may take together.
    /// Default [`DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// Whether to ask for the multiplexing extension. Default
    /// [`Protocol::Negotiate`].
    pub protocol: Protocol,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca: None,
            cert: None,
            key: None,
            server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            protocol: Protocol::Negotiate,
        }
    }
}

impl ClientOptions {
    /// The defaults overridden by `RPC_TLS_CA`, `RPC_TLS_CLIENT_CERT`,
    /// `RPC_TLS_CLIENT_KEY` and `RPC_TLS_SERVER_NAME` where set (and not empty).
    pub fn from_env() -> ClientOptions {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        ClientOptions {
            ca: var("RPC_TLS_CA").map(PathBuf::from),
            cert: var("RPC_TLS_CLIENT_CERT").map(PathBuf::from),
            key: var("RPC_TLS_CLIENT_KEY").map(PathBuf::from),
            server_name: var("RPC_TLS_SERVER_NAME").and_then(|v| v.into_string().ok()),
            ..ClientOptions::default()
        }
    }

    /// Sets [`ClientOptions::ca`].
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(path.into());
        self
    }

    /// Sets [`ClientOptions::cert`] and [`ClientOptions::key`].
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// Sets [`ClientOptions::server_name`].
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Sets [`ClientOptions::protocol`].
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets [`ClientOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The rustls config these options make; `asked` records whether the
    /// server asked for a client certificate.
    fn tls_config(&self, asked: Arc<AtomicBool>) -> Result<ClientConfig, Error> {
        let roots = match &self.ca {
            Some(ca) => pem::roots("CA", ca)?,
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(pem::provider())
            .with_protocol_versions(pem::VERSIONS)
            .map_err(|e| Error::Tls(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let certified = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = pem::certificates("client certificate", cert)?;
                let key = pem::private_key(key)?;
                let key = pem::provider()
                    .key_provider
                    .load_private_key(key)
                    .map_err(|e| {
                        Error::Tls(format!("the TLS key {}: {e}", self.key_path_display()))
                    })?;
                Some(Arc::new(CertifiedKey::new(chain, key)))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::Tls(
                    "a TLS client certificate needs its private key (--key, RPC_TLS_CLIENT_KEY)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Tls(
                    "a TLS client key needs its certificate (--cert, RPC_TLS_CLIENT_CERT)".into(),
                ))
            }
        };
        Ok(builder.with_client_cert_resolver(Arc::new(ClientCert { certified, asked })))
    }

    fn key_path_display(&self) -> String {
        self.key
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_default()
    }
}

fn system_roots() -> Result<RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Error::Tls(format!(
            "no system root certificates found{why}; give the server's CA (--ca, RPC_TLS_CA)"
        )));
    }
    Ok(store)
}

/// Presents the configured certificate, if any, and notes that the server
/// asked: TLS 1.3 ends the client's handshake before the server judges the
/// certificate, so a refusal would otherwise show only at the first read.
#[derive(Debug)]
struct ClientCert {
    certified: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.certified.clone()
    }

    fn has_certs(&self) -> bool {
        self.certified.is_some()
    }
}

/// A connected byte stream of any address kind.
#[derive(Debug)]
pub enum ClientStream {
    /// A TCP connection (`TCP_NODELAY` on).
    Tcp(TcpStream),
    /// A TLS connection over TCP, its handshake done.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A unix socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Connects to `address` within [`ClientOptions::connect_timeout`]; a
/// `tls:` address is connected and its handshake done. Every failure is an
/// [`Error::Connect`] that says what was wrong (an unknown CA, a name the
/// certificate does not cover, an expired certificate, a refused client
/// certificate, no answer in time), or an [`Error::Tls`] for unusable files.
pub async fn connect_stream(
    address: &Address,
    options: &ClientOptions,
) -> Result<ClientStream, Error> {
    let connect_err = |source| Error::Connect {
        address: address.to_string(),
        source,
    };
    let timeout = options.connect_timeout;
    match tokio::time::timeout(timeout, connect_inner(address, options)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(Connecting::Io(e))) => Err(connect_err(e)),
        Ok(Err(Connecting::Setup(e))) => Err(e),
        Err(_) => Err(connect_err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer{} within {} s",
                if matches!(address, Address::Tls { .. }) {
                    " to the TLS handshake"
                } else {
                    ""
                },
                timeout.as_secs_f64()
            ),
        ))),
    }
}

enum Connecting {
    Io(io::Error),
    Setup(Error),
}

impl From<io::Error> for Connecting {
    fn from(e: io::Error) -> Self {
        Connecting::Io(e)
    }
}

async fn connect_inner(
    address: &Address,
    options: &ClientOptions,
) -> Result<ClientStream, Connecting> {
    match address {
        Address::Tcp { .. } => {
            let stream = TcpStream::connect(address.host_port().unwrap_or_default()).await?;
            stream.set_nodelay(true)?;
            Ok(ClientStream::Tcp(stream))
        }
        Address::Tls { host, .. } => {
            let asked = Arc::new(AtomicBool::new(false));
            let config = options
                .tls_config(Arc::clone(&asked))
                .map_err(Connecting::Setup)?;
            let name = options.server_name.as_deref().unwrap_or(host);
            let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
                Connecting::Setup(Error::Tls(format!(
                    "{name:?} is not a valid TLS server name (a DNS name or an IP address)"
                )))
            })?;
            let stream = TcpStream::connect(address.host_port().unwrap_or_default()).await?;
            stream.set_nodelay(true)?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tls = connector
                .connect(server_name, stream)
                .await
                .map_err(|e| explain(e, name))?;
            if asked.load(Ordering::Relaxed) && options.cert.is_none() {
                return Err(Connecting::Io(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "TLS: the server requires a client certificate (mutual TLS) and none was \
                     given (--cert and --key, RPC_TLS_CLIENT_CERT and RPC_TLS_CLIENT_KEY)",
                )));
            }
            Ok(ClientStream::Tls(Box::new(tls)))
        }
        #[cfg(unix)]
        Address::Unix(path) => Ok(ClientStream::Unix(UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Address::Unix(_) => Err(Connecting::Setup(Error::UnixUnsupported(
            address.to_string(),
        ))),
    }
}

/// A handshake failure in words: what was wrong and what to give instead.
fn explain(e: io::Error, name: &str) -> io::Error {
    let kind = e.kind();
    let text = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer => {
                "TLS: the server's certificate is not signed by a trusted CA (unknown issuer); \
                 give its CA (--ca, RPC_TLS_CA)"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "TLS: the server's certificate is not valid for the name {name:?} ({cert:?}); \
                     connect by a name it covers or set --server-name (RPC_TLS_SERVER_NAME)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet".to_owned()
            }
            other => format!("TLS: the server's certificate is refused: {other:?}"),
        },
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "TLS: the server refused the handshake ({alert:?}); it may require a client \
             certificate (--cert, --key) that it trusts"
        ),
        Some(other) => format!("TLS handshake failed: {other}"),
        None if kind == io::ErrorKind::UnexpectedEof || kind == io::ErrorKind::ConnectionReset => {
            "TLS handshake failed: the server closed the connection (is it a TLS server?)"
                .to_owned()
        }
        None => format!("TLS handshake failed: {e}"),
    };
    io::Error::new(kind, text)
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(unix)]
            ClientStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(unix)]
            ClientStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(unix)]
            ClientStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(unix)]
            ClientStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(options: &ClientOptions) -> String {
        match options.tls_config(Arc::default()) {
            Ok(_) => panic!("a config was made"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = std::env::temp_dir().join("rpc-core-no-such-dir");
        let ca = dir.join("ca.pem");
        let err = config_error(&ClientOptions::default().ca(&ca));
        assert!(err.starts_with("cannot read the TLS CA "), "{err}");
        assert!(err.contains("ca.pem"), "{err}");
        let only_cert = ClientOptions {
            cert: Some(dir.join("me.pem")),
            ..ClientOptions::default()
        };
        assert!(config_error(&only_cert).contains("needs its private key"));
        let only_key = ClientOptions {
            key: Some(dir.join("me.key")),
            ..ClientOptions::default()
        };
        assert!(config_error(&only_key).contains("needs its certificate"));
    }

    #[test]
    fn the_builder_sets_every_field() {
        let options = ClientOptions::default()
            .ca("ca.pem")
            .client_cert("me.pem", "me.key")
            .server_name("rpc.internal")
            .connect_timeout(Duration::from_secs(2));
        assert_eq!(options.ca, Some("ca.pem".into()));
        assert_eq!(options.cert, Some("me.pem".into()));
        assert_eq!(options.key, Some("me.key".into()));
        assert_eq!(options.server_name.as_deref(), Some("rpc.internal"));
        assert_eq!(options.connect_timeout, Duration::from_secs(2));
        assert_eq!(
            ClientOptions::default().connect_timeout,
            DEFAULT_CONNECT_TIMEOUT
        );
    }

    #[tokio::test]
    async fn a_bad_server_name_is_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        // Port 1 is never reached: the name is checked first.
        let address: Address = "tls:127.0.0.1:1".parse().unwrap();
        let options = ClientOptions::default().ca(&ca).server_name("not a name");
        let err = connect_stream(&address, &options).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""not a name" is not a valid TLS server name (a DNS name or an IP address)"#
        );
    }
}
