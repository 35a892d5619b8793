//! Listening sockets: [`Listener`] binds an [`Address`] (TCP or unix) and
//! accepts [`Stream`]s of either kind.

use std::io;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, error};

use crate::{Address, Error};

/// A bound listening socket, TCP or unix.
///
/// A unix listener removes its socket file when dropped.
#[derive(Debug)]
pub struct Listener {
    inner: ListenerInner,
    local: Address,
}

#[derive(Debug)]
enum ListenerInner {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `address`. A stale file at a unix path is removed first; a
    /// directory there is an error. TCP port 0 picks a free port.
    pub async fn bind(address: &Address) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind {
            address: address.to_string(),
            source,
        };
        match address {
            Address::Tcp { .. } => {
                let host_port = address.host_port().unwrap_or_default();
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
                for addr in tokio::net::lookup_host(&host_port)
                    .await
                    .map_err(bind_err)?
                {
                    match bind_tcp(addr) {
                        Ok(listener) => {
                            let local =
                                Address::from_socket_addr(listener.local_addr().map_err(bind_err)?);
                            return Ok(Listener {
                                inner: ListenerInner::Tcp(listener),
                                local,
                            });
                        }
                        Err(e) => last = e,
                    }
                }
                Err(bind_err(last))
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.is_dir() => {
                        return Err(Error::UnixPathIsDirectory(path.clone()))
                    }
                    Ok(_) => std::fs::remove_file(path).map_err(bind_err)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(bind_err(e)),
                }
                let listener = UnixListener::bind(path).map_err(bind_err)?;
                Ok(Listener {
                    inner: ListenerInner::Unix(listener, path.clone()),
                    local: address.clone(),
                })
            }
            #[cfg(not(unix))]
            Address::Unix(_) => Err(Error::UnixUnsupported(address.to_string())),
        }
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_address(&self) -> &Address {
        &self.local
    }

    /// Accepts one connection, with `TCP_NODELAY` set on TCP.
    pub async fn accept(&self) -> io::Result<Stream> {
        match &self.inner {
            ListenerInner::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            #[cfg(unix)]
            ListenerInner::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok(Stream::Unix(stream))
            }
        }
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

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let ListenerInner::Unix(_, path) = &self.inner {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted connection, TCP or unix.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
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
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub(super) async fn accept_error(e: io::Error) {
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
