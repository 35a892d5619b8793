//! `Connection`: the per-connection state machine. It reads and decodes
//! frames, starts calls, collects their replies in request order and
//! batches the writes.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, warn};

use super::buffers as read_buffers;
use super::in_flight::{InFlight, State};
use super::Shared;
use crate::builtins;
use crate::events::Subscriber;
use crate::registry::Call;
use crate::wire::{encode_response, Reply, RequestCodec};

pub(super) const READ_CHUNK: usize = 4 * 1024;
/// An empty buffer larger than this (after a big frame or reply) is freed
/// rather than kept for the life of the connection.
pub(super) const KEEP_BUFFER: usize = 64 * 1024;
/// How long a connection closed for a protocol error keeps discarding what
/// the peer still sends, so that closing does not reset the replies it owes.
const LINGER: Duration = Duration::from_secs(2);

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

pub(super) struct Connection<IO> {
    id: u64,
    io: IO,
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

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    pub(super) fn new(io: IO, shared: Arc<Shared>, stop: CancellationToken) -> Self {
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

    pub(super) async fn run(mut self) {
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

/// Reads and drops whatever the peer still sends, until it closes.
async fn discard<IO: AsyncRead + Unpin>(io: &mut IO) {
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
