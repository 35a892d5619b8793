//! The multiplexed side of a connection (`rpc.hello` with `"multiplex"`):
//! its calls by id, each answered when it finishes, with its deadline and
//! its cancellation. A connection that never negotiates never builds one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::FuturesUnordered;
use tokio::time::Sleep;

use super::in_flight::InFlight;
use crate::builtins::multiplex::deadline_exceeded;
use crate::wire::Reply;

/// The calls of a multiplexed connection.
#[derive(Default)]
pub(super) struct Multiplexed {
    pub(super) calls: FuturesUnordered<MuxCall>,
    /// The calls in `calls` not yet answered, by id: their method name (for
    /// the `cancelled` text) and the handle that drops them.
    pub(super) ids: HashMap<u32, (&'static str, AbortHandle)>,
    /// Event frames carry call id 0 (set once the base replies are out).
    pub(super) events_switched: bool,
}

impl Multiplexed {
    /// Registers a call still running after its first poll.
    pub(super) fn push(&mut self, id: u32, timeout_ms: u32, call: InFlight) {
        let (handle, registration) = AbortHandle::new_pair();
        self.ids.insert(id, (call.method, handle));
        let deadline = (timeout_ms != 0)
            .then(|| Box::pin(tokio::time::sleep(Duration::from_millis(timeout_ms.into()))));
        self.calls.push(MuxCall {
            id,
            method: call.method,
            cost: call.cost,
            call: Abortable::new(call, registration),
            deadline,
        });
    }

    /// Drops the call `id`; its method name when it was in flight. Its
    /// future answers nothing more when it resolves (aborted).
    pub(super) fn cancel(&mut self, id: u32) -> Option<&'static str> {
        let (method, handle) = self.ids.remove(&id)?;
        handle.abort();
        Some(method)
    }

    /// Calls running or not yet collected.
    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }
}

/// One multiplexed call: its id, deadline and cancellation around the
/// request it runs.
pub(super) struct MuxCall {
    id: u32,
    method: &'static str,
    cost: usize,
    call: Abortable<InFlight>,
    deadline: Option<Pin<Box<Sleep>>>,
}

/// What a multiplexed call resolves to: its id, its reply (`None` once
/// cancelled: `rpc.cancel` has answered for it) and the payload bytes to
/// give back to the connection's budget.
pub(super) struct MuxDone {
    pub(super) id: u32,
    pub(super) method: &'static str,
    pub(super) reply: Option<Reply>,
    pub(super) cost: usize,
}

impl Future for MuxCall {
    type Output = MuxDone;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<MuxDone> {
        let this = &mut *self;
        let reply = match Pin::new(&mut this.call).poll(cx) {
            Poll::Ready(Ok((reply, _, _))) => Some(reply),
            Poll::Ready(Err(_aborted)) => None,
            Poll::Pending => {
                let expired = match &mut this.deadline {
                    Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if !expired {
                    return Poll::Pending;
                }
                Some(deadline_exceeded(this.method))
            }
        };
        Poll::Ready(MuxDone {
            id: this.id,
            method: this.method,
            reply,
            cost: this.cost,
        })
    }
}
