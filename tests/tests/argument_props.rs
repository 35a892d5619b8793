//! Properties of argument decoding for the timer's methods: any bytes, and
//! any CBOR shaped almost like the real arguments, decode or fail cleanly
//! (never a panic), and a call with them answers a well-formed reply; the
//! argument types round-trip through CBOR.

use my_timer::{ComplexRequest, EchoRequest, JobSpec, RetryPolicy, ScheduleConfig};
use proptest::prelude::*;
use rpc_core::wire::cbor;
use tests::fuzz::call_method;
use tests::Value;

const METHODS: [&str; 4] = ["version", "echo", "complex", "schedule"];

/// The parameter and field names of the timer's methods.
const FIELDS: [&str; 19] = [
    "req",
    "message",
    "delayMs",
    "messages",
    "tags",
    "note",
    "retries",
    "job",
    "name",
    "payload",
    "priority",
    "retry",
    "maxAttempts",
    "backoffMs",
    "retryOn",
    "schedule",
    "startAtMs",
    "intervalMs",
    "jitter",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::Float),
        ".{0,6}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Value::Bytes),
        prop::sample::select(&FIELDS[..]).prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(&FIELDS[..]).prop_map(Value::from),
        1 => leaf(),
    ]
}

/// CBOR trees whose map keys are mostly the real field names.
fn values() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner.clone()), 0..6).prop_map(Value::Map),
            (any::<u64>(), inner).prop_map(|(tag, v)| Value::Tag(tag, Box::new(v))),
        ]
    })
}

fn request(method: &str, payload: &[u8]) -> Vec<u8> {
    let mut data = vec![u8::try_from(method.len()).expect("a short name")];
    data.extend_from_slice(method.as_bytes());
    data.extend_from_slice(payload);
    data
}

/// Decodes into every argument type; only a panic fails.
fn decode_all(bytes: &[u8]) {
    let _ = cbor::from_slice::<EchoRequest>(bytes);
    let _ = cbor::from_slice::<ComplexRequest>(bytes);
    let _ = cbor::from_slice::<JobSpec>(bytes);
    let _ = cbor::from_slice::<RetryPolicy>(bytes);
    let _ = cbor::from_slice::<ScheduleConfig>(bytes);
}

fn echo_requests() -> impl Strategy<Value = EchoRequest> {
    (".{0,12}", any::<i64>()).prop_map(|(message, delay_ms)| EchoRequest { message, delay_ms })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&bytes);
        for method in METHODS {
            call_method(&request(method, &bytes));
        }
    }

    #[test]
    fn near_miss_arguments_decode_or_fail_cleanly(value in values()) {
        let bytes = tests::cbor(&value);
        decode_all(&bytes);
        for method in METHODS {
            call_method(&request(method, &bytes));
        }
        // Wrapped the way the methods take them, too.
        for param in ["req", "job", "retry", "schedule"] {
            let wrapped = tests::cbor(&Value::Map(vec![(param.into(), value.clone())]));
            call_method(&request("echo", &wrapped));
            call_method(&request("complex", &wrapped));
            call_method(&request("schedule", &wrapped));
        }
    }

    #[test]
    fn argument_types_round_trip(
        echo in echo_requests(),
        messages in prop::collection::vec(echo_requests(), 0..4),
        tags in prop::collection::vec(".{0,6}", 0..4),
        note in prop::option::of(".{0,6}"),
        retries in prop::option::of(any::<i64>()),
        schedule in (any::<i64>(), any::<i64>(), prop::option::of(any::<i64>())),
    ) {
        let bytes = cbor::to_vec(&echo).expect("encodes");
        prop_assert_eq!(cbor::from_slice::<EchoRequest>(&bytes).expect("decodes"), echo);
        let complex = ComplexRequest { messages, tags, note, retries };
        let bytes = cbor::to_vec(&complex).expect("encodes");
        prop_assert_eq!(cbor::from_slice::<ComplexRequest>(&bytes).expect("decodes"), complex);
        let (start_at_ms, interval_ms, jitter) = schedule;
        let schedule = ScheduleConfig { start_at_ms, interval_ms, jitter };
        let bytes = cbor::to_vec(&schedule).expect("encodes");
        prop_assert_eq!(cbor::from_slice::<ScheduleConfig>(&bytes).expect("decodes"), schedule);
    }
}
