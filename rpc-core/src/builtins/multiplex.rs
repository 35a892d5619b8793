//! `rpc.hello` and `rpc.cancel`: negotiating the multiplexed framing and
//! dropping a multiplexed call. The connection answers both (they change
//! its state); this module holds their payloads, replies and texts, which
//! `rpc.describe` also describes.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use serde::{Deserialize, Serialize};

use crate::handler::{decode_args, encode_ok};
use crate::wire::{Reply, CANCEL, HELLO, MULTIPLEX};

/// The payload of `rpc.hello`.
#[derive(Deserialize)]
pub(crate) struct Hello {
    features: Vec<String>,
}

/// The reply of `rpc.hello`: the requested features enabled, in the order
/// asked.
#[derive(Serialize, Deserialize)]
pub(crate) struct Enabled {
    features: Vec<String>,
}

/// The payload of `rpc.cancel`.
#[derive(Deserialize)]
pub(crate) struct Cancel {
    id: u64,
}

/// The reply of `rpc.cancel`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Cancelled {
    cancelled: bool,
}

/// `rpc.hello` on a connection in the base framing: the reply, and whether
/// it switches the connection to the multiplexed framing.
pub(crate) fn hello(payload: &[u8]) -> (Reply, bool) {
    let hello: Hello = match decode_args(HELLO, payload) {
        Ok(hello) => hello,
        Err(reply) => return (reply, false),
    };
    let mut features: Vec<String> = Vec::new();
    for feature in hello.features {
        if feature == MULTIPLEX && !features.iter().any(|f| f == MULTIPLEX) {
            features.push(feature);
        }
    }
    let multiplex = !features.is_empty();
    (encode_ok(HELLO, &Enabled { features }), multiplex)
}

/// `rpc.hello` on a connection already multiplexed.
pub(crate) fn hello_again() -> Reply {
    Reply::error(format!("{HELLO}: the connection is already multiplexed"))
}

/// `rpc.cancel` on a connection in the base framing, where calls have no id.
pub(crate) fn cancel_unframed() -> Reply {
    Reply::error(format!(
        "{CANCEL}: the connection is not multiplexed (send rpc.hello first)"
    ))
}

/// The id `rpc.cancel`'s payload names, or the reply saying what is wrong.
pub(crate) fn cancel_id(payload: &[u8]) -> Result<u64, Reply> {
    decode_args::<Cancel>(CANCEL, payload).map(|cancel| cancel.id)
}

/// The reply of `rpc.cancel`.
pub(crate) fn cancelled(found: bool) -> Reply {
    encode_ok(CANCEL, &Cancelled { cancelled: found })
}

/// The reply of a call dropped by `rpc.cancel`.
pub(crate) fn call_cancelled(method: &str) -> Reply {
    Reply::error(format!("{method}: cancelled"))
}

/// The reply of a call still running at its deadline.
pub(crate) fn deadline_exceeded(method: &str) -> Reply {
    Reply::error(format!("{method}: deadline exceeded"))
}

/// The reply of a request whose id is already in flight.
pub(crate) fn duplicate_id(id: u32) -> Reply {
    Reply::error(format!("duplicate call id {id}"))
}

/// The reply of a request with id 0, which only event frames carry.
pub(crate) fn zero_id() -> Reply {
    Reply::error("call id 0 is reserved for event frames".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor;
    use std::collections::BTreeMap;

    #[test]
    fn hello_enables_only_multiplex_once_in_the_order_asked() {
        let payload = cbor::to_vec(&BTreeMap::from([(
            "features",
            vec!["zstd", "multiplex", "multiplex"],
        )]))
        .unwrap();
        let (reply, on) = hello(&payload);
        assert!(on);
        let enabled: Enabled = cbor::from_slice(&reply.body).unwrap();
        assert_eq!(enabled.features, ["multiplex"]);

        let payload = cbor::to_vec(&BTreeMap::from([("features", vec!["zstd"])])).unwrap();
        let (reply, on) = hello(&payload);
        assert!(!on);
        assert_eq!(reply.status, 0);
    }

    #[test]
    fn a_bad_hello_says_what_is_wrong_and_switches_nothing() {
        let (reply, on) = hello(&[0xa0]);
        assert!(!on);
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            "rpc.hello: invalid arguments: missing field `features`"
        );
    }
}
