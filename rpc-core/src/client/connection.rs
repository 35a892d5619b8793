//! `Client`: a pipelined TCP, TLS or unix connection shared by any number
//! of tasks (feature `client`). Its first request asks for the multiplexing
//! extension (`rpc.hello`); calls made meanwhile wait in the queue. Replies
//! then come as calls finish, each call's timeout goes to the server as its
//! deadline, and a call given up is cancelled there; with a server without
//! the extension the connection keeps the base, in-order protocol.
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::tls::{connect_stream, ClientOptions, ClientStream};
use super::{CallError, Transport};
use crate::events::Event;
use crate::wire::{
    encode_mux_request, encode_request, MuxResponseCodec, ResponseCodec, CANCEL, EVENT_ID, HELLO,
    MULTIPLEX, STATUS_ERROR, STATUS_EVENT, STATUS_OK, SUBSCRIBE, UNSUBSCRIBE,
};
use crate::{Address, Error};

/// The timeout of a call unless [`Client::with_timeout`] sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests waiting for the writer; callers wait for room beyond this.
const QUEUE: usize = 1024;
/// The writer writes at most this much before taking more requests.
const BATCH: usize = 64 * 1024;
/// Events a [`Subscription`] holds before the ones it has no room for
/// are dropped (and counted in [`Subscription::dropped`]).
pub const SUBSCRIPTION_QUEUE: usize = 1024;

type ReplySender = oneshot::Sender<Result<Bytes, CallError>>;

struct Outgoing {
    method: Bytes,
    payload: Vec<u8>,
    /// `None` for a request whose reply nobody awaits (the
    /// `rpc.unsubscribe` of a dropped subscription, an `rpc.cancel`).
    reply: Option<ReplySender>,
    /// The call's id on a multiplexed connection (unused otherwise).
    id: u32,
    /// When the caller gives up: sent as the call's deadline when multiplexed.
    deadline: Option<Instant>,
}

/// The callers whose requests are written and not yet answered: oldest
/// first in the base protocol, by id when multiplexed. Locked only to push
/// or pop one entry, never across I/O.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Option<ReplySender>>,
    by_id: HashMap<u32, ReplySender>,
    closed: bool,
}

/// Whether a connection asks for the multiplexing extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// Ask for multiplexing (`rpc.hello`) and use it when the server
    /// enables it, else the base protocol. The default.
    #[default]
    Negotiate,
    /// The base protocol only: replies in request order, no `rpc.hello`.
    Base,
}

/// Where a connection stands with the multiplexing extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `rpc.hello` is written and not answered: requests wait.
    Negotiating,
    /// Replies in request order.
    Base,
    /// Replies by id.
    Multiplexed,
}

/// Where the reader sends each event: the subscriptions of its name.
#[derive(Default)]
struct Routes {
    by_name: HashMap<&'static str, Vec<Route>>,
    next_id: u64,
}

struct Route {
    id: u64,
    events: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

type SharedRoutes = Arc<Mutex<Routes>>;

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_name
                    .iter()
                    .map(|(name, routes)| (name, routes.len())),
            )
            .finish()
    }
}

type SharedPending = Arc<Mutex<Pending>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to a server, pipelined: every call's request is written
/// as it comes and replies are matched to callers in order.
///
/// Cloning is cheap and every clone shares the connection, so many tasks
/// can call at once. The connection closes when the last clone is
/// dropped, or when the server closes it; then every pending and later
/// call fails with [`CallError::Closed`].
///
/// Calls are made through the stubs `#[remote]` generates (`EchoRemote`
/// for `echo`, ...), or raw through [`Transport::call`]. Events come
/// through [`subscribe`](Client::subscribe), on the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    requests: mpsc::Sender<Outgoing>,
    routes: SharedRoutes,
    timeout: Duration,
    /// The next call id (used once multiplexed).
    ids: Arc<AtomicU32>,
    mode: watch::Receiver<Mode>,
}

impl Client {
    /// Connects to `tcp:HOST:PORT`, `tls:HOST:PORT` or `unix:PATH`, with
    /// [`ClientOptions::default`] (TLS trusts the system's roots).
    pub async fn connect(address: &str) -> Result<Client, Error> {
        let address: Address = address.parse()?;
        Self::connect_to(&address).await
    }

    /// Connects to `address` with `options`: the CA, client certificate and
    /// server name of a `tls:` address, and the connect timeout.
    pub async fn connect_with(address: &str, options: &ClientOptions) -> Result<Client, Error> {
        let address: Address = address.parse()?;
        Self::connect_to_with(&address, options).await
    }

    /// Connects to `address`, with `TCP_NODELAY` on TCP (small requests
    /// would otherwise wait for the delayed ACK), multiplexed when the
    /// server offers it. Returns once connected: the answer to `rpc.hello`
    /// arrives later, and calls wait for it.
    pub async fn connect_to(address: &Address) -> Result<Client, Error> {
        Self::connect_to_with(address, &ClientOptions::default()).await
    }

    /// Connects to `address` speaking `protocol`: [`Protocol::Base`] keeps
    /// to the base protocol even with a server that could multiplex.
    pub async fn connect_with_protocol(
        address: &Address,
        protocol: Protocol,
    ) -> Result<Client, Error> {
        Self::connect_to_with(address, &ClientOptions::default().protocol(protocol)).await
    }

    /// [`Client::connect_to`] with `options`. A failed connection or TLS
    /// handshake is an [`Error::Connect`] saying what was wrong.
    pub async fn connect_to_with(
        address: &Address,
        options: &ClientOptions,
    ) -> Result<Client, Error> {
        let protocol = options.protocol;
        Ok(match connect_stream(address, options).await? {
            ClientStream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                Self::from_halves(read, write, protocol)
            }
            #[cfg(unix)]
            ClientStream::Unix(stream) => {
                let (read, write) = stream.into_split();
                Self::from_halves(read, write, protocol)
            }
            tls @ ClientStream::Tls(_) => Self::from_io_with_protocol(tls, protocol),
        })
    }

    /// A client over any byte stream (an in-memory pipe, say), in the base
    /// protocol. Spawns the reader and writer tasks, so it must be called
    /// within a tokio runtime.
    pub fn from_io<S>(io: S) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::from_io_with_protocol(io, Protocol::Base)
    }

    /// A client over any byte stream, speaking `protocol`.
    pub fn from_io_with_protocol<S>(io: S, protocol: Protocol) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        Self::from_halves(read, write, protocol)
    }

    fn from_halves<R, W>(read: R, write: W, protocol: Protocol) -> Client
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (requests, queue) = mpsc::channel(QUEUE);
        let pending = SharedPending::default();
        let routes = SharedRoutes::default();
        let dead = CancellationToken::new();
        let (mode_tx, mode) = watch::channel(match protocol {
            Protocol::Negotiate => Mode::Negotiating,
            Protocol::Base => Mode::Base,
        });
        tokio::spawn(write_requests(
            write,
            queue,
            Arc::clone(&pending),
            dead.clone(),
            mode.clone(),
        ));
        tokio::spawn(read_replies(
            read,
            pending,
            Arc::clone(&routes),
            dead,
            mode_tx,
        ));
        Client {
            requests,
            routes,
            timeout: DEFAULT_TIMEOUT,
            ids: Arc::new(AtomicU32::new(1)),
            mode,
        }
    }

    /// Whether the connection is multiplexed (replies come as calls
    /// finish), as far as known now: false until the server has answered
    /// `rpc.hello`; [`multiplexed`](Self::multiplexed) waits for it.
    pub fn is_multiplexed(&self) -> bool {
        *self.mode.borrow() == Mode::Multiplexed
    }

    /// Whether the connection is multiplexed, once the server has answered
    /// `rpc.hello` (false for a connection that dies first).
    pub async fn multiplexed(&self) -> bool {
        let mut mode = self.mode.clone();
        let known = mode.wait_for(|mode| *mode != Mode::Negotiating).await;
        known.is_ok_and(|mode| *mode == Mode::Multiplexed)
    }

    /// This handle with another per-call timeout; other clones keep theirs.
    /// The timeout counts from the call until its reply, queueing included.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The per-call timeout of this handle.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the connection is known to be closed: calls would fail
    /// with [`CallError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// Subscribes this connection to the event `E` and returns the
    /// stream of its payloads, once the server has confirmed (`rpc.subscribe`).
    ///
    /// Events arrive on the connection of the calls, in the order they
    /// were fired; an event fired by a call of this connection comes
    /// before that call's reply. Dropping the last subscription of an
    /// event unsubscribes the connection from it (`rpc.unsubscribe`).
    /// A server that does not know the event answers
    /// [`CallError::Status`] `rpc.subscribe: unknown event: NAME`.
    pub async fn subscribe<E>(&self) -> Result<Subscription<E>, CallError>
    where
        E: Event + DeserializeOwned,
    {
        let (events, queue) = mpsc::channel(SUBSCRIPTION_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        // Routed before the request: events may precede its reply.
        let id = {
            let mut routes = lock(&self.routes);
            routes.next_id += 1;
            let id = routes.next_id;
            routes.by_name.entry(E::NAME).or_default().push(Route {
                id,
                events,
                dropped: Arc::clone(&dropped),
            });
            id
        };
        let subscription = Subscription {
            queue,
            id,
            dropped,
            client: self.clone(),
            event: PhantomData,
        };
        let payload = names_payload(E::NAME)?;
        self.round_trip(Bytes::from_static(SUBSCRIBE.as_bytes()), payload)
            .await?;
        Ok(subscription)
    }

    /// Calls a method named at run time (from a command line, say)
    /// with a ready CBOR payload, like [`Transport::call`] does for the
    /// stubs: the body of a status 0 reply, or the error.
    pub async fn call_raw(&self, method: &str, payload: Vec<u8>) -> Result<Bytes, CallError> {
        self.round_trip(Bytes::copy_from_slice(method.as_bytes()), payload)
            .await
    }

    /// The next call id (never 0, which event frames carry).
    fn next_id(&self) -> u32 {
        loop {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            if id != EVENT_ID {
                break id;
            }
        }
    }

    async fn round_trip(&self, method: Bytes, payload: Vec<u8>) -> Result<Bytes, CallError> {
        let (reply, replied) = oneshot::channel();
        let id = self.next_id();
        let request = Outgoing {
            method: method.clone(),
            payload,
            reply: Some(reply),
            id,
            deadline: Instant::now().checked_add(self.timeout),
        };
        // Armed once the request is queued: a call given up (timed out, or
        // its future dropped) is cancelled on the server.
        let mut cancel = CancelOnDrop {
            client: self,
            id: None,
        };
        let call = async {
            self.requests
                .send(request)
                .await
                .map_err(|_| CallError::Closed)?;
            cancel.id = Some(id);
            // A sender dropped unanswered means the connection's tasks ended.
            let result = replied.await.unwrap_or(Err(CallError::Closed));
            cancel.id = None;
            result
        };
        match tokio::time::timeout(self.timeout, call).await {
            // The server's side of the same deadline, when it fires first.
            Ok(Err(CallError::Status(text)))
                if self.is_multiplexed() && is_deadline_text(&text, &method) =>
            {
                Err(CallError::Timeout(self.timeout))
            }
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(self.timeout)),
        }
    }
}

/// Whether `text` is the server's `METHOD: deadline exceeded` for `method`.
fn is_deadline_text(text: &str, method: &[u8]) -> bool {
    text.strip_suffix(": deadline exceeded")
        .is_some_and(|name| name.as_bytes() == method)
}

/// Sends `rpc.cancel` for a multiplexed call whose caller gave up.
struct CancelOnDrop<'a> {
    client: &'a Client,
    id: Option<u32>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        // A base connection has no ids to cancel.
        let Some(id) = self.id.filter(|_| self.client.is_multiplexed()) else {
            return;
        };
        let payload = std::collections::BTreeMap::from([("id", id)]);
        let Ok(payload) = super::encode_args(CANCEL, &payload) else {
            return;
        };
        let request = Outgoing {
            method: Bytes::from_static(CANCEL.as_bytes()),
            payload,
            reply: None,
            id: self.client.next_id(),
            deadline: None,
        };
        // Best effort: with the queue full the call runs to its deadline.
        let _ = self.client.requests.try_send(request);
    }
}

impl Transport for Client {
    fn call(
        &self,
        method: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        self.round_trip(Bytes::from_static(method.as_bytes()), payload)
    }
}

/// The writer task: takes requests in arrival order, registers each
/// caller in `pending` before its frame is written (so its reply always
/// finds it), and writes whatever has queued up in one go.
async fn write_requests<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: mpsc::Receiver<Outgoing>,
    pending: SharedPending,
    dead: CancellationToken,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = BytesMut::new();
    // Negotiating: rpc.hello first, then nothing until its answer.
    if *mode.borrow() == Mode::Negotiating {
        encode_request(HELLO.as_bytes(), HELLO_PAYLOAD, &mut buf);
        let written = tokio::select! {
            _ = dead.cancelled() => Ok(()),
            written = io.write_all(&buf) => written,
        };
        buf.clear();
        if let Err(e) = written {
            debug!(error = %e, "client: write failed");
            dead.cancel();
        }
        tokio::select! {
            _ = dead.cancelled() => {}
            _ = mode.wait_for(|mode| *mode != Mode::Negotiating) => {}
        }
    }
    let multiplexed = *mode.borrow() == Mode::Multiplexed;
    'connection: loop {
        let first = tokio::select! {
            _ = dead.cancelled() => break,
            request = queue.recv() => match request {
                Some(request) => request,
                // Every handle is gone: close our half.
                None => break,
            },
        };
        let mut next = Some(first);
        while let Some(request) = next.take() {
            // A caller gone before its request is written (timed out
            // waiting in the queue) needs no frame and no reply.
            if !request.reply.as_ref().is_some_and(|r| r.is_closed()) {
                {
                    let mut pending = lock(&pending);
                    if pending.closed {
                        drop(pending);
                        if let Some(reply) = request.reply {
                            let _ = reply.send(Err(CallError::Closed));
                        }
                        break 'connection;
                    }
                    if !multiplexed {
                        pending.queue.push_back(request.reply);
                    } else if let Some(reply) = request.reply {
                        pending.by_id.insert(request.id, reply);
                    }
                }
                if multiplexed {
                    let timeout_ms = request.deadline.map_or(0, |deadline| {
                        let left = deadline.saturating_duration_since(Instant::now());
                        u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1)
                    });
                    encode_mux_request(
                        request.id,
                        timeout_ms,
                        &request.method,
                        &request.payload,
                        &mut buf,
                    );
                } else {
                    encode_request(&request.method, &request.payload, &mut buf);
                }
            }
            if buf.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        if buf.is_empty() {
            continue;
        }
        let written = tokio::select! {
            _ = dead.cancelled() => break,
            written = io.write_all(&buf) => written,
        };
        if let Err(e) = written {
            debug!(error = %e, "client: write failed");
            break;
        }
        buf.clear();
    }
    dead.cancel();
    queue.close();
    while let Ok(request) = queue.try_recv() {
        if let Some(reply) = request.reply {
            let _ = reply.send(Err(CallError::Closed));
        }
    }
    let _ = io.shutdown().await;
}

/// The reader task: gives each reply to the oldest pending caller. A
/// caller that timed out has dropped its receiver; its reply is consumed
/// here all the same, so the next reply goes to the next caller. Event
/// frames go to the subscriptions of their event instead.
async fn read_replies<R: AsyncRead + Unpin>(
    io: R,
    pending: SharedPending,
    routes: SharedRoutes,
    dead: CancellationToken,
    mode: watch::Sender<Mode>,
) {
    let mut frames = FramedRead::new(io, ResponseCodec::default());
    let mut multiplexed = false;
    let mut open = true;
    if *mode.borrow() == Mode::Negotiating {
        // The first reply answers rpc.hello (status 1 from a server
        // without the extension); requests wait until it is known.
        let frame = tokio::select! {
            _ = dead.cancelled() => None,
            frame = frames.next() => frame,
        };
        match usable(frame) {
            Some(response) => multiplexed = enables_multiplex(&response),
            None => open = false,
        }
        let _ = mode.send(if multiplexed {
            Mode::Multiplexed
        } else {
            Mode::Base
        });
    }
    if !open {
        // The connection died while negotiating.
    } else if multiplexed {
        let mut frames = frames.map_decoder(|_| MuxResponseCodec::default());
        loop {
            let frame = tokio::select! {
                _ = dead.cancelled() => break,
                frame = frames.next() => frame,
            };
            let Some(response) = usable(frame) else { break };
            if response.id == EVENT_ID && response.status == STATUS_EVENT {
                route_event(&routes, response.body);
                continue;
            }
            // Not found: a call that nobody awaits (an `rpc.cancel`, or a
            // cancelled call's own reply).
            let caller = lock(&pending).by_id.remove(&response.id);
            if let Some(caller) = caller {
                let _ = caller.send(outcome(response.status, response.body));
            }
        }
    } else {
        loop {
            let frame = tokio::select! {
                _ = dead.cancelled() => break,
                frame = frames.next() => frame,
            };
            let Some(response) = usable(frame) else { break };
            if response.status == STATUS_EVENT {
                route_event(&routes, response.body);
                continue;
            }
            let Some(caller) = lock(&pending).queue.pop_front() else {
                debug!("client: a reply to no request; closing the connection");
                break;
            };
            // A request nobody awaits (a dropped subscription's unsubscribe).
            let Some(caller) = caller else { continue };
            let _ = caller.send(outcome(response.status, response.body));
        }
    }
    dead.cancel();
    let (orphans, by_id) = {
        let mut pending = lock(&pending);
        pending.closed = true;
        (
            std::mem::take(&mut pending.queue),
            std::mem::take(&mut pending.by_id),
        )
    };
    for caller in orphans.into_iter().flatten().chain(by_id.into_values()) {
        let _ = caller.send(Err(CallError::Closed));
    }
    // The subscriptions' streams end.
    lock(&routes).by_name.clear();
}

/// A frame read, or `None` (logged) when the connection is over.
fn usable<T>(frame: Option<Result<T, Error>>) -> Option<T> {
    match frame {
        Some(Ok(response)) => Some(response),
        Some(Err(e)) => {
            debug!(error = %e, "client: closing the connection");
            None
        }
        None => {
            debug!("client: the server closed the connection");
            None
        }
    }
}

/// What a reply's status and body mean to its caller.
fn outcome(status: i32, body: Bytes) -> Result<Bytes, CallError> {
    match status {
        STATUS_OK => Ok(body),
        STATUS_ERROR => Err(CallError::Status(
            String::from_utf8_lossy(&body).into_owned(),
        )),
        status => Err(CallError::UnexpectedStatus { status, body }),
    }
}

/// The payload of the `rpc.hello` a negotiating client sends first:
/// `{"features": ["multiplex"]}`.
const HELLO_PAYLOAD: &[u8] = b"\xa1\x68features\x81\x69multiplex";

/// Whether the answer to `rpc.hello` enables multiplexing.
fn enables_multiplex(response: &crate::wire::Response) -> bool {
    #[derive(serde::Deserialize)]
    struct Features {
        features: Vec<String>,
    }
    response.status == STATUS_OK
        && crate::wire::cbor::from_slice::<Features>(&response.body)
            .is_ok_and(|enabled| enabled.features.iter().any(|f| f == MULTIPLEX))
}

/// Hands an event's envelope to every subscription of its name; one
/// whose queue is full drops it and counts it.
fn route_event(routes: &SharedRoutes, body: Bytes) {
    #[derive(serde::Deserialize)]
    struct Name {
        #[serde(rename = "eventType")]
        event_type: String,
    }
    let name = match crate::wire::cbor::from_slice::<Name>(&body) {
        Ok(name) => name.event_type,
        Err(e) => {
            debug!(error = %e, "client: an event frame without a name; ignored");
            return;
        }
    };
    let routes = lock(routes);
    for route in routes.by_name.get(name.as_str()).into_iter().flatten() {
        if let Err(mpsc::error::TrySendError::Full(_)) = route.events.try_send(body.clone()) {
            route.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `{"events": [NAME]}` payload of `rpc.subscribe` and `rpc.unsubscribe`.
fn names_payload(name: &'static str) -> Result<Vec<u8>, CallError> {
    let payload = std::collections::BTreeMap::from([("events", [name])]);
    super::encode_args(SUBSCRIBE, &payload)
}

/// The typed events `E` a connection receives (see [`Client::subscribe`]):
/// a stream of payloads, or [`CallError::EventDecode`] for an event that
/// does not decode into `E`. It ends when the connection closes.
/// Dropping it unsubscribes, unless another subscription of `E` remains.
pub struct Subscription<E> {
    queue: mpsc::Receiver<Bytes>,
    id: u64,
    dropped: Arc<AtomicU64>,
    client: Client,
    event: PhantomData<fn() -> E>,
}

impl<E: Event> Subscription<E> {
    /// Events this subscription missed: the `dropped` counts the server
    /// reported in the envelopes received so far (the server counts per
    /// connection, so they include other events' drops), plus those
    /// dropped here because the stream was not read fast enough.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<E> fmt::Debug for Subscription<E>
where
    E: Event,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("event", &E::NAME)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<E: Event + DeserializeOwned> Stream for Subscription<E> {
    type Item = Result<E, CallError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        #[derive(serde::Deserialize)]
        #[serde(bound = "E: DeserializeOwned")]
        struct Envelope<E> {
            payload: E,
            #[serde(default)]
            dropped: u64,
        }
        let this = self.get_mut();
        let Some(body) = std::task::ready!(this.queue.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(
            match crate::wire::cbor::from_slice::<Envelope<E>>(&body) {
                Ok(envelope) => {
                    this.dropped.fetch_add(envelope.dropped, Ordering::Relaxed);
                    Ok(envelope.payload)
                }
                Err(source) => Err(CallError::EventDecode {
                    event: E::NAME,
                    source,
                }),
            },
        ))
    }
}

impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        let mut routes = lock(&self.client.routes);
        let mut last = None;
        for (name, list) in routes.by_name.iter_mut() {
            if let Some(at) = list.iter().position(|route| route.id == self.id) {
                list.remove(at);
                if list.is_empty() {
                    last = Some(*name);
                }
                break;
            }
        }
        let Some(name) = last else { return };
        routes.by_name.remove(name);
        let Ok(payload) = names_payload(name) else {
            return;
        };
        let request = Outgoing {
            method: Bytes::from_static(UNSUBSCRIBE.as_bytes()),
            payload,
            reply: None,
            id: self.client.next_id(),
            deadline: None,
        };
        // Queued under the routes lock, so that a later subscribe to the
        // same event is written after this unsubscribe.
        if let Err(mpsc::error::TrySendError::Full(request)) =
            self.client.requests.try_send(request)
        {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let requests = self.client.requests.clone();
                runtime.spawn(async move { requests.send(request).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::codec::FramedRead;

    use super::*;
    use crate::wire::{encode_mux_response, encode_response, RequestCodec};

    /// A client and the server end of its in-memory connection.
    fn pair() -> (
        Client,
        FramedRead<tokio::io::ReadHalf<DuplexStream>, RequestCodec>,
        tokio::io::WriteHalf<DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (read, write) = tokio::io::split(server);
        (
            Client::from_io(client),
            FramedRead::new(read, RequestCodec::default()),
            write,
        )
    }

    async fn reply(io: &mut tokio::io::WriteHalf<DuplexStream>, status: i32, body: &[u8]) {
        let mut buf = BytesMut::new();
        encode_response(status, body, &mut buf);
        io.write_all(&buf).await.unwrap();
    }

    #[tokio::test]
    async fn replies_go_to_their_callers_in_order() {
        let (client, mut requests, mut out) = pair();
        let calls: Vec<_> = (0..50u8)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.call("m", vec![i]).await })
            })
            .collect();
        // The fake server answers each request with its own payload.
        for _ in 0..50 {
            let request = requests.next().await.unwrap().unwrap();
            assert_eq!(&request.method[..], b"m");
            reply(&mut out, 0, &request.payload).await;
        }
        for (i, call) in calls.into_iter().enumerate() {
            let body = call.await.unwrap().unwrap();
            assert_eq!(&body[..], &[i as u8]);
        }
    }

    #[tokio::test]
    async fn statuses_become_errors() {
        let (client, mut requests, mut out) = pair();
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.call("a", vec![]).await }
        });
        requests.next().await.unwrap().unwrap();
        reply(&mut out, 1, b"no such thing").await;
        match first.await.unwrap() {
            Err(CallError::Status(text)) => assert_eq!(text, "no such thing"),
            other => panic!("expected a status error, got {other:?}"),
        }
        let second = tokio::spawn(async move { client.call("b", vec![]).await });
        requests.next().await.unwrap().unwrap();
        reply(&mut out, 7, b"??").await;
        match second.await.unwrap() {
            Err(CallError::UnexpectedStatus { status: 7, body }) => assert_eq!(&body[..], b"??"),
            other => panic!("expected an unexpected status, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_late_reply_is_consumed_and_later_calls_stay_matched() {
        let (client, mut requests, mut out) = pair();
        let slow = client.clone().with_timeout(Duration::from_millis(100));
        let slow_call = tokio::spawn(async move { slow.call("slow", vec![1]).await });
        requests.next().await.unwrap().unwrap();
        // The fake server holds the reply until the caller has timed out.
        match slow_call.await.unwrap() {
            Err(CallError::Timeout(t)) => assert_eq!(t, Duration::from_millis(100)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let next = tokio::spawn({
            let client = client.clone();
            async move { client.call("next", vec![2]).await }
        });
        requests.next().await.unwrap().unwrap();
        reply(&mut out, 0, &[1]).await;
        reply(&mut out, 0, &[2]).await;
        assert_eq!(&next.await.unwrap().unwrap()[..], &[2]);
    }

    #[tokio::test]
    async fn a_dead_connection_fails_pending_and_later_calls() {
        let (client, mut requests, out) = pair();
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.call("m", vec![]).await })
            })
            .collect();
        for _ in 0..3 {
            requests.next().await.unwrap().unwrap();
        }
        drop((requests, out));
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(CallError::Closed)));
        }
        assert!(matches!(
            client.call("m", vec![]).await,
            Err(CallError::Closed)
        ));
        assert!(client.is_closed());
    }

    #[tokio::test]
    async fn a_reply_breaking_the_framing_closes_the_connection() {
        let (client, mut requests, mut out) = pair();
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.call("m", vec![]).await }
        });
        requests.next().await.unwrap().unwrap();
        // A header announcing a body over the frame limit.
        out.write_all(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        assert!(matches!(call.await.unwrap(), Err(CallError::Closed)));
        assert!(matches!(
            client.call("m", vec![]).await,
            Err(CallError::Closed)
        ));
    }

    /// A client negotiating over an in-memory pipe with a fake server that
    /// answers `rpc.hello` with `status` and `body`.
    async fn negotiated(
        status: i32,
        body: &[u8],
    ) -> (
        Client,
        tokio::io::ReadHalf<DuplexStream>,
        tokio::io::WriteHalf<DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut read, mut write) = tokio::io::split(server);
        let client = Client::from_io_with_protocol(client, Protocol::Negotiate);
        let mut requests = FramedRead::new(&mut read, RequestCodec::default());
        let hello = requests.next().await.unwrap().unwrap();
        assert_eq!(&hello.method[..], HELLO.as_bytes());
        assert_eq!(&hello.payload[..], b"\xa1\x68features\x81\x69multiplex");
        assert!(requests.read_buffer().is_empty());
        drop(requests);
        reply(&mut write, status, body).await;
        (client, read, write)
    }

    /// Reads one multiplexed request: id, timeout, method, payload.
    async fn mux_request(
        read: &mut tokio::io::ReadHalf<DuplexStream>,
    ) -> (u32, u32, Vec<u8>, Vec<u8>) {
        let mut word = [0u8; 4];
        let mut next = async |read: &mut tokio::io::ReadHalf<DuplexStream>| {
            read.read_exact(&mut word).await.unwrap();
            u32::from_be_bytes(word)
        };
        let id = next(read).await;
        let timeout = next(read).await;
        let mut method = vec![0; next(read).await as usize];
        read.read_exact(&mut method).await.unwrap();
        let mut payload = vec![0; next(read).await as usize];
        read.read_exact(&mut payload).await.unwrap();
        (id, timeout, method, payload)
    }

    #[tokio::test]
    async fn a_server_without_the_extension_keeps_the_base_protocol() {
        let (client, read, mut write) = negotiated(1, b"unknown method: rpc.hello").await;
        assert!(!client.multiplexed().await);
        let mut requests = FramedRead::new(read, RequestCodec::default());
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.call("m", vec![7]).await }
        });
        let request = requests.next().await.unwrap().unwrap();
        assert_eq!(&request.method[..], b"m");
        reply(&mut write, 0, &[7]).await;
        assert_eq!(&call.await.unwrap().unwrap()[..], &[7]);
    }

    #[tokio::test]
    async fn multiplexed_replies_are_matched_by_id_in_any_order() {
        let (client, mut read, mut write) =
            negotiated(0, b"\xa1\x68features\x81\x69multiplex").await;
        assert!(client.multiplexed().await);
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.call("a", vec![1]).await }
        });
        let (id_a, timeout_a, method, _) = mux_request(&mut read).await;
        assert_eq!(method, b"a");
        assert!(timeout_a > 0 && timeout_a <= 30_000, "{timeout_a}");
        let second = tokio::spawn({
            let client = client.clone();
            async move { client.call("b", vec![2]).await }
        });
        let (id_b, _, method, _) = mux_request(&mut read).await;
        assert_eq!(method, b"b");
        assert_ne!(id_a, id_b);
        // Answer the second call first, and an event in between.
        let mut buf = BytesMut::new();
        encode_mux_response(id_b, 0, &[2], &mut buf);
        encode_mux_response(EVENT_ID, STATUS_EVENT, b"\xa0", &mut buf);
        encode_mux_response(id_a, 1, b"no", &mut buf);
        write.write_all(&buf).await.unwrap();
        assert_eq!(&second.await.unwrap().unwrap()[..], &[2]);
        assert!(matches!(first.await.unwrap(), Err(CallError::Status(text)) if text == "no"));
    }

    #[tokio::test]
    async fn a_call_made_while_negotiating_waits_and_goes_out_multiplexed() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut read, mut write) = tokio::io::split(server);
        let client = Client::from_io_with_protocol(client, Protocol::Negotiate);
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.call("early", vec![]).await }
        });
        let mut requests = FramedRead::new(&mut read, RequestCodec::default());
        let hello = requests.next().await.unwrap().unwrap();
        assert_eq!(&hello.method[..], HELLO.as_bytes());
        // Nothing else is written before the answer.
        assert!(requests.read_buffer().is_empty());
        drop(requests);
        reply(&mut write, 0, HELLO_PAYLOAD).await;
        let (id, _, method, _) = mux_request(&mut read).await;
        assert_eq!(method, b"early");
        let mut buf = BytesMut::new();
        encode_mux_response(id, 0, &[9], &mut buf);
        write.write_all(&buf).await.unwrap();
        assert_eq!(&call.await.unwrap().unwrap()[..], &[9]);
        assert!(client.is_multiplexed());
    }

    #[tokio::test]
    async fn a_call_given_up_is_cancelled_on_the_server() {
        let (client, mut read, _write) = negotiated(0, b"\xa1\x68features\x81\x69multiplex").await;
        assert!(client.multiplexed().await);
        let impatient = client.with_timeout(Duration::from_millis(50));
        let call = tokio::spawn(async move { impatient.call("slow", vec![]).await });
        let (id, timeout, _, _) = mux_request(&mut read).await;
        assert!(
            timeout > 0 && timeout <= 50,
            "the deadline is sent: {timeout}"
        );
        assert!(matches!(call.await.unwrap(), Err(CallError::Timeout(_))));
        let (cancel_id, _, method, payload) = mux_request(&mut read).await;
        assert_eq!(method, CANCEL.as_bytes());
        assert_ne!(cancel_id, id);
        assert_eq!(
            crate::wire::cbor::from_slice::<std::collections::BTreeMap<String, u32>>(&payload)
                .unwrap(),
            std::collections::BTreeMap::from([("id".to_owned(), id)])
        );
    }

    #[tokio::test]
    async fn connecting_reports_the_address() {
        let err = Client::connect("tcp:127.0.0.1").await.unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = Client::connect(&format!("tcp:127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to tcp:127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
