//! Listening sockets. [`Listener`] is what [`Server::serve`](super::Server::serve)
//! accepts connections from, in the shape of axum's `serve::Listener`: an
//! associated stream type, an `accept` that handles per-connection errors
//! itself, and the local address. It is implemented for TCP (with
//! `TCP_NODELAY`) and unix sockets ([`UnixSocketListener`] removes its
//! socket file on drop); [`Bound`] binds any kind from an [`Address`].
//!
//! A `tls:` address is a TCP listener whose [`Stream`] is a
//! [`TlsStream`]: the handshake runs lazily in the connection's task (see
//! the `tls` module), so `Connection` and the accept loop stay as they are.

use std::future::Future;
use std::io;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, error};

use super::tls::{self, TlsFiles, TlsIdentity, TlsState, TlsStream};
use super::Config;
use crate::{Address, Error};

/// A source of connections for [`Server::serve`](super::Server::serve).
///
/// Native `async fn` in traits (no boxing): the accept loop and each
/// connection are monomorphised over the listener's stream type.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The address of a peer, and of the listener itself.
    type Addr: Send;

    /// Waits for the next connection. Per-connection failures (a peer that
    /// reset before being accepted) are skipped, resource exhaustion (no
    /// descriptors left) is retried after a pause, so this never fails.
    /// Must be cancel-safe: the accept loop drops it to reap connections.
    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok((stream, peer)) => match stream.set_nodelay(true) {
                    Ok(()) => return (stream, peer),
                    Err(e) => accept_error(e).await,
                },
                Err(e) => accept_error(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// A unix listener that owns its socket file: the file is removed on drop.
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixSocketListener {
    listener: UnixListener,
    path: PathBuf,
}

#[cfg(unix)]
impl UnixSocketListener {
    /// Binds `path`. A stale file there is removed first; a directory there
    /// is an error.
    pub fn bind(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let bind_err = |source| Error::Bind {
            address: Address::Unix(path.clone()).to_string(),
            source,
        };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => return Err(Error::UnixPathIsDirectory(path)),
            Ok(_) => std::fs::remove_file(&path).map_err(bind_err)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = UnixListener::bind(&path).map_err(bind_err)?;
        Ok(UnixSocketListener { listener, path })
    }

    /// The socket file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[cfg(unix)]
impl Listener for UnixSocketListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (UnixStream, tokio::net::unix::SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => accept_error(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<tokio::net::unix::SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(unix)]
impl Drop for UnixSocketListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A listener bound from an [`Address`]: TCP, TLS or unix, chosen at run time.
///
/// Its [`Listener::Addr`] is an [`Address`]; a unix peer, which has no
/// name, is reported as the listener's own path. A TLS listener re-reads
/// its certificate files on SIGHUP (unix) or [`Bound::reload_tls`].
#[derive(Debug)]
pub struct Bound {
    inner: BoundInner,
    local: Address,
}

#[derive(Debug)]
enum BoundInner {
    Tcp(TcpListener),
    Tls(TcpListener, TlsListening),
    #[cfg(unix)]
    Unix(UnixSocketListener),
}

/// The TLS config of a `tls:` listener and its SIGHUP task, stopped on drop.
#[derive(Debug)]
struct TlsListening {
    state: Arc<TlsState>,
    reloader: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListening {
    fn drop(&mut self) {
        self.reloader.abort();
    }
}

impl Bound {
    /// Binds `address` with the default [`Config`] (so a `tls:` address,
    /// which needs a certificate, fails: see [`Bound::bind_with`]). A stale
    /// file at a unix path is removed first; a directory there is an
    /// error. TCP port 0 picks a free port.
    pub async fn bind(address: &Address) -> Result<Self, Error> {
        Self::bind_with(address, &Config::default()).await
    }

    /// Binds `address`; a `tls:` address takes its certificate, key and
    /// client CA from `config` ([`Config::tls_cert`]...), all read before
    /// binding, so a missing file fails here, naming it. Must be called
    /// within a tokio runtime (a TLS listener installs its SIGHUP handler).
    pub async fn bind_with(address: &Address, config: &Config) -> Result<Self, Error> {
        match address {
            Address::Tcp { .. } => {
                let (listener, local) = bind_tcp_address(address).await?;
                Ok(Bound {
                    inner: BoundInner::Tcp(listener),
                    local: Address::from_socket_addr(local),
                })
            }
            Address::Tls { .. } => {
                let state = TlsState::new(TlsFiles::from_config(config, &address.to_string())?)?;
                let (listener, local) = bind_tcp_address(address).await?;
                let reloader = tls::reload_on_sighup(&state)?;
                Ok(Bound {
                    inner: BoundInner::Tls(listener, TlsListening { state, reloader }),
                    local: tls_address(local),
                })
            }
            #[cfg(unix)]
            Address::Unix(path) => Ok(Bound {
                inner: BoundInner::Unix(UnixSocketListener::bind(path.clone())?),
                local: address.clone(),
            }),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(Error::UnixUnsupported(address.to_string())),
        }
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_address(&self) -> &Address {
        &self.local
    }

    /// Re-reads a TLS listener's certificate files, as SIGHUP does: new
    /// handshakes use them, open connections keep theirs. On failure the
    /// config in force stays. A TCP or unix listener has nothing to reload.
    pub fn reload_tls(&self) -> Result<(), Error> {
        match &self.inner {
            BoundInner::Tls(_, tls) => tls.state.reload(),
            _ => Ok(()),
        }
    }
}

/// Binds the first address `address` (tcp: or tls:) resolves to.
async fn bind_tcp_address(address: &Address) -> Result<(TcpListener, std::net::SocketAddr), Error> {
    let bind_err = |source| Error::Bind {
        address: address.to_string(),
        source,
    };
    let host_port = address.host_port().unwrap_or_default();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
    for addr in tokio::net::lookup_host(&host_port)
        .await
        .map_err(bind_err)?
    {
        match bind_tcp(addr) {
            Ok(listener) => {
                let local = TcpListener::local_addr(&listener).map_err(bind_err)?;
                return Ok((listener, local));
            }
            Err(e) => last = e,
        }
    }
    Err(bind_err(last))
}

fn tls_address(addr: std::net::SocketAddr) -> Address {
    Address::Tls {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

impl Listener for Bound {
    type Io = Stream;
    type Addr = Address;

    async fn accept(&mut self) -> (Stream, Address) {
        match &mut self.inner {
            BoundInner::Tcp(listener) => {
                let (stream, peer) = Listener::accept(listener).await;
                (Stream::Tcp(stream), Address::from_socket_addr(peer))
            }
            BoundInner::Tls(listener, tls) => {
                // No I/O here: the handshake runs in the connection's task.
                let (stream, peer) = Listener::accept(listener).await;
                let stream = tls.state.accept(stream, peer);
                (Stream::Tls(Box::new(stream)), tls_address(peer))
            }
            #[cfg(unix)]
            BoundInner::Unix(listener) => {
                let (stream, _) = Listener::accept(listener).await;
                (Stream::Unix(stream), self.local.clone())
            }
        }
    }

    fn local_addr(&self) -> io::Result<Address> {
        Ok(self.local.clone())
    }
}

fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // A deep backlog: clients over the connection limit wait here.
    socket.listen(4096)
}

/// A connection accepted by [`Bound`], TCP, TLS or unix.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A TLS connection (boxed: its state is large), whose handshake runs
    /// on first use or [`Stream::handshake`].
    Tls(Box<TlsStream>),
    /// A unix socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// The certificate identity of a mutual-TLS client, once the handshake
    /// is done ([`Stream::handshake`], or the first read); `None` for TCP
    /// and unix, and for a TLS client that presented no certificate.
    pub fn tls_identity(&self) -> Option<&TlsIdentity> {
        match self {
            Stream::Tls(tls) => tls.identity(),
            _ => None,
        }
    }

    /// Completes a TLS handshake (within its 10 s deadline) so that
    /// [`Stream::tls_identity`] is known; nothing to do for TCP and unix.
    pub async fn handshake(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(tls) => tls.handshake().await,
            _ => Ok(()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

async fn accept_error(e: io::Error) {
    // Per-connection failures (reset before accept) cost nothing; running out
    // of descriptors or memory is retried after a pause instead of spinning.
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => {
            debug!(error = %e, "accept failed")
        }
        _ => {
            error!(error = %e, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
