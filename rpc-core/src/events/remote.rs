//! The remote side of events: one bounded queue per subscribed connection,
//! filled by the hub and drained by the server into status 2 frames.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::mpsc;

use super::hub::{write, Hub};
use crate::wire::{cbor, EVENT_ID, STATUS_EVENT};

/// One event in a subscriber's queue: the envelope's key-value pairs,
/// shared by every subscriber, and the events dropped just before it.
#[derive(Debug)]
pub(crate) struct Queued {
    pairs: Bytes,
    dropped: u64,
}

/// The bounds of one subscriber's queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Events waiting at most.
    pub(crate) events: usize,
    /// Bytes of the waiting events' envelopes at most; an event larger than
    /// this is queued only when the queue is empty.
    pub(crate) bytes: usize,
    /// The largest event frame body sent; a larger event is dropped.
    pub(crate) max_event: usize,
}

impl From<usize> for QueueLimits {
    /// A queue bounded by `events` only.
    fn from(events: usize) -> Self {
        QueueLimits {
            events,
            bytes: usize::MAX,
            max_event: usize::MAX,
        }
    }
}

/// What an event frame's body holds besides its pairs at most: the map
/// header and `"dropped": u64`.
const ENVELOPE_EXTRA: usize = 1 + DROPPED_KEY.len() + 9;

pub(super) struct RemoteQueue {
    /// By index in the hub's table.
    pub(super) wants: Box<[AtomicBool]>,
    tx: mpsc::Sender<Queued>,
    /// Dropped since the last event queued.
    dropped: AtomicU64,
    /// Envelope bytes of the events queued (shared envelopes counted for
    /// each queue holding them).
    bytes: AtomicUsize,
    limits: QueueLimits,
}

impl RemoteQueue {
    pub(super) fn push(&self, pairs: Bytes) {
        let size = pairs.len();
        if size.saturating_add(ENVELOPE_EXTRA) > self.limits.max_event {
            // Larger than any client accepts: never sent.
            self.dropped.fetch_add(1, Ordering::AcqRel);
            return;
        }
        // Reserve the bytes first, so that concurrent emitters never
        // overshoot together; an empty queue takes any event that fits a frame.
        let before = self.bytes.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before.saturating_add(size) > self.limits.bytes {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::AcqRel);
        if let Err(mpsc::error::TrySendError::Full(queued)) =
            self.tx.try_send(Queued { pairs, dropped })
        {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
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
    /// The connection is multiplexed: event frames carry call id 0.
    multiplexed: bool,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("subscribed", &self.subscribed().collect::<Vec<_>>())
            .finish()
    }
}

impl Hub {
    /// Registers a remote subscriber: the server's side of `rpc.subscribe`.
    pub(crate) fn subscriber(&self, limits: impl Into<QueueLimits>) -> Subscriber {
        let limits = limits.into();
        let (tx, rx) = mpsc::channel(limits.events.max(1));
        let queue = Arc::new(RemoteQueue {
            wants: (0..self.inner.table.len())
                .map(|_| AtomicBool::new(false))
                .collect(),
            tx,
            dropped: AtomicU64::new(0),
            bytes: AtomicUsize::new(0),
            limits,
        });
        write(&self.inner.remote).push(Arc::clone(&queue));
        self.inner.remote_count.fetch_add(1, Ordering::AcqRel);
        Subscriber {
            hub: self.clone(),
            queue,
            rx,
            multiplexed: false,
        }
    }
}

impl Subscriber {
    /// Every event this subscriber wants, sorted.
    pub(crate) fn subscribed(&self) -> impl Iterator<Item = &'static str> + '_ {
        let table = self.hub.inner.table;
        self.queue
            .wants
            .iter()
            .enumerate()
            .filter(|(_, on)| on.load(Ordering::Acquire))
            .map(move |(i, _)| table.sorted[i].name)
    }

    /// Envelope bytes of the events waiting in the queue.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queue.bytes.load(Ordering::Acquire)
    }

    /// Takes the next event, giving its bytes back to the queue's bound.
    fn taken(&self, queued: Queued) -> Queued {
        self.queue
            .bytes
            .fetch_sub(queued.pairs.len(), Ordering::AcqRel);
        queued
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
                    let multiplexed = self.multiplexed;
                    self.taken(queued).encode(wbuf, multiplexed);
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
            let multiplexed = self.multiplexed;
            self.taken(queued).encode(wbuf, multiplexed);
        }
    }
}

impl Subscriber {
    /// From now on, writes event frames in the multiplexed framing.
    pub(crate) fn set_multiplexed(&mut self) {
        self.multiplexed = true;
    }

    /// Turns the events at `indices` (in the table) on or off.
    pub(crate) fn want(&self, indices: &[usize], on: bool) {
        for &i in indices {
            self.queue.wants[i].store(on, Ordering::Release);
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
    /// Appends the status 2 frame of this event to `dst` (with call id 0
    /// first when `multiplexed`), its envelope carrying `"dropped": N` when
    /// events were dropped just before it.
    fn encode(&self, dst: &mut BytesMut, multiplexed: bool) {
        let dropped = self.dropped;
        let mut tail = [0u8; DROPPED_KEY.len() + 9];
        let tail_len = if dropped > 0 {
            tail[..DROPPED_KEY.len()].copy_from_slice(DROPPED_KEY);
            DROPPED_KEY.len() + cbor_uint(dropped, &mut tail[DROPPED_KEY.len()..])
        } else {
            0
        };
        let body_len = 1 + self.pairs.len() + tail_len;
        dst.reserve(12 + body_len);
        if multiplexed {
            dst.put_u32(EVENT_ID);
        }
        dst.put_i32(STATUS_EVENT);
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
pub(super) fn cbor_uint(n: u64, out: &mut [u8]) -> usize {
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
pub(super) fn envelope_pairs<E: Serialize>(
    name: &str,
    payload: &E,
) -> Result<Bytes, cbor::EncodeError> {
    let mut out = Vec::with_capacity(64);
    cbor::append("eventType", &mut out)?;
    cbor::append(name, &mut out)?;
    cbor::append("payload", &mut out)?;
    cbor::append(payload, &mut out)?;
    Ok(Bytes::from(out))
}
