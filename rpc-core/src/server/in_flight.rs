//! [`InFlight`]: one request of a connection, from decode to reply.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use tracing::{debug, Span};

use crate::registry::{panic_reply, CallFuture};
use crate::wire::Reply;

/// One request of a connection, from decode to reply.
pub(super) struct InFlight {
    pub(super) method: &'static str,
    /// The payload's size, counted against `max_in_flight_bytes`.
    pub(super) cost: usize,
    pub(super) state: State,
    pub(super) span: Span,
    pub(super) started: Option<Instant>,
}

pub(super) enum State {
    Ready(Option<Reply>),
    Running(CallFuture),
}

impl Future for InFlight {
    /// The reply, the cost to give back, and the method's name.
    type Output = (Reply, usize, &'static str);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
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
        Poll::Ready((reply, this.cost, this.method))
    }
}
