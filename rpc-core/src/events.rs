//! Library events: declared once with `#[event("name")]`, fired through a
//! [`Hub`] without knowing who listens, received in-process as typed values
//! and by remote subscribers as CBOR frames (`PROTOCOL.md`).
//!
//! ```text
//! #[remote] fn ──hub.emit(EchoFired {..})──▶ Hub ──typed clone──▶ Listener<EchoFired> (in-process, no CBOR)
//!                                                └─CBOR, encoded once─▶ each subscribed connection's queue
//! ```
//!
//! # Layout
//!
//! - [`Event`]: a payload type and its wire name; `#[event("name")]`
//!   implements it and registers an [`EventDef`] through `inventory`;
//! - [`EventTable`]: every registered event, sorted by name, duplicates
//!   refused ([`EventTable::global`], [`EventTable::names`]);
//! - [`Hub`]: where a library fires its events ([`Hub::emit`],
//!   [`Hub::emit_with`]) and where in-process code listens ([`Hub::listen`]);
//! - [`Listener`]: a typed in-process stream of one event;
//! - the remote side (crate-private): one bounded queue per subscribed
//!   connection, filled by the hub and drained by the server.
//!
//! ```
//! use futures_util::StreamExt;
//! use rpc_core::events::Hub;
//!
//! /// A job finished.
//! #[rpc_core::event("job_done")]
//! #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! pub struct JobDone { pub id: u32 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let hub = Hub::new();
//! hub.emit(JobDone { id: 1 }); // nobody listens: nothing happens
//! let mut listener = hub.listen::<JobDone>();
//! hub.emit(JobDone { id: 2 });
//! assert_eq!(listener.next().await, Some(JobDone { id: 2 }));
//! assert!(rpc_core::events::EventTable::global().unwrap().names().any(|n| n == "job_done"));
//! # }
//! ```

// The remote side (subscribers, event frames) serves the `server` feature
// only; without it, it is compiled but unused.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{Error, Reply};

/// The built-in method that subscribes a connection to events.
pub const SUBSCRIBE: &str = "rpc.subscribe";
/// The built-in method that ends a connection's subscriptions.
pub const UNSUBSCRIBE: &str = "rpc.unsubscribe";

/// Events a remote subscriber's queue holds by default (see
/// `server::Config::max_event_queue`).
pub const DEFAULT_REMOTE_QUEUE: usize = 256;
/// Events an in-process [`Listener`] holds before it drops (see [`Hub::listen`]).
pub const DEFAULT_LISTENER_QUEUE: usize = 1024;

/// An event's payload type, with the wire name it is fired under.
///
/// Implemented by `#[event("name")]`, which also registers the name so
/// that the server and `rpc.subscribe` know it. The payload is serialised
/// (as the `payload` of the envelope) only for remote subscribers; in-process
/// listeners receive clones.
pub trait Event: Serialize + Clone + Send + Sync + 'static {
    /// The wire name, such as `"on_echo_fired"`.
    const NAME: &'static str;
}

/// One registered event, as `#[event]` submits it.
#[derive(Debug)]
pub struct EventDef {
    /// The wire name.
    pub name: &'static str,
    /// The Rust path of the payload type, for diagnostics.
    pub path: &'static str,
    /// Traces the payload type, for `rpc.describe`'s CDDL (see
    /// [`crate::describe`]); called only when describing.
    pub payload: fn() -> crate::describe::Shape,
}

inventory::collect!(EventDef);

/// Every registered event, sorted by name.
#[derive(Debug)]
pub struct EventTable {
    sorted: Vec<&'static EventDef>,
}

impl EventTable {
    /// A table of `defs`, refusing a name given twice.
    pub fn from_defs(defs: impl IntoIterator<Item = &'static EventDef>) -> Result<Self, Error> {
        let mut sorted: Vec<&'static EventDef> = defs.into_iter().collect();
        sorted.sort_by(|a, b| (a.name, a.path).cmp(&(b.name, b.path)));
        if let Some(pair) = sorted.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::DuplicateEvent {
                name: pair[0].name,
                first: pair[0].path,
                second: pair[1].path,
            });
        }
        Ok(EventTable { sorted })
    }

    /// The table of every `#[event]` linked into the program.
    pub fn from_inventory() -> Result<Self, Error> {
        Self::from_defs(inventory::iter::<EventDef>())
    }

    /// The process-wide table, built once from the inventory.
    pub fn global() -> Result<&'static EventTable, Error> {
        static GLOBAL: OnceLock<Result<EventTable, (&'static str, &'static str, &'static str)>> =
            OnceLock::new();
        let table = GLOBAL.get_or_init(|| match Self::from_inventory() {
            Ok(table) => Ok(table),
            Err(Error::DuplicateEvent {
                name,
                first,
                second,
            }) => Err((name, first, second)),
            Err(other) => unreachable!("from_inventory fails only on duplicates: {other}"),
        });
        match table {
            Ok(table) => Ok(table),
            Err((name, first, second)) => Err(Error::DuplicateEvent {
                name,
                first,
                second,
            }),
        }
    }

    /// A table with no events.
    pub fn empty() -> &'static EventTable {
        static EMPTY: EventTable = EventTable { sorted: Vec::new() };
        &EMPTY
    }

    /// Every event, sorted by name.
    pub fn events(&self) -> &[&'static EventDef] {
        &self.sorted
    }

    /// Every event name, sorted.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.sorted.iter().map(|def| def.name)
    }

    /// The position of `name` in [`events`](Self::events).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.sorted.binary_search_by(|def| def.name.cmp(name)).ok()
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// Where a library fires its events: cheap to clone, every clone the same
/// hub. Firing costs two atomic loads when nobody listens.
///
/// A library keeps one in its context (the timer's `Timer` does); a server
/// delivers the events of the `Hub` in its `Context` to the connections that
/// subscribe, so a host puts the library's hub there too.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    table: &'static EventTable,
    /// Listener queues, each an `Arc<LocalQueue<E>>` under `TypeId::of::<E>()`.
    local: RwLock<HashMap<TypeId, Vec<Arc<dyn Any + Send + Sync>>>>,
    local_count: AtomicUsize,
    remote: RwLock<Vec<Arc<RemoteQueue>>>,
    remote_count: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("events", &self.inner.table.len())
            .field("listeners", &self.inner.local_count.load(Ordering::Relaxed))
            .field(
                "subscribers",
                &self.inner.remote_count.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Hub {
    /// A hub for the events of [`EventTable::global`] (none when that table
    /// has duplicates, which the server reports at start).
    pub fn new() -> Self {
        Self::with_table(EventTable::global().unwrap_or_else(|_| EventTable::empty()))
    }

    /// A hub whose remote subscribers may subscribe to the events of `table`.
    pub fn with_table(table: &'static EventTable) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                table,
                local: RwLock::default(),
                local_count: AtomicUsize::new(0),
                remote: RwLock::default(),
                remote_count: AtomicUsize::new(0),
            }),
        }
    }

    /// The events remote subscribers may ask for.
    pub fn table(&self) -> &'static EventTable {
        self.inner.table
    }

    /// Fires `event` to every listener and subscriber of `E`; nothing
    /// happens when there is none.
    pub fn emit<E: Event>(&self, event: E) {
        self.emit_with(|| event)
    }

    /// Fires the event `make` builds, calling it only when someone listens:
    /// the payload costs nothing (no clone of a message, say) otherwise.
    pub fn emit_with<E: Event>(&self, make: impl FnOnce() -> E) {
        let inner = &*self.inner;
        let remote = inner.remote_count.load(Ordering::Acquire) > 0;
        let local = inner.local_count.load(Ordering::Acquire) > 0;
        if !remote && !local {
            return;
        }
        let mut make = Some(make);
        let mut event = None;
        if remote {
            inner.emit_remote(&mut make, &mut event);
        }
        if local {
            inner.emit_local(&mut make, &mut event);
        }
    }

    /// A typed stream of every `E` fired from now on, holding up to
    /// [`DEFAULT_LISTENER_QUEUE`] events not yet taken; beyond that, events
    /// are dropped and counted in [`Listener::dropped`]. The stream ends
    /// never; drop it to stop listening.
    pub fn listen<E: Event>(&self) -> Listener<E> {
        self.listen_with_capacity(DEFAULT_LISTENER_QUEUE)
    }

    /// [`listen`](Self::listen) with a queue of `capacity` events (at least 1).
    pub fn listen_with_capacity<E: Event>(&self, capacity: usize) -> Listener<E> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = Arc::new(LocalQueue {
            tx,
            dropped: AtomicU64::new(0),
        });
        let sink: Arc<dyn Any + Send + Sync> = queue.clone();
        write(&self.inner.local)
            .entry(TypeId::of::<E>())
            .or_default()
            .push(sink);
        self.inner.local_count.fetch_add(1, Ordering::AcqRel);
        Listener {
            rx,
            queue,
            hub: self.clone(),
        }
    }

    /// Registers a remote subscriber: the server's side of `rpc.subscribe`.
    pub(crate) fn subscriber(&self, capacity: usize) -> Subscriber {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = Arc::new(RemoteQueue {
            wants: (0..self.inner.table.len())
                .map(|_| AtomicBool::new(false))
                .collect(),
            tx,
            dropped: AtomicU64::new(0),
        });
        write(&self.inner.remote).push(Arc::clone(&queue));
        self.inner.remote_count.fetch_add(1, Ordering::AcqRel);
        Subscriber {
            hub: self.clone(),
            queue,
            rx,
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Builds the event on first need.
fn built<'a, E, F: FnOnce() -> E>(make: &mut Option<F>, event: &'a mut Option<E>) -> Option<&'a E> {
    if event.is_none() {
        *event = Some((make.take()?)());
    }
    event.as_ref()
}

impl HubInner {
    fn emit_remote<E: Event, F: FnOnce() -> E>(&self, make: &mut Option<F>, event: &mut Option<E>) {
        let Some(index) = self.table.index(E::NAME) else {
            return;
        };
        let subscribers = read(&self.remote);
        let mut pairs: Option<Bytes> = None;
        for queue in subscribers.iter() {
            if !queue.wants[index].load(Ordering::Acquire) {
                continue;
            }
            let pairs = match &pairs {
                Some(pairs) => pairs.clone(),
                None => {
                    let Some(event) = built(make, event) else {
                        return;
                    };
                    match envelope_pairs(E::NAME, event) {
                        Ok(encoded) => pairs.insert(encoded).clone(),
                        Err(e) => {
                            tracing::warn!(event = E::NAME, error = %e, "cannot encode an event; not delivered");
                            return;
                        }
                    }
                }
            };
            queue.push(pairs);
        }
    }

    fn emit_local<E: Event, F: FnOnce() -> E>(&self, make: &mut Option<F>, event: &mut Option<E>) {
        let local = read(&self.local);
        let Some(sinks) = local.get(&TypeId::of::<E>()) else {
            return;
        };
        if sinks.is_empty() {
            return;
        }
        let Some(event) = built(make, event) else {
            return;
        };
        for sink in sinks {
            if let Some(queue) = sink.downcast_ref::<LocalQueue<E>>() {
                if queue.tx.try_send(event.clone()).is_err() {
                    queue.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

struct LocalQueue<E> {
    tx: mpsc::Sender<E>,
    dropped: AtomicU64,
}

/// A typed in-process stream of the `E` events of a [`Hub`] (see
/// [`Hub::listen`]). Dropping it stops the listening.
pub struct Listener<E: Event> {
    rx: mpsc::Receiver<E>,
    queue: Arc<LocalQueue<E>>,
    hub: Hub,
}

impl<E: Event> Listener<E> {
    /// Events dropped so far because this listener's queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<E> {
        self.rx.try_recv().ok()
    }
}

impl<E: Event> Stream for Listener<E> {
    type Item = E;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<E>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl<E: Event> fmt::Debug for Listener<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("event", &E::NAME)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<E: Event> Drop for Listener<E> {
    fn drop(&mut self) {
        let inner = &*self.hub.inner;
        let mut local = write(&inner.local);
        if let Some(sinks) = local.get_mut(&TypeId::of::<E>()) {
            let me = Arc::as_ptr(&self.queue) as *const ();
            sinks.retain(|sink| Arc::as_ptr(sink) as *const () != me);
            if sinks.is_empty() {
                local.remove(&TypeId::of::<E>());
            }
        }
        inner.local_count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One event in a subscriber's queue: the envelope's key-value pairs,
/// shared by every subscriber, and the events dropped just before it.
#[derive(Debug)]
pub(crate) struct Queued {
    pairs: Bytes,
    dropped: u64,
}

struct RemoteQueue {
    /// By index in the hub's table.
    wants: Box<[AtomicBool]>,
    tx: mpsc::Sender<Queued>,
    /// Dropped since the last event queued.
    dropped: AtomicU64,
}

impl RemoteQueue {
    fn push(&self, pairs: Bytes) {
        let dropped = self.dropped.swap(0, Ordering::AcqRel);
        if let Err(mpsc::error::TrySendError::Full(queued)) =
            self.tx.try_send(Queued { pairs, dropped })
        {
            self.dropped.fetch_add(queued.dropped + 1, Ordering::AcqRel);
        }
    }
}

/// A connection's subscription: which events it wants and the bounded
/// queue they wait in. Unregistered from the hub when dropped.
pub(crate) struct Subscriber {
    hub: Hub,
    queue: Arc<RemoteQueue>,
    rx: mpsc::Receiver<Queued>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("subscribed", &self.subscribed().collect::<Vec<_>>())
            .finish()
    }
}

/// The payload of `rpc.subscribe` and `rpc.unsubscribe`.
#[derive(serde::Deserialize)]
pub(crate) struct Names {
    events: Option<Vec<String>>,
}

/// The reply of `rpc.subscribe`.
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct Subscribed {
    subscribed: Vec<String>,
}

/// The reply of `rpc.unsubscribe`.
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct Unsubscribed {
    unsubscribed: Vec<String>,
}

/// `rpc.subscribe`: subscribes the connection whose subscriber is `slot`
/// to `payload`'s events (every event when the list is empty or absent),
/// registering a subscriber with a queue of `capacity` events on first use.
/// The reply lists every event the connection is now subscribed to. An
/// unknown name changes nothing.
pub(crate) fn subscribe(
    hub: &Hub,
    slot: &mut Option<Box<Subscriber>>,
    capacity: usize,
    payload: &[u8],
) -> Reply {
    let indices = match requested(hub.inner.table, SUBSCRIBE, payload) {
        Ok(indices) => indices,
        Err(reply) => return reply,
    };
    let subscriber = slot.get_or_insert_with(|| Box::new(hub.subscriber(capacity)));
    for &i in &indices {
        subscriber.queue.wants[i].store(true, Ordering::Release);
    }
    let subscribed = subscriber.subscribed().map(str::to_owned).collect();
    crate::__private::encode_ok(SUBSCRIBE, &Subscribed { subscribed })
}

/// `rpc.unsubscribe`: the converse of [`subscribe`]. The reply lists the
/// events the request named (every event when the list is empty or absent).
pub(crate) fn unsubscribe(hub: &Hub, slot: Option<&Subscriber>, payload: &[u8]) -> Reply {
    let table = hub.inner.table;
    let indices = match requested(table, UNSUBSCRIBE, payload) {
        Ok(indices) => indices,
        Err(reply) => return reply,
    };
    if let Some(subscriber) = slot {
        for &i in &indices {
            subscriber.queue.wants[i].store(false, Ordering::Release);
        }
    }
    let unsubscribed = indices
        .iter()
        .map(|&i| table.sorted[i].name.to_owned())
        .collect();
    crate::__private::encode_ok(UNSUBSCRIBE, &Unsubscribed { unsubscribed })
}

/// The table indices a `{"events": [...]}` payload names, sorted, without
/// duplicates; every index for an empty or absent list.
fn requested(table: &EventTable, method: &str, payload: &[u8]) -> Result<Vec<usize>, Reply> {
    let names: Names = crate::cbor::from_slice(payload)
        .map_err(|e| Reply::error(format!("{method}: invalid arguments: {e}")))?;
    let list = match names.events {
        Some(list) if !list.is_empty() => list,
        _ => return Ok((0..table.len()).collect()),
    };
    let mut indices = Vec::with_capacity(list.len());
    for name in &list {
        match table.index(name) {
            Some(i) => indices.push(i),
            None => return Err(Reply::error(format!("{method}: unknown event: {name}"))),
        }
    }
    indices.sort_unstable();
    indices.dedup();
    Ok(indices)
}

impl Subscriber {
    /// Every event this subscriber wants, sorted.
    fn subscribed(&self) -> impl Iterator<Item = &'static str> + '_ {
        let table = self.hub.inner.table;
        self.queue
            .wants
            .iter()
            .enumerate()
            .filter(|(_, on)| on.load(Ordering::Acquire))
            .map(move |(i, _)| table.sorted[i].name)
    }

    /// Moves queued events into `wbuf` as status 2 frames while it holds
    /// less than `backlog` bytes, registering the task to be woken by the
    /// next event. Returns whether any was written.
    pub(crate) fn write_into(
        &mut self,
        cx: &mut TaskContext<'_>,
        wbuf: &mut BytesMut,
        backlog: usize,
    ) -> bool {
        let mut progress = false;
        while wbuf.len() < backlog {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(queued)) => {
                    queued.encode(wbuf);
                    progress = true;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        progress
    }

    /// Empties the queue (at most its capacity of events) into `wbuf`
    /// before a reply is written after them: every event fired before the
    /// reply goes before it.
    pub(crate) fn flush_into(&mut self, wbuf: &mut BytesMut) {
        while let Ok(queued) = self.rx.try_recv() {
            queued.encode(wbuf);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let inner = &*self.hub.inner;
        write(&inner.remote).retain(|queue| !Arc::ptr_eq(queue, &self.queue));
        inner.remote_count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Queued {
    /// Appends the status 2 frame of this event to `dst`, its envelope
    /// carrying `"dropped": N` when events were dropped just before it.
    fn encode(&self, dst: &mut BytesMut) {
        let dropped = self.dropped;
        let mut tail = [0u8; DROPPED_KEY.len() + 9];
        let tail_len = if dropped > 0 {
            tail[..DROPPED_KEY.len()].copy_from_slice(DROPPED_KEY);
            DROPPED_KEY.len() + cbor_uint(dropped, &mut tail[DROPPED_KEY.len()..])
        } else {
            0
        };
        let body_len = 1 + self.pairs.len() + tail_len;
        dst.reserve(8 + body_len);
        dst.put_i32(crate::codec::STATUS_EVENT);
        dst.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
        // A definite-length map of 2 or 3 pairs.
        dst.put_u8(if dropped > 0 { 0xa3 } else { 0xa2 });
        dst.put_slice(&self.pairs);
        dst.put_slice(&tail[..tail_len]);
    }
}

/// The text key `"dropped"` in CBOR.
const DROPPED_KEY: &[u8] = b"\x67dropped";

/// Writes `n` as a shortest-form CBOR unsigned integer; returns its length.
fn cbor_uint(n: u64, out: &mut [u8]) -> usize {
    match n {
        0..=23 => {
            out[0] = n as u8;
            1
        }
        24..=0xff => {
            out[..2].copy_from_slice(&[0x18, n as u8]);
            2
        }
        0x100..=0xffff => {
            out[0] = 0x19;
            out[1..3].copy_from_slice(&(n as u16).to_be_bytes());
            3
        }
        0x1_0000..=0xffff_ffff => {
            out[0] = 0x1a;
            out[1..5].copy_from_slice(&(n as u32).to_be_bytes());
            5
        }
        _ => {
            out[0] = 0x1b;
            out[1..9].copy_from_slice(&n.to_be_bytes());
            9
        }
    }
}

/// `"eventType": NAME, "payload": PAYLOAD` in CBOR, without the map header.
fn envelope_pairs<E: Serialize>(
    name: &str,
    payload: &E,
) -> Result<Bytes, crate::cbor::EncodeError> {
    let mut out = Vec::with_capacity(64);
    crate::cbor::append("eventType", &mut out)?;
    crate::cbor::append(name, &mut out)?;
    crate::cbor::append("payload", &mut out)?;
    crate::cbor::append(payload, &mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Ping {
        n: u32,
    }
    impl Event for Ping {
        const NAME: &'static str = "ping";
    }

    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Pong;
    impl Event for Pong {
        const NAME: &'static str = "pong";
    }

    static PING: EventDef = EventDef {
        name: "ping",
        path: "x::Ping",
        payload: crate::describe::Shape::any,
    };
    static PONG: EventDef = EventDef {
        name: "pong",
        path: "x::Pong",
        payload: crate::describe::Shape::any,
    };
    static PING2: EventDef = EventDef {
        name: "ping",
        path: "y::Ping",
        payload: crate::describe::Shape::any,
    };

    fn table() -> &'static EventTable {
        static TABLE: OnceLock<EventTable> = OnceLock::new();
        TABLE.get_or_init(|| EventTable::from_defs([&PONG, &PING]).unwrap())
    }

    fn cbor(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    fn names(list: &[&str]) -> Vec<u8> {
        use ciborium::Value;
        cbor(&Value::Map(vec![(
            "events".into(),
            Value::Array(list.iter().map(|&s| s.into()).collect()),
        )]))
    }

    fn decode(frame: &[u8]) -> (i32, ciborium::Value) {
        let status = i32::from_be_bytes(frame[..4].try_into().unwrap());
        let len = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), 8 + len);
        (status, ciborium::de::from_reader(&frame[8..]).unwrap())
    }

    #[test]
    fn the_table_is_sorted_and_refuses_duplicates() {
        assert_eq!(table().names().collect::<Vec<_>>(), ["ping", "pong"]);
        assert_eq!(table().index("pong"), Some(1));
        assert_eq!(table().index("nope"), None);
        let err = EventTable::from_defs([&PING2, &PONG, &PING]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"duplicate event "ping": registered by both x::Ping and y::Ping"#
        );
    }

    #[tokio::test]
    async fn listeners_get_typed_clones_and_nothing_is_built_without_one() {
        let hub = Hub::with_table(table());
        hub.emit_with(|| -> Ping { panic!("built with nobody listening") });
        let mut a = hub.listen::<Ping>();
        let mut b = hub.listen::<Ping>();
        let mut pongs = hub.listen::<Pong>();
        hub.emit(Ping { n: 1 });
        assert_eq!(a.next().await, Some(Ping { n: 1 }));
        assert_eq!(b.next().await, Some(Ping { n: 1 }));
        assert_eq!(pongs.try_next(), None);
        drop((a, b));
        hub.emit_with(|| -> Ping { panic!("built after the listeners left") });
        hub.emit(Pong);
        assert_eq!(pongs.next().await, Some(Pong));
    }

    #[test]
    fn a_full_listener_drops_and_counts() {
        let hub = Hub::with_table(table());
        let mut listener = hub.listen_with_capacity::<Ping>(2);
        for n in 0..5 {
            hub.emit(Ping { n });
        }
        assert_eq!(listener.dropped(), 3);
        assert_eq!(listener.try_next(), Some(Ping { n: 0 }));
        assert_eq!(listener.try_next(), Some(Ping { n: 1 }));
        assert_eq!(listener.try_next(), None);
    }

    /// Every frame in `buf`, decoded.
    fn frames(buf: &[u8]) -> Vec<(i32, ciborium::Value)> {
        let mut out = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            out.push(decode(&rest[..8 + len]));
            rest = &rest[8 + len..];
        }
        out
    }

    fn ping(n: i64, dropped: Option<u64>) -> (i32, ciborium::Value) {
        use ciborium::Value;
        let mut pairs = vec![
            ("eventType".into(), "ping".into()),
            ("payload".into(), Value::Map(vec![("n".into(), n.into())])),
        ];
        if let Some(dropped) = dropped {
            pairs.push(("dropped".into(), dropped.into()));
        }
        (2, Value::Map(pairs))
    }

    #[test]
    fn subscribers_get_the_envelope_and_the_dropped_count() {
        use ciborium::Value;
        let hub = Hub::with_table(table());
        let mut slot = None;
        hub.emit(Ping { n: 0 }); // nobody subscribed yet
        let reply = subscribe(&hub, &mut slot, 2, &names(&["ping"]));
        assert_eq!(
            reply.body,
            cbor(&Value::Map(vec![(
                "subscribed".into(),
                Value::Array(vec!["ping".into()])
            )]))
        );
        let sub = slot.as_mut().unwrap();
        for n in 1..=5 {
            hub.emit(Ping { n });
        }
        hub.emit_with(|| -> Pong { panic!("built with no subscriber of pong") });
        let mut wbuf = BytesMut::new();
        sub.flush_into(&mut wbuf);
        assert_eq!(frames(&wbuf), [ping(1, None), ping(2, None)]);
        // Room again: the next event carries the three dropped.
        hub.emit(Ping { n: 6 });
        let mut wbuf = BytesMut::new();
        sub.flush_into(&mut wbuf);
        assert_eq!(frames(&wbuf), [ping(6, Some(3))]);
        // Exactly the CBOR a peer would encode: definite lengths, keys in order.
        assert_eq!(&wbuf[8..], &cbor(&ping(6, Some(3)).1)[..]);
    }

    #[test]
    fn events_wait_in_the_queue_while_the_backlog_is_full() {
        let hub = Hub::with_table(table());
        let mut slot = None;
        subscribe(&hub, &mut slot, 8, &[0xa0]);
        let sub = slot.as_mut().unwrap();
        hub.emit(Ping { n: 1 });
        hub.emit(Ping { n: 2 });
        let waker = futures_util::task::noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        let mut wbuf = BytesMut::new();
        // One frame takes the buffer over a backlog of 1 byte: the next waits.
        assert!(sub.write_into(&mut cx, &mut wbuf, 1));
        assert_eq!(frames(&wbuf), [ping(1, None)]);
        assert!(!sub.write_into(&mut cx, &mut wbuf, 1));
        // Before a reply, everything queued goes, backlog or not.
        hub.emit(Ping { n: 3 });
        sub.flush_into(&mut wbuf);
        assert_eq!(frames(&wbuf), [ping(1, None), ping(2, None), ping(3, None)]);
        assert!(!sub.write_into(&mut cx, &mut wbuf, usize::MAX));
    }

    #[test]
    fn subscribe_checks_every_name_before_changing_anything() {
        let hub = Hub::with_table(table());
        let mut slot = None;
        let reply = subscribe(&hub, &mut slot, 4, &names(&["ping", "nope"]));
        assert_eq!(
            reply,
            crate::Reply::error("rpc.subscribe: unknown event: nope")
        );
        assert!(slot.is_none(), "a failed subscribe registers nothing");
        let reply = unsubscribe(&hub, None, &names(&["nope"]));
        assert_eq!(
            reply,
            crate::Reply::error("rpc.unsubscribe: unknown event: nope")
        );
        let reply = subscribe(&hub, &mut slot, 4, &[0xa0]);
        assert_eq!(reply.status, 0);
        let sub = slot.as_deref().unwrap();
        assert_eq!(sub.subscribed().collect::<Vec<_>>(), ["ping", "pong"]);
        let reply = unsubscribe(&hub, Some(sub), &names(&["pong", "pong"]));
        assert_eq!(
            reply.body,
            cbor(&ciborium::Value::Map(vec![(
                "unsubscribed".into(),
                ciborium::Value::Array(vec!["pong".into()])
            )]))
        );
        assert_eq!(sub.subscribed().collect::<Vec<_>>(), ["ping"]);
        let reply = unsubscribe(&hub, Some(sub), b"\xa1\x66events\x64ping");
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            "rpc.unsubscribe: invalid arguments: events: invalid type: text, expected an array"
        );
    }

    #[test]
    fn dropping_a_subscriber_unregisters_it() {
        let hub = Hub::with_table(table());
        let mut slot = None;
        subscribe(&hub, &mut slot, 4, &[0xa0]);
        assert_eq!(hub.inner.remote_count.load(Ordering::Relaxed), 1);
        drop(slot);
        assert_eq!(hub.inner.remote_count.load(Ordering::Relaxed), 0);
        assert!(read(&hub.inner.remote).is_empty());
    }

    #[test]
    fn uints_are_shortest_form() {
        for (n, expected) in [
            (0u64, &[0x00][..]),
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (256, &[0x19, 1, 0]),
            (65536, &[0x1a, 0, 1, 0, 0]),
            (1 << 32, &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut out = [0u8; 9];
            let len = cbor_uint(n, &mut out);
            assert_eq!(&out[..len], expected, "{n}");
        }
    }
}
