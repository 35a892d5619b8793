//! Every built-in method (`rpc.*`) in one place.
//!
//! # Layout
//!
//! - [`describe`]: `rpc.describe`, registered through `inventory` like any
//!   method, so every registry built from the inventory serves it;
//! - `subscribe`: `rpc.subscribe` and `rpc.unsubscribe`, answered by
//!   `connection` before the registry is looked at, because they change
//!   the state of the connection that sends them;
//! - `multiplex`: the payloads, replies and texts of `rpc.hello` and
//!   `rpc.cancel`, which the connection answers itself.

#[cfg(feature = "server")]
use crate::events::{Hub, QueueLimits, Subscriber};
#[cfg(feature = "server")]
use crate::wire::{Reply, SUBSCRIBE, UNSUBSCRIBE};

pub mod describe;
pub(crate) mod multiplex;
pub(crate) mod subscribe;

/// Answers the built-ins that need the connection: `rpc.subscribe` and
/// `rpc.unsubscribe`, on the connection whose subscriber is `slot` (made on
/// first use with a queue bounded by `limits`). `None` for any other name.
#[cfg(feature = "server")]
pub(crate) fn connection(
    name: &[u8],
    payload: &[u8],
    hub: &Hub,
    slot: &mut Option<Box<Subscriber>>,
    limits: QueueLimits,
) -> Option<(&'static str, Reply)> {
    if !name.starts_with(b"rpc.") {
        return None;
    }
    if name == SUBSCRIBE.as_bytes() {
        let reply = subscribe::subscribe(hub, slot, limits, payload);
        Some((SUBSCRIBE, reply))
    } else if name == UNSUBSCRIBE.as_bytes() {
        let reply = subscribe::unsubscribe(hub, slot.as_deref(), payload);
        Some((UNSUBSCRIBE, reply))
    } else {
        None
    }
}
