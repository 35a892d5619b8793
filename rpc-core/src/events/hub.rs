//! The hub: where a library fires its events and in-process code listens.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::remote::{envelope_pairs, RemoteQueue};
use super::{Event, EventTable, DEFAULT_LISTENER_QUEUE};

/// Where a library fires its events: cheap to clone, every clone the same
/// hub. Firing costs two atomic loads when nobody listens.
///
/// A library keeps one in its context (the timer's `Timer` does); a server
/// delivers the events of the `Hub` in its `Context` to the connections that
/// subscribe, so a host puts the library's hub there too.
#[derive(Clone)]
pub struct Hub {
    pub(super) inner: Arc<HubInner>,
}

pub(super) struct HubInner {
    pub(super) table: &'static EventTable,
    /// EventStream queues, each an `Arc<LocalQueue<E>>` under `TypeId::of::<E>()`.
    pub(super) local: RwLock<HashMap<TypeId, Vec<Arc<dyn Any + Send + Sync>>>>,
    pub(super) local_count: AtomicUsize,
    pub(super) remote: RwLock<Vec<Arc<RemoteQueue>>>,
    pub(super) remote_count: AtomicUsize,
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
    /// are dropped and counted in [`EventStream::dropped`]. The stream ends
    /// never; drop it to stop listening.
    pub fn listen<E: Event>(&self) -> EventStream<E> {
        self.listen_with_capacity(DEFAULT_LISTENER_QUEUE)
    }

    /// [`listen`](Self::listen) with a queue of `capacity` events (at least 1).
    pub fn listen_with_capacity<E: Event>(&self, capacity: usize) -> EventStream<E> {
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
        EventStream {
            rx,
            queue,
            hub: self.clone(),
        }
    }
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
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
pub struct EventStream<E: Event> {
    rx: mpsc::Receiver<E>,
    queue: Arc<LocalQueue<E>>,
    hub: Hub,
}

impl<E: Event> EventStream<E> {
    /// Events dropped so far because this listener's queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<E> {
        self.rx.try_recv().ok()
    }
}

impl<E: Event> Stream for EventStream<E> {
    type Item = E;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<E>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl<E: Event> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("event", &E::NAME)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<E: Event> Drop for EventStream<E> {
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
