//! `rpc.describe`: what a server serves, as data and as a CDDL document
//! generated from the Rust types of its methods and events.
//!
//! Registered here through `inventory` like any method, so every registry
//! built from the inventory serves it; it lists the connection's own
//! built-ins (`rpc.subscribe`, `rpc.unsubscribe`) too.

use serde::{Deserialize, Serialize};

use crate::events::{EventTable, Hub};
use crate::handler::{decode_args, encode_ok};
use crate::registry::{Call, Method, Registry, Scope};
use crate::schema::{Shape, Types};
use crate::wire::{Reply, CANCEL, DESCRIBE, HELLO, SUBSCRIBE, UNSUBSCRIBE};

use super::multiplex::{Cancel, Cancelled, Enabled, Hello};
use super::subscribe::{Names, Subscribed, Unsubscribed};

/// What `rpc.describe` answers: the methods, the events and the CDDL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// Every method, built-ins included, sorted by name.
    pub methods: Vec<MethodInfo>,
    /// Every event name, sorted.
    pub events: Vec<String>,
    /// The CDDL document of the methods and events.
    pub cddl: String,
}

/// One method of a [`Description`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// The wire name.
    pub name: String,
    /// The payload keys, in declaration order.
    pub params: Vec<String>,
}

/// Describes what a server of `registry` serves: its methods, the built-ins
/// its connections answer (`rpc.hello`, `rpc.cancel`, `rpc.subscribe`,
/// `rpc.unsubscribe`), and the
/// events of `events`.
pub fn describe(registry: &Registry, events: &EventTable) -> Description {
    Description {
        methods: described(registry)
            .iter()
            .map(|m| MethodInfo {
                name: m.name.to_owned(),
                params: m.params.iter().map(|p| (*p).to_owned()).collect(),
            })
            .collect(),
        events: events.names().map(str::to_owned).collect(),
        cddl: cddl(registry, events),
    }
}

/// One method as described: registered, or answered by the connection.
#[derive(Clone, Copy)]
struct Described {
    name: &'static str,
    params: &'static [&'static str],
    types: fn() -> Types,
}

/// The built-ins a server's connections answer before the registry is
/// looked at (they need the connection), described like any method.
const CONNECTION_BUILTINS: [Described; 4] = [
    Described {
        name: HELLO,
        params: &["features"],
        types: Types::of::<Hello, Enabled>,
    },
    Described {
        name: CANCEL,
        params: &["id"],
        types: Types::of::<Cancel, Cancelled>,
    },
    Described {
        name: SUBSCRIBE,
        params: &["events"],
        types: Types::of::<Names, Subscribed>,
    },
    Described {
        name: UNSUBSCRIBE,
        params: &["events"],
        types: Types::of::<Names, Unsubscribed>,
    },
];

/// Every method a server of `registry` answers, sorted by name.
fn described(registry: &Registry) -> Vec<Described> {
    let builtin = |name: &str| CONNECTION_BUILTINS.iter().any(|b| b.name == name);
    let mut all: Vec<Described> = registry
        .methods()
        .iter()
        .filter(|m| !builtin(m.name))
        .map(|m| Described {
            name: m.name,
            params: m.params,
            types: m.types,
        })
        .chain(CONNECTION_BUILTINS)
        .collect();
    all.sort_by_key(|m| m.name);
    all
}

/// The registry `rpc.describe` describes, as the server puts it in the
/// [`Context`](crate::Context) of its methods. Without it (a handler called outside a
/// server), `rpc.describe` describes [`Registry::global`].
#[derive(Debug, Clone, Copy)]
pub struct ServedRegistry(pub &'static Registry);

/// The (empty) payload of `rpc.describe`: any map is accepted.
#[derive(Deserialize)]
struct DescribeArgs {}

fn rpc_describe(scope: &Scope<'_>, payload: &[u8]) -> Call {
    let ctx = scope.context();
    if let Err(reply) = decode_args::<DescribeArgs>(DESCRIBE, payload) {
        return Call::Ready(reply);
    }
    let internal =
        |e: crate::Error| Call::Ready(Reply::error(format!("{DESCRIBE}: internal error: {e}")));
    let registry = match ctx.get::<ServedRegistry>() {
        Some(served) => served.0,
        None => match Registry::global() {
            Ok(registry) => registry,
            Err(e) => return internal(e),
        },
    };
    // The events subscribers of this server can get: its hub's.
    let events = match ctx.get::<Hub>() {
        Some(hub) => hub.table(),
        None => match EventTable::global() {
            Ok(table) => table,
            Err(e) => return internal(e),
        },
    };
    Call::Ready(encode_ok(DESCRIBE, &describe(registry, events)))
}

inventory::submit! {
    Method {
        name: DESCRIBE,
        params: &[],
        path: "rpc_core::builtins::describe::rpc_describe",
        handler: rpc_describe,
        types: Types::of::<DescribeArgs, Description>,
        borrows: &[],
    }
}

/// The CDDL document of a server of `registry` with `events` (see
/// [`crate::cddl::document`]).
pub fn cddl(registry: &Registry, events: &EventTable) -> String {
    let methods: Vec<(&str, Types)> = described(registry)
        .iter()
        .map(|m| (m.name, (m.types)()))
        .collect();
    let events: Vec<(&str, Shape)> = events
        .events()
        .iter()
        .map(|e| (e.name, (e.payload)()))
        .collect();
    crate::cddl::document(&methods, &events)
}
