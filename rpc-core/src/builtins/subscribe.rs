//! `rpc.subscribe` and `rpc.unsubscribe`: a connection's subscriptions to
//! the events of its server's hub. Their payload and reply types are
//! described in every build; answering them needs the server.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use serde::{Deserialize, Serialize};

use crate::events::{EventTable, Hub, QueueLimits, Subscriber};
use crate::handler::encode_ok;
use crate::wire::{Reply, SUBSCRIBE, UNSUBSCRIBE};

/// The payload of `rpc.subscribe` and `rpc.unsubscribe`.
#[derive(Deserialize)]
pub(crate) struct Names {
    pub(crate) events: Option<Vec<String>>,
}

/// The reply of `rpc.subscribe`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Subscribed {
    subscribed: Vec<String>,
}

/// The reply of `rpc.unsubscribe`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Unsubscribed {
    unsubscribed: Vec<String>,
}

/// `rpc.subscribe`: subscribes the connection whose subscriber is `slot`
/// to `payload`'s events (every event when the list is empty or absent),
/// registering a subscriber with a queue bounded by `limits` on first use.
/// The reply lists every event the connection is now subscribed to. An
/// unknown name changes nothing.
pub(crate) fn subscribe(
    hub: &Hub,
    slot: &mut Option<Box<Subscriber>>,
    limits: impl Into<QueueLimits>,
    payload: &[u8],
) -> Reply {
    let indices = match requested(hub.table(), SUBSCRIBE, payload) {
        Ok(indices) => indices,
        Err(reply) => return reply,
    };
    let subscriber = slot.get_or_insert_with(|| Box::new(hub.subscriber(limits)));
    subscriber.want(&indices, true);
    let subscribed = subscriber.subscribed().map(str::to_owned).collect();
    encode_ok(SUBSCRIBE, &Subscribed { subscribed })
}

/// `rpc.unsubscribe`: the converse of [`subscribe`]. The reply lists the
/// events the request named (every event when the list is empty or absent).
pub(crate) fn unsubscribe(hub: &Hub, slot: Option<&Subscriber>, payload: &[u8]) -> Reply {
    let table = hub.table();
    let indices = match requested(table, UNSUBSCRIBE, payload) {
        Ok(indices) => indices,
        Err(reply) => return reply,
    };
    if let Some(subscriber) = slot {
        subscriber.want(&indices, false);
    }
    let unsubscribed = indices
        .iter()
        .map(|&i| table.events()[i].name.to_owned())
        .collect();
    encode_ok(UNSUBSCRIBE, &Unsubscribed { unsubscribed })
}

/// The table indices a `{"events": [...]}` payload names, sorted, without
/// duplicates; every index for an empty or absent list.
fn requested(table: &EventTable, method: &str, payload: &[u8]) -> Result<Vec<usize>, Reply> {
    let names: Names = crate::wire::cbor::from_slice(payload)
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
