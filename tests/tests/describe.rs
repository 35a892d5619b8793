//! `rpc.describe` over the wire, `serve_host --describe`, and the generated
//! CDDL checked with a CDDL validator against the timer's real traffic: every
//! payload the contract calls valid matches `NAME-args` and its real reply
//! matches `NAME-reply`; every payload the contract calls wrong (a missing
//! field, a wrong type) is refused by the CDDL and by the server alike.

use rpc_core::builtins::describe::{Description, MethodInfo};
use rpc_core::events::EventTable;
use rpc_core::registry::Registry;
use tests::{binary, cbor, echo_args, map, run, texts, ServerProcess, Value};

/// The description served over the wire, decoded.
fn described(server: &ServerProcess) -> Description {
    let mut conn = server.connect();
    let (status, body) = conn.call_raw(b"rpc.describe", &cbor(&map([])));
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&body));
    rpc_core::wire::cbor::from_slice(&body).expect("the reply decodes as a Description")
}

#[test]
fn rpc_describe_lists_every_method_with_its_params() {
    let server = ServerProcess::tcp();
    let description = described(&server);
    let method = |name: &str, params: &[&str]| MethodInfo {
        name: name.into(),
        params: params.iter().map(|p| (*p).into()).collect(),
    };
    assert_eq!(
        description.methods,
        [
            method("complex", &["req"]),
            method("echo", &["req"]),
            // Answered by the connection itself, listed all the same.
            method("rpc.cancel", &["id"]),
            method("rpc.describe", &[]),
            method("rpc.hello", &["features"]),
            method("rpc.subscribe", &["events"]),
            method("rpc.unsubscribe", &["events"]),
            method("schedule", &["job", "retry", "schedule"]),
            method("version", &[]),
        ]
    );
    assert_eq!(description.events, ["on_echo_fired", "on_job_scheduled"]);
    // The test links the same library as serve_host: the same methods,
    // events and document come out of this process's registry.
    let _ = my_timer::VERSION;
    let local = rpc_core::builtins::describe::describe(
        Registry::global().unwrap(),
        EventTable::global().unwrap(),
    );
    assert_eq!(description, local);
    // Any map is accepted as the payload, like every method's.
    let mut conn = server.connect();
    let (status, _) = conn.call_raw(b"rpc.describe", &cbor(&map([("x", 1.into())])));
    assert_eq!(status, 0);
    let (status, body) = conn.call_raw(b"rpc.describe", &cbor(&Value::Array(vec![])));
    assert_eq!(status, 1);
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("rpc.describe: invalid arguments"));
}

#[test]
fn serve_host_describe_prints_the_same_description_as_json() {
    let (status, stdout, stderr) = run(&binary("serve_host"), &["--describe"]);
    assert!(status.success(), "{stderr}");
    let printed: Description = serde_json::from_str(&stdout).expect("JSON");
    let server = ServerProcess::tcp();
    assert_eq!(printed, described(&server));
    assert!(printed.cddl.contains("\necho-args = {"), "{}", printed.cddl);
}

/// Whether `value` matches `rule` of `doc`, with the validator's reason.
fn validate(doc: &str, rule: &str, value: &[u8]) -> Result<(), String> {
    let with_root = format!("root = {rule}\n{doc}");
    cddl::validate_cbor_from_slice(&with_root, value, None).map_err(|e| e.to_string())
}

fn schedule_args(name: &str, max_attempts: i64, jitter: Option<Value>) -> Value {
    let mut schedule = vec![
        (
            Value::Text("startAtMs".into()),
            1_700_000_000_000_i64.into(),
        ),
        (Value::Text("intervalMs".into()), 7000.into()),
    ];
    if let Some(jitter) = jitter {
        schedule.push((Value::Text("jitter".into()), jitter));
    }
    map([
        (
            "job",
            map([
                ("name", name.into()),
                ("payload", texts(&["a", "b"])),
                ("priority", 3.into()),
            ]),
        ),
        (
            "retry",
            map([
                ("maxAttempts", max_attempts.into()),
                ("backoffMs", 250.into()),
                ("retryOn", texts(&["timeout"])),
            ]),
        ),
        ("schedule", Value::Map(schedule)),
    ])
}

fn complex_args(extra: Vec<(&str, Value)>) -> Value {
    let mut req = vec![
        (
            Value::Text("messages".into()),
            Value::Array(vec![
                map([("message", "a".into()), ("delayMs", 0.into())]),
                map([("message", "b".into()), ("delayMs", (-4).into())]),
            ]),
        ),
        (Value::Text("tags".into()), texts(&["x", "y"])),
    ];
    req.extend(extra.into_iter().map(|(k, v)| (Value::Text(k.into()), v)));
    map([("req", Value::Map(req))])
}

/// Removes `key` from the map at `path` inside `value`.
fn without(mut value: Value, path: &[&str], key: &str) -> Value {
    let mut at = &mut value;
    for step in path {
        let Value::Map(entries) = at else {
            panic!("not a map")
        };
        at = entries
            .iter_mut()
            .find(|(k, _)| k.as_text() == Some(*step))
            .map(|(_, v)| v)
            .expect("the path exists");
    }
    let Value::Map(entries) = at else {
        panic!("not a map")
    };
    entries.retain(|(k, _)| k.as_text() != Some(key));
    value
}

#[test]
fn the_cddl_parses_and_the_timers_traffic_validates_against_it() {
    let server = ServerProcess::tcp();
    let doc = described(&server).cddl;
    cddl::parser::cddl_from_str(&doc, false).expect("the document parses");

    // The contract's valid payloads: each matches NAME-args, the server
    // answers status 0, and the reply matches NAME-reply.
    let valid: Vec<(&str, Value)> = vec![
        ("version", map([])),
        ("version", map([("ignored", texts(&["extra"]))])),
        ("echo", echo_args("hello over the wire", 5)),
        ("echo", echo_args("", -5)),
        (
            "echo",
            map([
                (
                    "req",
                    map([
                        ("message", "m".into()),
                        ("delayMs", 0.into()),
                        ("x", 1.into()),
                    ]),
                ),
                ("other", Value::Null),
            ]),
        ),
        ("complex", complex_args(vec![])),
        (
            "complex",
            complex_args(vec![("note", "hi".into()), ("retries", 3.into())]),
        ),
        (
            "complex",
            complex_args(vec![("note", Value::Null), ("retries", Value::Null)]),
        ),
        ("complex", complex_args(vec![("note", "".into())])),
        ("schedule", schedule_args("nightly", 3, Some(7.into()))),
        ("schedule", schedule_args("nightly", 1, None)),
        ("schedule", schedule_args("nightly", 1, Some(Value::Null))),
        ("rpc.describe", map([])),
    ];
    let mut conn = server.connect();
    for (method, payload) in &valid {
        let payload = cbor(payload);
        validate(&doc, &format!("{method}-args"), &payload)
            .unwrap_or_else(|e| panic!("{method}: a valid payload does not validate: {e}"));
        let (status, body) = conn.call_raw(method.as_bytes(), &payload);
        assert_eq!(status, 0, "{method}: {}", String::from_utf8_lossy(&body));
        validate(&doc, &format!("{method}-reply"), &body)
            .unwrap_or_else(|e| panic!("{method}: the real reply does not validate: {e}"));
    }

    // Well-formed payloads the function itself refuses: the schema accepts
    // them, the status 1 text is the contract's.
    for (payload, text) in [
        (schedule_args("", 3, None), "job name must not be empty"),
        (
            schedule_args("j", 0, None),
            "retry.maxAttempts must be positive",
        ),
    ] {
        let payload = cbor(&payload);
        validate(&doc, "schedule-args", &payload).expect("well-formed");
        assert_eq!(
            conn.call("schedule", &tests::decode(&payload)),
            Err(text.into())
        );
    }

    // The contract's wrong payloads: a missing field or a wrong type is
    // refused by the CDDL and, with status 1, by the server.
    let echo_req = |entries: Vec<(&str, Value)>| {
        map([(
            "req",
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Value::Text(k.into()), v))
                    .collect(),
            ),
        )])
    };
    let invalid: Vec<(&str, Value)> = vec![
        ("echo", map([])),
        ("echo", echo_req(vec![("message", "m".into())])),
        (
            "echo",
            echo_req(vec![("message", "m".into()), ("delayMs", "5".into())]),
        ),
        (
            "echo",
            echo_req(vec![("message", 5.into()), ("delayMs", 5.into())]),
        ),
        ("echo", map([("req", Value::Array(vec![]))])),
        ("complex", without(complex_args(vec![]), &["req"], "tags")),
        ("complex", complex_args(vec![("note", 5.into())])),
        ("complex", complex_args(vec![("retries", "3".into())])),
        (
            "complex",
            map([(
                "req",
                map([
                    (
                        "messages",
                        Value::Array(vec![map([("message", "a".into())])]),
                    ),
                    ("tags", texts(&[])),
                ]),
            )]),
        ),
        (
            "complex",
            map([(
                "req",
                map([
                    ("messages", Value::Array(vec![])),
                    ("tags", Value::Array(vec![1.into()])),
                ]),
            )]),
        ),
        (
            "schedule",
            without(schedule_args("j", 1, None), &[], "retry"),
        ),
        (
            "schedule",
            without(schedule_args("j", 1, None), &["job"], "priority"),
        ),
        ("schedule", schedule_args("j", 1, Some("7".into()))),
        (
            "schedule",
            without(schedule_args("j", 1, None), &["retry"], "maxAttempts"),
        ),
    ];
    for (method, payload) in &invalid {
        let payload = cbor(payload);
        assert!(
            validate(&doc, &format!("{method}-args"), &payload).is_err(),
            "{method}: a wrong payload validates: {:?}",
            tests::decode(&payload)
        );
        let (status, body) = conn.call_raw(method.as_bytes(), &payload);
        assert_eq!(status, 1, "{method}: the server accepted a wrong payload");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with(&format!("{method}: invalid arguments")),
            "{text}"
        );
    }

    // The events extension: subscription payloads and replies, and the
    // payloads of real event frames.
    let mut subscriber = server.connect();
    for (method, payload) in [
        (
            "rpc.subscribe",
            map([("events", texts(&["on_echo_fired"]))]),
        ),
        ("rpc.subscribe", map([])),
        (
            "rpc.unsubscribe",
            map([("events", texts(&["on_job_scheduled"]))]),
        ),
        ("rpc.subscribe", map([("events", Value::Null)])),
    ] {
        let payload = cbor(&payload);
        validate(&doc, &format!("{method}-args"), &payload).expect("a valid subscription");
        let (status, body) = subscriber.call_raw(method.as_bytes(), &payload);
        assert_eq!(status, 0, "{method}: {}", String::from_utf8_lossy(&body));
        validate(&doc, &format!("{method}-reply"), &body)
            .unwrap_or_else(|e| panic!("{method}: the real reply does not validate: {e}"));
    }
    let wrong = cbor(&map([("events", "on_echo_fired".into())]));
    assert!(validate(&doc, "rpc.subscribe-args", &wrong).is_err());
    let (status, _) = subscriber.call_raw(b"rpc.subscribe", &wrong);
    assert_eq!(status, 1);
    for (method, payload, event) in [
        ("echo", echo_args("e", 0), "on_echo_fired"),
        ("schedule", schedule_args("j", 1, None), "on_job_scheduled"),
    ] {
        subscriber.send(method.as_bytes(), &cbor(&payload));
        // The event comes before the reply of the call that fired it.
        let (status, body) = subscriber.recv();
        assert_eq!(status, 2, "{method}: {}", String::from_utf8_lossy(&body));
        let envelope = tests::decode(&body);
        let field = |key: &str| {
            envelope
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some(key)))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("eventType"), Some(event.into()));
        let payload = field("payload").expect("a payload");
        validate(&doc, &format!("{event}-payload"), &cbor(&payload))
            .unwrap_or_else(|e| panic!("{event}: the real payload does not validate: {e}"));
        let other = if event == "on_echo_fired" {
            "on_job_scheduled"
        } else {
            "on_echo_fired"
        };
        assert!(validate(&doc, &format!("{other}-payload"), &cbor(&payload)).is_err());
        assert_eq!(subscriber.recv().0, 0, "{method}: its reply");
    }

    // And a reply of the wrong shape does not match the reply rules.
    assert!(validate(&doc, "echo-reply", &cbor(&map([("echoed", "x".into())]))).is_err());
    assert!(validate(&doc, "version-reply", &cbor(&5.into())).is_err());
}
