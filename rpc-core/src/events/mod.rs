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
//! - [`Hub`] (`hub`): where a library fires its events ([`Hub::emit`],
//!   [`Hub::emit_with`]) and where in-process code listens ([`Hub::listen`]);
//! - [`EventStream`]: a typed in-process stream of one event (`hub`);
//! - `remote` (crate-private): one bounded queue per subscribed
//!   connection, filled by the hub and drained by the server; the built-ins
//!   that fill it are in [`crate::builtins`].
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

use std::sync::OnceLock;

use serde::Serialize;

use crate::schema::Shape;
use crate::Error;

mod hub;
mod remote;

pub use hub::{EventStream, Hub};
pub(crate) use remote::{QueueLimits, Subscriber};

/// Events a remote subscriber's queue holds by default (see
/// `server::Config::max_event_queue`).
pub const DEFAULT_REMOTE_QUEUE: usize = 256;
/// Envelope bytes a remote subscriber's queue holds by default (see
/// `server::Config::max_event_queue_bytes`).
pub const DEFAULT_REMOTE_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Events an in-process [`EventStream`] holds before it drops (see [`Hub::listen`]).
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
    /// [`crate::schema`]); called only when describing.
    pub payload: fn() -> Shape,
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

#[cfg(test)]
mod tests {
    use super::hub::read;
    use super::remote::cbor_uint;
    use super::*;
    use crate::builtins::subscribe::{subscribe, unsubscribe};
    use crate::wire::Reply;
    use bytes::BytesMut;
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;
    use std::task::Context as TaskContext;

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
        payload: Shape::any,
    };
    static PONG: EventDef = EventDef {
        name: "pong",
        path: "x::Pong",
        payload: Shape::any,
    };
    static PING2: EventDef = EventDef {
        name: "ping",
        path: "y::Ping",
        payload: Shape::any,
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
    fn queues_are_bounded_by_bytes_and_oversized_events_are_dropped() {
        let size = remote::envelope_pairs("ping", &Ping { n: 1 })
            .unwrap()
            .len();
        let hub = Hub::with_table(table());
        let mut slot = None;
        let limits = QueueLimits {
            events: 100,
            bytes: 2 * size,
            max_event: usize::MAX,
        };
        subscribe(&hub, &mut slot, limits, &names(&["ping"]));
        let sub = slot.take().unwrap();
        for n in 1..=5 {
            hub.emit(Ping { n });
        }
        assert_eq!(sub.queued_bytes(), 2 * size);
        let mut wbuf = BytesMut::new();
        let mut sub = sub;
        sub.flush_into(&mut wbuf);
        assert_eq!(sub.queued_bytes(), 0, "taken events give their bytes back");
        hub.emit(Ping { n: 6 });
        sub.flush_into(&mut wbuf);
        assert_eq!(
            frames(&wbuf),
            [ping(1, None), ping(2, None), ping(6, Some(3))]
        );
        // An event whose frame could exceed what clients accept never goes.
        let mut slot = None;
        // A pong's pairs are 3 bytes shorter than a ping's: it fits.
        let limits = QueueLimits {
            events: 100,
            bytes: usize::MAX,
            max_event: size + 16,
        };
        subscribe(&hub, &mut slot, limits, &names(&["ping", "pong"]));
        let sub = slot.as_mut().unwrap();
        hub.emit(Ping { n: 7 });
        hub.emit(Pong);
        let mut wbuf = BytesMut::new();
        sub.flush_into(&mut wbuf);
        use ciborium::Value;
        let pong = Value::Map(vec![
            ("eventType".into(), "pong".into()),
            ("payload".into(), Value::Null),
            ("dropped".into(), 1.into()),
        ]);
        assert_eq!(frames(&wbuf), [(2, pong)]);
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
        assert_eq!(reply, Reply::error("rpc.subscribe: unknown event: nope"));
        assert!(slot.is_none(), "a failed subscribe registers nothing");
        let reply = unsubscribe(&hub, None, &names(&["nope"]));
        assert_eq!(reply, Reply::error("rpc.unsubscribe: unknown event: nope"));
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
