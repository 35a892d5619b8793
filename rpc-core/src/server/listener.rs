//! Listening sockets. [`Listener`] is what [`Server::serve`](super::Server::serve)
//! accepts connections from, in the shape of axum's `serve::Listener`: an
//! associated stream type, an `accept` that handles per-connection errors
//! itself, and the local address. It is implemented for TCP (with
//! `TCP_NODELAY`) and unix sockets ([`UnixSocketListener`] creates its
//! socket file owner-only, replaces only a stale socket, and removes its own
//! file on drop); [`Bound`] binds any kind from an [`Address`].
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
use crate::{Address, Error, Peer};

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

    /// Who is on the other end of an accepted connection: the [`Peer`] its
    /// calls' `&Peer` parameters get. Called once per connection; the
    /// default is [`Peer::Unknown`].
    fn peer(&self, io: &Self::Io, addr: &Self::Addr) -> Peer {
        let _ = (io, addr);
        Peer::Unknown
    }

    /// Readies an accepted connection in its own task, before its first
    /// request is read, and completes its peer: a TLS listener finishes the
    /// handshake here and adds the client certificate's identity. An error
    /// drops the connection (the listener has logged why). The default
    /// does nothing.
    fn establish<'a>(
        io: &'a mut Self::Io,
        peer: &'a mut Peer,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        let _ = (io, peer);
        std::future::ready(Ok(()))
    }
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

    fn peer(&self, _: &TcpStream, addr: &std::net::SocketAddr) -> Peer {
        Peer::Tcp { addr: *addr }
    }
}

/// The mode of a unix socket file unless told otherwise: owner only.
pub const DEFAULT_UNIX_MODE: u32 = 0o600;

/// A unix listener that owns its socket file: the file is removed on drop,
/// if it is still the one this listener bound.
#[cfg(unix)]
#[derive(Debug)]
pub struct UnixSocketListener {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's identity, recorded at bind: another server may
    /// have replaced the file since, and its socket is not ours to remove.
    file: FileId,
}

#[cfg(unix)]
impl UnixSocketListener {
    /// Binds `path` with the [`DEFAULT_UNIX_MODE`] (0600), as
    /// [`bind_with_mode`](Self::bind_with_mode).
    pub fn bind(path: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::bind_with_mode(path, DEFAULT_UNIX_MODE)
    }

    /// Binds `path`, creating a socket file that only its owner can use
    /// (0600 whatever the umask, with no moment when it is more open), then
    /// sets its permission bits to `mode` (0660 lets a group connect).
    ///
    /// A stale socket at `path` (no server answers on it) is replaced. A
    /// live one is [`Error::UnixPathInUse`]; a regular file, a symbolic
    /// link, a directory or anything else is [`Error::UnixPathTaken`]:
    /// neither is touched.
    pub fn bind_with_mode(path: impl Into<PathBuf>, mode: u32) -> Result<Self, Error> {
        use std::os::unix::fs::PermissionsExt;

        let path = path.into();
        let bind_err = |source| Error::Bind {
            address: Address::Unix(path.clone()).to_string(),
            source,
        };
        clear_stale_socket(&path)?;
        let listener = bind_private(&path).map_err(bind_err)?;
        // From here the file is ours: a failure removes it again.
        let finish = || -> io::Result<(UnixListener, FileId)> {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
            let file = FileId::of(&std::fs::symlink_metadata(&path)?);
            listener.set_nonblocking(true)?;
            Ok((UnixListener::from_std(listener)?, file))
        };
        match finish() {
            Ok((listener, file)) => Ok(UnixSocketListener {
                listener,
                path,
                file,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(bind_err(e))
            }
        }
    }

    /// The socket file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Which file a path names: device and inode, and the change time, since a
/// removed file's inode number may be given to the next file made.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

#[cfg(unix)]
impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Removes a stale socket at `path`; anything else there is an error.
#[cfg(unix)]
fn clear_stale_socket(path: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;

    let bind_err = |source| Error::Bind {
        address: Address::Unix(path.to_path_buf()).to_string(),
        source,
    };
    let kind = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bind_err(e)),
    };
    let what = if kind.is_socket() {
        return match probe(path) {
            Probe::Live => Err(Error::UnixPathInUse(path.to_path_buf())),
            Probe::Stale => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(bind_err(e)),
            },
            Probe::Failed(e) => Err(bind_err(e)),
        };
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "something other than a socket"
    };
    Err(Error::UnixPathTaken {
        path: path.to_path_buf(),
        what,
    })
}

#[cfg(unix)]
enum Probe {
    Live,
    Stale,
    Failed(io::Error),
}

/// Whether a server answers on the socket at `path`. The connect does not
/// block: a live server with a full backlog answers "would block".
#[cfg(unix)]
fn probe(path: &std::path::Path) -> Probe {
    use socket2::{Domain, SockAddr, Socket, Type};

    let attempt = || -> io::Result<()> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&SockAddr::unix(path)?)
    };
    match attempt() {
        Ok(()) => Probe::Live,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Live,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Probe::Live,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Probe::Stale,
        Err(e) => Probe::Failed(e),
    }
}

/// Binds a unix socket at `path` whose file is created 0600 (less if the
/// umask takes more away), listening.
///
/// Linux creates the file with the socket inode's own mode minus the umask,
/// so the socket is `fchmod`ed to 0600 before `bind`: the file never exists
/// with a wider mode, and nothing else changes. Setting the umask around
/// `bind` instead would race with every other thread of the process that
/// creates a file (the umask is per process), so it is not done.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_private(path: &std::path::Path) -> io::Result<std::os::unix::net::UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::os::fd::AsRawFd;

    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // SAFETY: fchmod reads no memory; the descriptor is open and ours.
    if unsafe { libc::fchmod(socket.as_raw_fd(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Elsewhere (BSDs, macOS) a socket file's mode ignores `fchmod`: the socket
/// is bound inside a fresh 0700 directory beside `path`, made 0600 there,
/// and renamed into place, so that no one else can reach it before.
#[cfg(any(test, all(unix, not(any(target_os = "linux", target_os = "android")))))]
fn bind_via_private_dir(path: &std::path::Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::sync::atomic::{AtomicU32, Ordering};

    static NEXT: AtomicU32 = AtomicU32::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let dir = loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".rpc{}.{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let inner = dir.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&inner).and_then(|listener| {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&dir);
    bound
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
use bind_via_private_dir as bind_private;

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

    fn peer(&self, io: &UnixStream, _: &tokio::net::unix::SocketAddr) -> Peer {
        unix_peer(io)
    }
}

/// The credentials of a unix peer, taken by the kernel at connect.
#[cfg(unix)]
fn unix_peer(io: &UnixStream) -> Peer {
    match io.peer_cred() {
        Ok(cred) => Peer::Unix {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        },
        Err(e) => {
            debug!(error = %e, "no credentials for a unix peer");
            Peer::Unknown
        }
    }
}

#[cfg(unix)]
impl Drop for UnixSocketListener {
    fn drop(&mut self) {
        // Only the file this listener bound: if the path was removed and
        // another server bound it since, that server's socket stays.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if FileId::of(&meta) == self.file {
                let _ = std::fs::remove_file(&self.path);
            }
        }
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
    /// which needs a certificate, fails: see [`Bound::bind_with`]). TCP port
    /// 0 picks a free port; a unix socket is made as
    /// [`UnixSocketListener::bind_with_mode`] says (only a stale socket at
    /// the path is replaced).
    pub async fn bind(address: &Address) -> Result<Self, Error> {
        Self::bind_with(address, &Config::default()).await
    }

    /// Binds `address` with the settings of `config` that concern binding:
    /// [`Config::unix_mode`] for a unix socket; for a `tls:` address its
    /// certificate, key and client CA ([`Config::tls_cert`]...), all read
    /// before binding, so a missing file fails here, naming it. Must be
    /// called within a tokio runtime (a TLS listener installs its SIGHUP
    /// handler).
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
                inner: BoundInner::Unix(UnixSocketListener::bind_with_mode(
                    path.clone(),
                    config.unix_mode,
                )?),
                local: address.clone(),
            }),
            #[cfg(not(unix))]
            Address::Unix(_) => {
                let _ = config;
                Err(Error::UnixUnsupported(address.to_string()))
            }
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

    fn peer(&self, io: &Stream, _: &Address) -> Peer {
        match io {
            Stream::Tcp(stream) => match stream.peer_addr() {
                Ok(addr) => Peer::Tcp { addr },
                Err(_) => Peer::Unknown,
            },
            Stream::Tls(stream) => Peer::Tls {
                addr: stream.peer_addr(),
                subject: None,
                sans: Vec::new(),
            },
            #[cfg(unix)]
            Stream::Unix(stream) => unix_peer(stream),
        }
    }

    async fn establish(io: &mut Stream, peer: &mut Peer) -> io::Result<()> {
        let Stream::Tls(_) = io else { return Ok(()) };
        io.handshake().await?;
        if let (Peer::Tls { subject, sans, .. }, Some(identity)) = (peer, io.tls_identity()) {
            *subject = Some(identity.subject.clone());
            sans.clone_from(&identity.sans);
        }
        Ok(())
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
            if super::rate_limit::allow(&super::rate_limit::ACCEPT_ERRORS, "accept errors") {
                error!(error = %e, "accept failed; retrying in 100 ms");
            } else {
                debug!(error = %e, "accept failed; retrying in 100 ms");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[tokio::test]
    async fn drop_leaves_a_socket_that_replaced_its_own() {
        let dir = tempfile_dir();
        let path = dir.join("s.sock");
        let first = UnixSocketListener::bind(&path).unwrap();
        // A second name keeps the first inode in use: the second file cannot
        // be given its number, whatever the file system.
        let pin = dir.join("pin");
        std::fs::hard_link(&path, &pin).unwrap();
        std::fs::remove_file(&path).unwrap();
        let second = UnixSocketListener::bind(&path).unwrap();
        let ino = std::fs::symlink_metadata(&path).unwrap().ino();
        drop(first);
        assert_eq!(std::fs::symlink_metadata(&path).unwrap().ino(), ino);
        drop(second);
        assert!(std::fs::symlink_metadata(&path).is_err());
        std::fs::remove_file(&pin).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_mode_widens_the_owner_only_file() {
        let dir = tempfile_dir();
        let path = dir.join("g.sock");
        let listener = UnixSocketListener::bind_with_mode(&path, 0o660).unwrap();
        assert_eq!(mode(&path), 0o660);
        drop(listener);
        let listener = UnixSocketListener::bind(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        drop(listener);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn the_file_is_created_without_group_or_other_bits() {
        // Before any chmod: what `bind` itself made (0600 minus the umask;
        // a plain bind would make 0777 minus the umask, 0755 under 022).
        let dir = tempfile_dir();
        let path = dir.join("p.sock");
        let listener = bind_private(&path).unwrap();
        assert_eq!(mode(&path) & 0o177, 0, "{:o}", mode(&path));
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn the_private_directory_fallback_binds_0600_and_cleans_up() {
        let dir = tempfile_dir();
        let path = dir.join("d.sock");
        let listener = bind_via_private_dir(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        // The temporary directory is gone: only what was made is removed.
        std::fs::remove_dir(&dir).unwrap();
    }

    /// A fresh empty directory (rpc-core has no tempfile dependency).
    fn tempfile_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rpc-listener-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}
