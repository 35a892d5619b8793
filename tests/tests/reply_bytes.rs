//! The timer's reply and event types encode to exactly the bytes ciborium
//! (the encoder of earlier releases) writes, so the wire does not change.

use my_timer::{ComplexReply, EchoFired, EchoReply, JobScheduled, ScheduleReply};
use proptest::prelude::*;
use rpc_core::wire::cbor;
use serde::Serialize;

fn ciborium_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("ciborium encodes");
    out
}

proptest! {
    #[test]
    fn timer_replies_encode_as_ciborium_does(
        text in ".{0,40}",
        other in ".{0,40}",
        a in any::<i64>(),
        b in any::<i64>(),
        c in any::<i64>(),
        flag in any::<bool>(),
    ) {
        let echo = EchoReply { echoed: text.clone(), timer_name: other.clone() };
        prop_assert_eq!(cbor::to_vec(&echo).unwrap(), ciborium_bytes(&echo));
        let complex = ComplexReply { summary: text.clone(), item_count: a, has_note: flag };
        prop_assert_eq!(cbor::to_vec(&complex).unwrap(), ciborium_bytes(&complex));
        let schedule = ScheduleReply {
            job_id: other.clone(),
            will_run_count: a,
            first_run_at_ms: b,
            effective_backoff_ms: c,
        };
        prop_assert_eq!(cbor::to_vec(&schedule).unwrap(), ciborium_bytes(&schedule));
        let fired = EchoFired { message: text, echo_count: b };
        prop_assert_eq!(cbor::to_vec(&fired).unwrap(), ciborium_bytes(&fired));
        let scheduled = JobScheduled { job_id: other, will_run_count: c };
        prop_assert_eq!(cbor::to_vec(&scheduled).unwrap(), ciborium_bytes(&scheduled));
        // `()` (the reply of a function returning nothing) and strings.
        prop_assert_eq!(cbor::to_vec(&()).unwrap(), ciborium_bytes(&()));
        prop_assert_eq!(cbor::to_vec("nim-timer v0.1.0").unwrap(), ciborium_bytes(&"nim-timer v0.1.0"));
    }
}
