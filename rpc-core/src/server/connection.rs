//! `Connection`: the per-connection state machine. It reads and decodes
//! frames, starts calls, collects their replies in request order (or, once
//! `rpc.hello` has enabled multiplexing, as they finish: `super::mux`) and
//! batches the writes.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, warn};

use super::buffers as read_buffers;
use super::in_flight::{InFlight, State};
use super::mux::Multiplexed;
use super::rate_limit::{self, PROTOCOL_ERRORS};
use super::{Listener, Shared};
use crate::builtins;
use crate::builtins::multiplex;
use crate::events::{QueueLimits, Subscriber};
use crate::registry::{Call, LoggedName, Scope};
use crate::wire::{
    encode_mux_response, encode_response, Reply, RequestCodec, CANCEL, HELLO, STATUS_ERROR,
};
use crate::Peer;

pub(super) const READ_CHUNK: usize = 4 * 1024;
/// An empty buffer larger than this (after a big frame or reply) is freed
/// rather than kept for the life of the connection.
pub(super) const KEEP_BUFFER: usize = 64 * 1024;
/// The most one read takes from the socket.
const MAX_READ: usize = 64 * 1024;
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
    /// The caller, lent to each call's `&Peer` parameters.
    peer: Arc<Peer>,
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
    /// Set by `rpc.hello` enabling `"multiplex"`: from the next frame on,
    /// requests carry ids and replies go out as calls finish. `in_flight`
    /// then holds only the base-framed calls read before, answered first.
    mux: Option<Box<Multiplexed>>,
    /// The bytes this connection last reported to the server's budget.
    held: usize,
    /// The budget's generation this connection last parked in.
    parked: Option<usize>,
    /// Holds the budget's exemption: reads on over the budget to finish
    /// the frame it has begun.
    exempt: bool,
    /// Runs while a partial frame waits for bytes (`Config::frame_timeout`);
    /// made on the first partial frame.
    frame_timer: Option<Pin<Box<Sleep>>>,
    /// `frame_timer` counts from the last byte received.
    frame_armed: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    pub(super) fn new(
        io: IO,
        peer: Arc<Peer>,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Self {
        let config = &shared.config;
        Connection {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            io,
            peer,
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
            mux: None,
            held: 0,
            parked: None,
            exempt: false,
            frame_timer: None,
            frame_armed: false,
            shared,
        }
    }

    /// Serves the connection once its listener has readied it (a TLS
    /// handshake, in this task so that it holds up no other connection).
    pub(super) async fn serve<L: Listener<Io = IO>>(mut self) {
        debug!(conn = self.id, "connection opened");
        // Unique here: the connection has not run a call yet.
        if let Some(peer) = Arc::get_mut(&mut self.peer) {
            if let Err(e) = L::establish(&mut self.io, peer).await {
                debug!(conn = self.id, error = %e, "connection failed");
                return;
            }
        }
        self.run_opened().await;
    }

    #[cfg(test)]
    pub(super) async fn run(self) {
        debug!(conn = self.id, "connection opened");
        self.run_opened().await;
    }

    async fn run_opened(mut self) {
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
            self.switch_events();
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
                let Poll::Ready(Some((reply, cost, method))) = self.in_flight.poll_next_unpin(cx)
                else {
                    break;
                };
                self.in_flight_bytes -= cost;
                self.flush_events();
                self.encode_reply(method, &reply);
                progress = true;
            }
            if self.mux.is_some() && self.in_flight.is_empty() {
                progress |= self.write_mux_replies(cx, backlog);
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
            if self.reading == Reading::Done
                && self.in_flight.is_empty()
                && self.mux.as_ref().is_none_or(|mux| mux.len() == 0)
                && self.wbuf.is_empty()
            {
                // Release the buffers before the (possibly lingering) close.
                self.rbuf = BytesMut::new();
                self.wbuf = BytesMut::new();
                ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
            if !progress {
                self.account();
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
        // Whether this turn ended waiting for the rest of a partial frame.
        let mut awaiting_frame = false;
        // Gave the exemption back this turn: let another take it first.
        let mut released = false;
        while self.reading != Reading::Done
            && self.in_flight.len() + self.mux.as_ref().map_or(0, |mux| mux.len()) < max_in_flight
            && self.in_flight_bytes < max_in_flight_bytes
            && self.wbuf.len() < max_write_backlog
            // Multiplexed frames wait until the base replies owed are out.
            && (self.mux.is_none() || self.in_flight.is_empty())
        {
            let decoded = if self.mux.is_none() {
                self.codec.frame(&self.rbuf).map(|found| {
                    found.map(|frame| {
                        // Handlers decode their payload before returning, so
                        // the frame is read in place, then dropped from the buffer.
                        let rbuf = std::mem::take(&mut self.rbuf);
                        self.start(cx, frame.method(&rbuf), frame.payload(&rbuf));
                        self.rbuf = rbuf;
                        frame.len()
                    })
                })
            } else {
                self.codec.mux_frame(&self.rbuf).map(|found| {
                    found.map(|frame| {
                        let rbuf = std::mem::take(&mut self.rbuf);
                        let (method, payload) = (frame.method(&rbuf), frame.payload(&rbuf));
                        self.start_mux(cx, frame.id(), frame.timeout_ms(), method, payload);
                        self.rbuf = rbuf;
                        frame.len()
                    })
                })
            };
            match decoded {
                Ok(Some(len)) => {
                    self.rbuf.advance(len);
                    progress = true;
                    if self.exempt {
                        // The frame it was exempt for is done.
                        self.shared.budget.release(self.id);
                        self.exempt = false;
                        released = true;
                    }
                    continue;
                }
                // An empty read buffer, large or not, goes back to the pool
                // (which frees a large one) when the next read finds nothing.
                Ok(None) => {}
                Err(e) => {
                    if rate_limit::allow(&PROTOCOL_ERRORS, "protocol errors") {
                        warn!(conn = self.id, error = %e, "closing connection");
                    } else {
                        debug!(conn = self.id, error = %e, "closing connection");
                    }
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
            // Over the server's budget, a connection holding much waits,
            // but one at a time may finish the frame it has begun.
            let held = self.account();
            if !self.exempt && self.shared.budget.over(held) {
                let budget = &self.shared.budget;
                // Only a connection whose partial frame is all it holds:
                // a pipelining hog's next frame is not what unblocks anyone.
                let only_a_frame = !self.rbuf.is_empty() && held == self.rbuf.len();
                if !released && only_a_frame && budget.claim(self.id) {
                    self.exempt = true;
                } else if budget.park(cx.waker(), &mut self.parked) {
                    debug!(
                        conn = self.id,
                        held,
                        used = budget.used(),
                        "over the memory budget: reading paused"
                    );
                    break;
                }
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = read_buffers::take();
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
                self.rbuf.reserve(READ_CHUNK);
            }
            // `poll_read` (not `try_read`): tokio clears readiness after a
            // short read, which saves a `recv` that would only say EAGAIN.
            // At most MAX_READ at once: a grown buffer's spare room would
            // let one read take far more than the budget's check allowed.
            let mut room = (&mut self.rbuf).limit(MAX_READ);
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut room) {
                Poll::Pending => {
                    // Waiting with nothing buffered: the buffer goes back to
                    // the thread's pool, so an idle connection holds none.
                    if self.rbuf.is_empty() {
                        read_buffers::give(std::mem::take(&mut self.rbuf));
                    } else {
                        awaiting_frame = true;
                        if self.frame_stalled(cx) {
                            warn!(
                                conn = self.id,
                                bytes = self.rbuf.len(),
                                "closing connection: partial frame stalled"
                            );
                            self.reading = Reading::Done;
                        }
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
                    self.frame_armed = false;
                    if let (Some(idle), Some(timeout)) = (&mut self.idle, idle_timeout) {
                        idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                }
            }
        }
        if !awaiting_frame {
            // Paused, or no partial frame: the timer restarts at the next wait,
            // and the exemption is for a connection waiting on its peer.
            self.frame_armed = false;
            if self.exempt {
                self.shared.budget.release(self.id);
                self.exempt = false;
            }
        }
        Ok(progress)
    }

    /// Whether the partial frame in the read buffer has received no byte
    /// for `Config::frame_timeout`; the timer counts from the first wait
    /// after the last byte (the connection waiting on the peer, not on the
    /// budget or its own limits).
    fn frame_stalled(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(timeout) = self.shared.config.frame_timeout else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let timer = self
            .frame_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.frame_armed {
            timer.as_mut().reset(deadline);
            self.frame_armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// What the connection holds against the server's budget, reported
    /// (one atomic add or sub) when it changed since the last report.
    fn account(&mut self) -> usize {
        let held = self.in_flight_bytes
            + self.rbuf.len()
            + self.wbuf.len()
            + self.subscriber.as_ref().map_or(0, |s| s.queued_bytes());
        if held != self.held {
            self.shared.budget.update(self.held, held);
            self.held = held;
        }
        held
    }

    /// Encodes `reply`, or status 1 in its place when its body is over
    /// `Config::max_reply` (what clients accept).
    fn encode_reply(&mut self, method: &str, reply: &Reply) {
        match self.over_limit(method, reply) {
            None => encode_response(reply.status, &reply.body, &mut self.wbuf),
            Some(text) => encode_response(STATUS_ERROR, text.as_bytes(), &mut self.wbuf),
        }
    }

    /// The multiplexed [`encode_reply`](Self::encode_reply).
    fn encode_mux_reply(&mut self, id: u32, method: &str, reply: &Reply) {
        match self.over_limit(method, reply) {
            None => encode_mux_response(id, reply.status, &reply.body, &mut self.wbuf),
            Some(text) => encode_mux_response(id, STATUS_ERROR, text.as_bytes(), &mut self.wbuf),
        }
    }

    /// The status 1 text that replaces a reply over `Config::max_reply`.
    fn over_limit(&self, method: &str, reply: &Reply) -> Option<String> {
        let max = self.shared.config.max_reply;
        if reply.body.len() <= max {
            return None;
        }
        let method = if method.is_empty() { "reply" } else { method };
        warn!(
            conn = self.id,
            method,
            bytes = reply.body.len(),
            "reply over the limit"
        );
        Some(format!(
            "{method}: reply of {} bytes exceeds the limit of {max}",
            reply.body.len()
        ))
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
        if !name.starts_with(b"rpc.") {
            return None;
        }
        if name == HELLO.as_bytes() {
            let reply = match self.mux {
                Some(_) => multiplex::hello_again(),
                None => {
                    let (reply, on) = multiplex::hello(payload);
                    if on {
                        self.mux = Some(Box::default());
                    }
                    reply
                }
            };
            return Some((HELLO, reply));
        }
        if name == CANCEL.as_bytes() && self.mux.is_none() {
            return Some((CANCEL, multiplex::cancel_unframed()));
        }
        let config = &self.shared.config;
        let limits = QueueLimits {
            events: config.max_event_queue,
            bytes: config.max_event_queue_bytes,
            max_event: config.max_reply,
        };
        let answered = builtins::connection(
            name,
            payload,
            &self.shared.events,
            &mut self.subscriber,
            limits,
        );
        if self.mux.as_ref().is_some_and(|mux| mux.events_switched) {
            if let Some(subscriber) = &mut self.subscriber {
                subscriber.set_multiplexed();
            }
        }
        answered
    }

    /// Once the base replies owed before `rpc.hello`'s are out, event frames
    /// switch to the multiplexed framing.
    fn switch_events(&mut self) {
        if let Some(mux) = &mut self.mux {
            if !mux.events_switched && self.in_flight.is_empty() {
                mux.events_switched = true;
                if let Some(subscriber) = &mut self.subscriber {
                    subscriber.set_multiplexed();
                }
            }
        }
    }

    /// Writes the replies of the multiplexed calls that have finished, while
    /// the write buffer holds less than `backlog`.
    fn write_mux_replies(&mut self, cx: &mut TaskContext<'_>, backlog: usize) -> bool {
        self.switch_events();
        let mut progress = false;
        while self.wbuf.len() < backlog {
            let Some(mux) = &mut self.mux else {
                return false;
            };
            let Poll::Ready(Some(done)) = mux.calls.poll_next_unpin(cx) else {
                break;
            };
            self.in_flight_bytes -= done.cost;
            progress = true;
            // `None`: cancelled, and answered by `rpc.cancel` already.
            if let Some(reply) = done.reply {
                mux.ids.remove(&done.id);
                self.flush_events();
                self.encode_mux_reply(done.id, done.method, &reply);
            }
        }
        progress
    }

    /// Writes one multiplexed reply now, after the events queued before it.
    fn answer_mux(&mut self, id: u32, reply: &Reply) {
        self.flush_events();
        self.encode_mux_reply(id, "", reply);
    }

    /// Starts one multiplexed request: checks its id, answers `rpc.cancel`,
    /// and runs anything else like a base request, answering it at once if
    /// it finishes at its first poll.
    fn start_mux(
        &mut self,
        cx: &mut TaskContext<'_>,
        id: u32,
        timeout_ms: u32,
        name: &[u8],
        payload: &[u8],
    ) {
        self.switch_events();
        let Some(mux) = &mut self.mux else {
            return;
        };
        if id == 0 {
            return self.answer_mux(id, &multiplex::zero_id());
        }
        // Calls answered at their first poll never enter `ids`.
        if !mux.ids.is_empty() && mux.ids.contains_key(&id) {
            return self.answer_mux(id, &multiplex::duplicate_id(id));
        }
        if name == CANCEL.as_bytes() {
            let reply = match multiplex::cancel_id(payload) {
                Ok(target) => {
                    let cancelled = u32::try_from(target)
                        .ok()
                        .and_then(|target| mux.cancel(target).map(|method| (target, method)));
                    if let Some((target, method)) = cancelled {
                        self.answer_mux(target, &multiplex::call_cancelled(method));
                    }
                    multiplex::cancelled(cancelled.is_some())
                }
                Err(reply) => reply,
            };
            return self.answer_mux(id, &reply);
        }
        let mut in_flight = self.prepare(name, payload);
        if let Poll::Ready((reply, _, method)) = Pin::new(&mut in_flight).poll(cx) {
            self.flush_events();
            return self.encode_mux_reply(id, method, &reply);
        }
        self.in_flight_bytes += in_flight.cost;
        if let Some(mux) = &mut self.mux {
            mux.push(id, timeout_ms, in_flight);
        }
    }

    fn poll_idle(&mut self, cx: &mut TaskContext<'_>) -> bool {
        // A subscriber awaits events: it is never idle.
        let busy = !self.in_flight.is_empty()
            || !self.wbuf.is_empty()
            || self.subscriber.is_some()
            || self.mux.as_ref().is_some_and(|mux| mux.len() > 0);
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
        let mut in_flight = self.prepare(name, payload);
        // Most calls finish at their first poll: with nothing owed before
        // them, their reply goes straight to the write buffer.
        if self.in_flight.is_empty() {
            if let Poll::Ready((reply, _, method)) = Pin::new(&mut in_flight).poll(cx) {
                self.flush_events();
                self.encode_reply(method, &reply);
                return;
            }
        }
        self.in_flight_bytes += in_flight.cost;
        self.in_flight.push_back(in_flight);
    }

    /// Looks the method up (built-ins first) and starts its call.
    fn prepare(&mut self, name: &[u8], payload: &[u8]) -> InFlight {
        let (method, call) = match self.builtin(name, payload) {
            Some((method, reply)) => (method, Call::Ready(reply)),
            None => {
                let shared = &self.shared;
                let scope = Scope::new(&shared.context, &self.peer);
                let (method, call) = shared.registry.call_from(&scope, name, payload);
                (method.map_or("", |m| m.name), call)
            }
        };
        let span = tracing::debug_span!(
            "request",
            method = %LoggedName(name),
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
        InFlight {
            method,
            cost: payload.len(),
            state,
            span,
            started,
        }
    }
}

impl<IO> Drop for Connection<IO> {
    /// Gives back whatever the connection still held to the budget.
    fn drop(&mut self) {
        self.shared.budget.update(self.held, 0);
        if self.exempt {
            self.shared.budget.release(self.id);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use futures_util::FutureExt;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::{mpsc, Notify};

    use super::*;
    use crate::context::Context;
    use crate::events::Hub;
    use crate::registry::{Method, Registry};
    use crate::server::Config;
    use crate::wire::encode_request;

    /// What the test methods share with the test: `fast` reports each call,
    /// `slow` waits for the gate.
    struct Probe {
        gate: Notify,
        calls: AtomicUsize,
        started: mpsc::UnboundedSender<Vec<u8>>,
    }

    fn probe(context: &Context) -> Arc<Probe> {
        context
            .get::<Probe>()
            .expect("the test context holds a Probe")
    }

    fn fast(scope: &Scope<'_>, payload: &[u8]) -> Call {
        let probe = probe(scope.context());
        probe.calls.fetch_add(1, Ordering::SeqCst);
        let _ = probe.started.send(payload.to_vec());
        Call::Ready(Reply::ok(payload.to_vec()))
    }

    fn slow(scope: &Scope<'_>, payload: &[u8]) -> Call {
        let probe = probe(scope.context());
        let body = payload.to_vec();
        let _ = probe.started.send(body.clone());
        Call::Pending(Box::pin(async move {
            probe.gate.notified().await;
            Reply::ok(body)
        }))
    }

    static FAST: Method = Method {
        name: "fast",
        params: &[],
        path: "test::fast",
        handler: fast,
        types: crate::schema::Types::untyped,
        borrows: &[],
    };
    static SLOW: Method = Method {
        name: "slow",
        params: &[],
        path: "test::slow",
        handler: slow,
        types: crate::schema::Types::untyped,
        borrows: &[],
    };

    struct Harness {
        client: DuplexStream,
        probe: Arc<Probe>,
        started: mpsc::UnboundedReceiver<Vec<u8>>,
        shared: Arc<Shared>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    /// A connection over an in-memory pipe of `pipe` bytes each way.
    fn connect(config: Config, pipe: usize) -> Harness {
        let config_memory = config.max_memory;
        let registry = Box::leak(Box::new(Registry::from_methods([&FAST, &SLOW]).unwrap()));
        let (tx, started) = mpsc::unbounded_channel();
        let probe = Arc::new(Probe {
            gate: Notify::new(),
            calls: AtomicUsize::new(0),
            started: tx,
        });
        let mut context = Context::new();
        context.insert(Arc::clone(&probe));
        let shared = Arc::new(Shared {
            registry,
            context,
            config,
            events: Hub::new(),
            stopping: AtomicBool::new(false),
            budget: super::super::budget::Budget::new(config_memory),
        });
        let (client, server) = duplex(pipe);
        let stop = CancellationToken::new();
        let conn = Connection::new(
            server,
            Arc::new(Peer::Unknown),
            Arc::clone(&shared),
            stop.clone(),
        );
        let task = tokio::spawn(conn.run());
        Harness {
            client,
            probe,
            started,
            shared,
            stop,
            task,
        }
    }

    fn request(method: &str, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_request(method.as_bytes(), payload, &mut buf);
        buf
    }

    fn reply(body: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_response(0, body, &mut buf);
        buf.to_vec()
    }

    async fn read_exact(client: &mut DuplexStream, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        client.read_exact(&mut buf).await.unwrap();
        buf
    }

    /// Lets every other task of this single-threaded runtime run until all
    /// of them wait on something.
    async fn settle() {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_frame_split_at_any_byte_is_answered_once() {
        let mut bytes = request("fast", b"one");
        bytes.extend_from_slice(&request("fast", b"two"));
        let mut want = reply(b"one");
        want.extend(reply(b"two"));
        for split in 0..=bytes.len() {
            let mut h = connect(Config::default(), 1024);
            h.client.write_all(&bytes[..split]).await.unwrap();
            settle().await;
            h.client.write_all(&bytes[split..]).await.unwrap();
            assert_eq!(
                read_exact(&mut h.client, want.len()).await,
                want,
                "split at {split}"
            );
            assert_eq!(h.probe.calls.load(Ordering::SeqCst), 2, "split at {split}");
        }
        // One byte at a time: the connection sees every prefix of both frames.
        let mut h = connect(Config::default(), 1024);
        for byte in bytes.iter() {
            h.client.write_all(&[*byte]).await.unwrap();
            settle().await;
        }
        assert_eq!(read_exact(&mut h.client, want.len()).await, want);
    }

    #[tokio::test]
    async fn replies_keep_request_order_while_a_slow_call_runs() {
        let mut h = connect(Config::default(), 1024);
        let mut bytes = request("slow", b"s");
        bytes.extend_from_slice(&request("fast", b"f1"));
        bytes.extend_from_slice(&request("fast", b"f2"));
        h.client.write_all(&bytes).await.unwrap();
        for want in [&b"s"[..], b"f1", b"f2"] {
            assert_eq!(h.started.recv().await.unwrap(), want);
        }
        // Both fast calls are done, yet nothing may pass the slow one.
        settle().await;
        let mut byte = [0u8; 1];
        assert!(h.client.read(&mut byte).now_or_never().is_none());
        h.probe.gate.notify_one();
        let mut want = reply(b"s");
        want.extend(reply(b"f1"));
        want.extend(reply(b"f2"));
        assert_eq!(read_exact(&mut h.client, want.len()).await, want);
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_pauses_reading_until_it_reads() {
        // A pipe as large as a read chunk, so that the server could read
        // many requests at once; a backlog of a few replies.
        const REQUESTS: usize = 400;
        const PIPE: usize = READ_CHUNK;
        let payload = [7u8; 100];
        let backlog = 256;
        let config = Config::default().max_write_backlog(backlog);
        let h = connect(config, PIPE);
        let (mut reader, mut writer) = tokio::io::split(h.client);
        let mut bytes = BytesMut::new();
        for _ in 0..REQUESTS {
            bytes.extend_from_slice(&request("fast", &payload));
        }
        let sending = tokio::spawn(async move { writer.write_all(&bytes).await.map(|_| writer) });
        settle().await;
        // Replies fill the pipe and the write buffer; then the server reads
        // no more, and the peer's requests back up behind them.
        let answered = h.probe.calls.load(Ordering::SeqCst);
        let one = reply(&payload).len();
        assert!(answered > 0 && answered < REQUESTS, "{answered} calls");
        // What the pipe holds, plus the backlog and the reply over it.
        assert!(answered <= (PIPE + backlog) / one + 2, "{answered} calls");
        assert!(!sending.is_finished());
        settle().await;
        assert_eq!(h.probe.calls.load(Ordering::SeqCst), answered, "paused");
        // Reading resumes as the peer reads its replies.
        for _ in 0..REQUESTS {
            assert_eq!(read_exact_half(&mut reader, one).await, reply(&payload));
        }
        sending.await.unwrap().unwrap();
        assert_eq!(h.probe.calls.load(Ordering::SeqCst), REQUESTS);
    }

    async fn read_exact_half(
        reader: &mut tokio::io::ReadHalf<DuplexStream>,
        len: usize,
    ) -> Vec<u8> {
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn shutdown_answers_what_was_read_then_closes() {
        let mut h = connect(Config::default(), 1024);
        let mut bytes = request("slow", b"s");
        bytes.extend_from_slice(&request("fast", b"f"));
        h.client.write_all(&bytes).await.unwrap();
        for want in [&b"s"[..], b"f"] {
            assert_eq!(h.started.recv().await.unwrap(), want);
        }
        // As `Server::serve` stops: the flag, then the token.
        h.shared.stopping.store(true, Ordering::Release);
        h.stop.cancel();
        settle().await;
        assert!(!h.task.is_finished(), "a call is still running");
        h.probe.gate.notify_one();
        let mut want = reply(b"s");
        want.extend(reply(b"f"));
        assert_eq!(read_exact(&mut h.client, want.len()).await, want);
        let mut rest = Vec::new();
        // Bounded: a connection that never closes fails here, not hangs.
        tokio::time::timeout(Duration::from_secs(10), h.client.read_to_end(&mut rest))
            .await
            .expect("the connection closes after the owed replies")
            .unwrap();
        assert!(rest.is_empty(), "nothing after the owed replies");
        h.task.await.unwrap();
        // A request sent after the drain is never read.
        assert!(h.client.write_all(&request("fast", b"late")).await.is_err());
        assert_eq!(h.probe.calls.load(Ordering::SeqCst), 1);
    }
}
