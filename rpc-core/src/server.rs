//! The socket server: one accept loop for TCP and unix sockets, one task per
//! connection, handlers of a connection running concurrently with replies
//! written in request order, and a graceful drain on shutdown.
//!
//! # Layout
//!
//! - [`Listener`] binds an [`Address`] and accepts [`Stream`]s of either kind;
//! - [`Server`] owns the registry, the context and the [`Config`], and runs
//!   the accept loop until its shutdown future resolves;
//! - `Connection` (private) is the per-connection state machine: read and
//!   decode frames, start calls, collect replies in order, batch writes;
//! - [`env`](mod@env): [`Config`] from `RPC_*` environment variables.

use std::future::{poll_fn, Future};
use std::io;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, error, info, warn, Span};

use crate::builtins;
use crate::context::Context;
use crate::events::{self, EventTable, Hub, Subscriber};
use crate::registry::{panic_reply, Call, CallFuture, Registry};
use crate::wire::{encode_response, Reply, RequestCodec, DEFAULT_MAX_FRAME};
use crate::{Address, Error};

pub mod env;

/// Limits of a server. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request (method name plus payload) in bytes; a larger header
    /// closes the connection after the replies owed are written.
    /// Default [`DEFAULT_MAX_FRAME`] (4 MiB).
    pub max_frame: usize,
    /// Requests of one connection running at once; at the bound the server
    /// stops reading from that connection until a reply is ready. Default 128.
    pub max_in_flight: usize,
    /// Payload bytes of one connection's requests still running (those not
    /// answered at their first poll); at the bound the server stops reading
    /// from that connection, so slow calls with large arguments cannot pile
    /// up `max_in_flight` frames. A single larger request still runs alone.
    /// Default 16 MiB.
    pub max_in_flight_bytes: usize,
    /// Unsent reply bytes of one connection above which the server stops
    /// reading from it (a client that does not read its replies). Default 1 MiB.
    pub max_write_backlog: usize,
    /// Connections served at once; further clients wait in the accept
    /// backlog until one closes. Default 16384.
    pub max_connections: usize,
    /// Close a connection that has sent nothing and has nothing in flight for
    /// this long. Default `None` (never): the contract has no idle rule.
    pub idle_timeout: Option<Duration>,
    /// How long a shutdown waits for connections to answer what they have
    /// read before aborting them. Default 30 s.
    pub drain_timeout: Duration,
    /// Events waiting for one subscribed connection; beyond it, events for
    /// that connection are dropped and counted (`PROTOCOL.md`).
    /// Default [`events::DEFAULT_REMOTE_QUEUE`] (256).
    pub max_event_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 128,
            max_in_flight_bytes: 16 * 1024 * 1024,
            max_write_backlog: 1024 * 1024,
            max_connections: 16384,
            idle_timeout: None,
            drain_timeout: Duration::from_secs(30),
            max_event_queue: events::DEFAULT_REMOTE_QUEUE,
        }
    }
}

const READ_CHUNK: usize = 4 * 1024;
/// An empty buffer larger than this (after a big frame or reply) is freed
/// rather than kept for the life of the connection.
const KEEP_BUFFER: usize = 64 * 1024;
/// How long a connection closed for a protocol error keeps discarding what
/// the peer still sends, so that closing does not reset the replies it owes.
const LINGER: Duration = Duration::from_secs(2);

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

/// A server: the registry of methods, the context they borrow, and limits.
///
/// ```no_run
/// # async fn run() -> Result<(), rpc_core::Error> {
/// use rpc_core::server::{shutdown_signal, Listener, Server};
/// let server = Server::new(rpc_core::Context::new())?;
/// let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?).await?;
/// println!("listening on {}", listener.local_address());
/// server.serve(listener, shutdown_signal()).await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    registry: &'static Registry,
    context: Context,
    config: Config,
}

#[derive(Debug)]
struct Shared {
    registry: &'static Registry,
    context: Context,
    config: Config,
    /// The context's hub, whose events subscribers receive.
    events: Hub,
    /// Set before the stop token is cancelled: connections read this flag on
    /// every turn (the token's own check takes a lock).
    stopping: AtomicBool,
}

impl Server {
    /// A server for every `#[remote]` function in the program, with default
    /// limits. Fails if two functions, or two events, share a wire name.
    pub fn new(context: Context) -> Result<Self, Error> {
        EventTable::global()?;
        Ok(Self::with_registry(Registry::global()?, context))
    }

    /// A server for the methods of `registry`.
    ///
    /// Subscribers receive the events of the [`Hub`] in `context`; without
    /// one, a new hub is added (a `#[remote]` function may take it as `&Hub`).
    pub fn with_registry(registry: &'static Registry, mut context: Context) -> Self {
        if context.get::<Hub>().is_none() {
            context.insert(Arc::new(Hub::new()));
        }
        // What `rpc.describe` describes.
        context.insert(Arc::new(builtins::describe::ServedRegistry(registry)));
        Server {
            registry,
            context,
            config: Config::default(),
        }
    }

    /// Replaces the limits.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves `listener` until `shutdown` resolves, then stops accepting,
    /// stops reading, answers every request already read (for at most
    /// [`Config::drain_timeout`]) and returns. A unix socket file is removed
    /// when the listener is dropped on return.
    pub async fn serve(
        self,
        listener: Listener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let events = match self.context.get::<Hub>() {
            Some(hub) => Hub::clone(&hub),
            None => Hub::new(),
        };
        let shared = Arc::new(Shared {
            registry: self.registry,
            context: self.context,
            config: self.config,
            events,
            stopping: AtomicBool::new(false),
        });
        let limit = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut peak = 0;
        info!(address = %listener.local_address(), "serving");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {
                    if connections.is_empty() && peak >= TRIM_AFTER {
                        trim_heap();
                        peak = 0;
                    }
                }
                (permit, stream) = accept(&limit, &listener) => {
                    let Ok(permit) = permit else { break };
                    match stream {
                        Ok(stream) => {
                            let conn = Connection::new(stream, Arc::clone(&shared), stop.clone());
                            connections.spawn(async move {
                                conn.run().await;
                                drop(permit);
                            });
                            peak = peak.max(connections.len());
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        }
        info!(
            connections = connections.len(),
            "shutting down: draining connections"
        );
        drop(listener);
        shared.stopping.store(true, Ordering::Release);
        stop.cancel();
        let drained = tokio::time::timeout(shared.config.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                connections = connections.len(),
                "drain timed out: aborting connections"
            );
            connections.shutdown().await;
        }
        info!("stopped");
        Ok(())
    }
}

/// Waits for a free connection slot, then for a client. Both steps are
/// cancel-safe, so the accept loop may drop this future to reap finished
/// connections (a finished task's memory is freed only when reaped).
async fn accept(
    limit: &Arc<Semaphore>,
    listener: &Listener,
) -> (
    Result<OwnedSemaphorePermit, AcquireError>,
    io::Result<Stream>,
) {
    let permit = Arc::clone(limit).acquire_owned().await;
    (permit, listener.accept().await)
}

/// Connections that must have been open at once before the last one closing
/// trims the heap.
const TRIM_AFTER: usize = 256;

/// Returns the heap pages freed by a crowd of closed connections to the
/// system: glibc keeps them otherwise, scattered between live allocations.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory, under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
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

/// A future that resolves on Ctrl-C (SIGINT), or SIGTERM on unix.
///
/// On unix the handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after start-up is caught.
/// Must be called within a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term
                    .err()
                    .or(int.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                warn!(error = %e, "cannot install the signal handlers; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown requested");
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Reading and decoding.
    Open,
    /// Shutdown: decode what is buffered, read nothing more.
    Draining,
    /// Nothing more will be decoded.
    Done,
}

struct Connection {
    id: u64,
    io: Stream,
    shared: Arc<Shared>,
    codec: RequestCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    in_flight: FuturesOrdered<InFlight>,
    /// Sum of the payload sizes of the calls in `in_flight`.
    in_flight_bytes: usize,
    reading: Reading,
    /// Polled once, to register the task for the cancellation wake-up, and
    /// kept alive; after that `Shared::stopping` is read instead, the waker
    /// being the task's own.
    stop_wait: Pin<Box<WaitForCancellationFutureOwned>>,
    stop_registered: bool,
    idle: Option<Pin<Box<Sleep>>>,
    /// Closed for a protocol error: discard what the peer still sends.
    linger: bool,
    /// Set by `rpc.subscribe`; a connection that never subscribes pays one
    /// `is_some` per reply.
    subscriber: Option<Box<Subscriber>>,
}

impl Connection {
    fn new(io: Stream, shared: Arc<Shared>, stop: CancellationToken) -> Self {
        let config = &shared.config;
        Connection {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            io,
            codec: RequestCodec::new(config.max_frame),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            in_flight: FuturesOrdered::new(),
            in_flight_bytes: 0,
            reading: Reading::Open,
            stop_wait: Box::pin(stop.cancelled_owned()),
            stop_registered: false,
            idle: config.idle_timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            linger: false,
            subscriber: None,
            shared,
        }
    }

    async fn run(mut self) {
        debug!(conn = self.id, "connection opened");
        match poll_fn(|cx| self.poll_run(cx)).await {
            Ok(()) => debug!(conn = self.id, "connection closed"),
            Err(e) => debug!(conn = self.id, error = %e, "connection failed"),
        }
        if self.linger {
            let _ = tokio::time::timeout(LINGER, discard(&mut self.io)).await;
        }
    }

    fn poll_run(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut progress = false;
            if self.reading == Reading::Open && self.stopped(cx) {
                self.reading = Reading::Draining;
            }
            if self.poll_idle(cx) {
                debug!(conn = self.id, "idle timeout");
                self.reading = Reading::Done;
            }
            // Queued events before new requests: a request read finds its
            // connection's queue empty unless the write backlog is full.
            if let Some(subscriber) = &mut self.subscriber {
                let backlog = self.shared.config.max_write_backlog;
                progress |= subscriber.write_into(cx, &mut self.wbuf, backlog);
            }
            progress |= self.read_requests(cx)?;
            // Replies wait in `in_flight` while the backlog is full, so that
            // the events flushed before each (at most a queue's worth) are
            // the only bytes to go over it.
            let backlog = self.shared.config.max_write_backlog;
            while self.wbuf.len() < backlog {
                let Poll::Ready(Some((reply, cost))) = self.in_flight.poll_next_unpin(cx) else {
                    break;
                };
                self.in_flight_bytes -= cost;
                self.flush_events();
                encode_response(reply.status, &reply.body, &mut self.wbuf);
                progress = true;
            }
            while !self.wbuf.is_empty() {
                match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        self.wbuf.advance(n);
                        progress = true;
                        if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_BUFFER {
                            self.wbuf = BytesMut::new();
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if self.reading == Reading::Done && self.in_flight.is_empty() && self.wbuf.is_empty() {
                // Release the buffers before the (possibly lingering) close.
                self.rbuf = BytesMut::new();
                self.wbuf = BytesMut::new();
                ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn stopped(&mut self, cx: &mut TaskContext<'_>) -> bool {
        if self.stop_registered {
            return self.shared.stopping.load(Ordering::Acquire);
        }
        self.stop_registered = true;
        self.stop_wait.as_mut().poll(cx).is_ready()
    }

    /// Decodes and starts every buffered request the limits allow, reading
    /// more from the socket when the buffer holds no whole frame.
    fn read_requests(&mut self, cx: &mut TaskContext<'_>) -> io::Result<bool> {
        let mut progress = false;
        let config = &self.shared.config;
        let (max_in_flight, max_in_flight_bytes, max_write_backlog, idle_timeout) = (
            config.max_in_flight,
            config.max_in_flight_bytes,
            config.max_write_backlog,
            config.idle_timeout,
        );
        while self.reading != Reading::Done
            && self.in_flight.len() < max_in_flight
            && self.in_flight_bytes < max_in_flight_bytes
            && self.wbuf.len() < max_write_backlog
        {
            match self.codec.frame(&self.rbuf) {
                Ok(Some(frame)) => {
                    // Handlers decode their payload before returning, so the
                    // frame is read in place and then dropped from the buffer.
                    let rbuf = std::mem::take(&mut self.rbuf);
                    self.start(cx, frame.method(&rbuf), frame.payload(&rbuf));
                    self.rbuf = rbuf;
                    self.rbuf.advance(frame.len());
                    progress = true;
                    continue;
                }
                // An empty read buffer, large or not, goes back to the pool
                // (which frees a large one) when the next read finds nothing.
                Ok(None) => {}
                Err(e) => {
                    warn!(conn = self.id, error = %e, "closing connection");
                    self.reading = Reading::Done;
                    self.linger = true;
                    break;
                }
            }
            if self.reading == Reading::Draining {
                self.reading = Reading::Done;
                break;
            }
            if !self.wbuf.is_empty() {
                // Replies are ready: write them before reading more, so that a
                // client pipelining without pause gets its replies promptly.
                break;
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = read_buffers::take();
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
                self.rbuf.reserve(READ_CHUNK);
            }
            // `poll_read` (not `try_read`): tokio clears readiness after a
            // short read, which saves a `recv` that would only say EAGAIN.
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Pending => {
                    // Waiting with nothing buffered: the buffer goes back to
                    // the thread's pool, so an idle connection holds none.
                    if self.rbuf.is_empty() {
                        read_buffers::give(std::mem::take(&mut self.rbuf));
                    }
                    break;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(0)) => {
                    if !self.rbuf.is_empty() {
                        debug!(
                            conn = self.id,
                            bytes = self.rbuf.len(),
                            "peer closed mid-frame"
                        );
                    }
                    self.reading = Reading::Done;
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    if let (Some(idle), Some(timeout)) = (&mut self.idle, idle_timeout) {
                        idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                }
            }
        }
        Ok(progress)
    }

    /// Writes the queued events before a reply: an event fired while a
    /// request ran reaches its connection before the request's reply.
    fn flush_events(&mut self) {
        if let Some(subscriber) = &mut self.subscriber {
            subscriber.flush_into(&mut self.wbuf);
        }
    }

    /// Answers the built-in methods (`rpc.*`) that need the connection.
    fn builtin(&mut self, name: &[u8], payload: &[u8]) -> Option<(&'static str, Reply)> {
        let capacity = self.shared.config.max_event_queue;
        builtins::connection(
            name,
            payload,
            &self.shared.events,
            &mut self.subscriber,
            capacity,
        )
    }

    fn poll_idle(&mut self, cx: &mut TaskContext<'_>) -> bool {
        // A subscriber awaits events: it is never idle.
        let busy = !self.in_flight.is_empty() || !self.wbuf.is_empty() || self.subscriber.is_some();
        match (&mut self.idle, self.shared.config.idle_timeout) {
            (Some(idle), Some(timeout)) if self.reading == Reading::Open => {
                if busy {
                    idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                    false
                } else {
                    idle.as_mut().poll(cx).is_ready()
                }
            }
            _ => false,
        }
    }

    fn start(&mut self, cx: &mut TaskContext<'_>, name: &[u8], payload: &[u8]) {
        let (method, call) = match self.builtin(name, payload) {
            Some((method, reply)) => (method, Call::Ready(reply)),
            None => {
                let shared = &self.shared;
                let (method, call) = shared.registry.call(&shared.context, name, payload);
                (method.map_or("", |m| m.name), call)
            }
        };
        let span = tracing::debug_span!(
            "request",
            method = %String::from_utf8_lossy(name),
            conn = self.id,
            status = tracing::field::Empty,
            micros = tracing::field::Empty,
        );
        let started = (!span.is_disabled()).then(|| {
            debug!(parent: &span, "request started");
            Instant::now()
        });
        let state = match call {
            Call::Ready(reply) => State::Ready(Some(reply)),
            Call::Pending(future) => State::Running(future),
        };
        let mut in_flight = InFlight {
            method,
            cost: payload.len(),
            state,
            span,
            started,
        };
        // Most calls finish at their first poll: with nothing owed before
        // them, their reply goes straight to the write buffer.
        if self.in_flight.is_empty() {
            if let Poll::Ready((reply, _)) = Pin::new(&mut in_flight).poll(cx) {
                self.flush_events();
                encode_response(reply.status, &reply.body, &mut self.wbuf);
                return;
            }
        }
        self.in_flight_bytes += in_flight.cost;
        self.in_flight.push_back(in_flight);
    }
}

/// Read buffers of connections waiting for their next request, per thread.
///
/// tokio reports a new socket readable before any byte arrives, and a
/// connection waits far longer than it reads: a buffer is taken for a read
/// and given back when the read finds nothing, so idle connections hold no
/// buffer and a busy thread reuses a few without allocating.
mod read_buffers {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::{KEEP_BUFFER, READ_CHUNK};

    /// Buffers kept per thread; more are freed.
    const POOLED: usize = 64;

    thread_local! {
        static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer with room for a read.
    pub(super) fn take() -> BytesMut {
        POOL.with(|pool| pool.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
    }

    /// Returns an empty buffer; a large one is freed instead.
    pub(super) fn give(mut buf: BytesMut) {
        if buf.capacity() > KEEP_BUFFER {
            return;
        }
        buf.clear();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED {
                pool.push(buf);
            }
        });
    }
}

/// Reads and drops whatever the peer still sends, until it closes.
async fn discard(io: &mut Stream) {
    // On the heap: an array here would sit in every connection's future.
    let mut sink = vec![0u8; 8192];
    loop {
        let mut buf = ReadBuf::new(&mut sink);
        match poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut buf)).await {
            Ok(()) if !buf.filled().is_empty() => {}
            _ => return,
        }
    }
}

/// One request of a connection, from decode to reply.
struct InFlight {
    method: &'static str,
    /// The payload's size, counted against `max_in_flight_bytes`.
    cost: usize,
    state: State,
    span: Span,
    started: Option<Instant>,
}

enum State {
    Ready(Option<Reply>),
    Running(CallFuture),
}

impl Future for InFlight {
    /// The reply, and the cost to give back.
    type Output = (Reply, usize);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<(Reply, usize)> {
        let this = self.get_mut();
        let reply = match &mut this.state {
            State::Ready(reply) => reply
                .take()
                .unwrap_or_else(|| Reply::error("internal error: reply taken twice")),
            State::Running(future) => {
                let _entered = this.span.enter();
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    future.as_mut().poll(cx)
                })) {
                    Ok(Poll::Ready(reply)) => reply,
                    Ok(Poll::Pending) => return Poll::Pending,
                    Err(panic) => {
                        let reply = panic_reply(this.method, panic);
                        this.state = State::Ready(None);
                        reply
                    }
                }
            }
        };
        if let Some(started) = this.started {
            let micros = started.elapsed().as_micros() as u64;
            this.span.record("status", reply.status);
            this.span.record("micros", micros);
            debug!(parent: &this.span, status = reply.status, micros, "reply");
        }
        Poll::Ready((reply, this.cost))
    }
}
