//! The event extension of `PROTOCOL.md`, checked against the real
//! `serve_host` over real sockets with raw frames: `rpc.subscribe` and
//! `rpc.unsubscribe`, status 2 event frames before the reply of the request
//! that fired them, several subscribers, connections that never subscribe,
//! unknown names, pipelining, and a subscriber that never reads.

use tests::{cbor, decode, echo_args, frame, map, texts, Conn, ServerProcess, Value};

fn names(list: &[&str]) -> Value {
    map([("events", texts(list))])
}

fn subscribe(conn: &mut Conn, list: &[&str]) -> Result<Value, String> {
    conn.call("rpc.subscribe", &names(list))
}

fn unsubscribe(conn: &mut Conn, list: &[&str]) -> Result<Value, String> {
    conn.call("rpc.unsubscribe", &names(list))
}

fn envelope(name: &str, payload: Value) -> Value {
    map([("eventType", name.into()), ("payload", payload)])
}

fn echo_fired(message: &str) -> Value {
    envelope(
        "on_echo_fired",
        map([("message", message.into()), ("echoCount", 1.into())]),
    )
}

fn echo_reply(message: &str) -> Value {
    map([
        ("echoed", message.into()),
        ("timerName", "ipc-server".into()),
    ])
}

/// The next frame, which must be an event: its envelope's exact bytes.
fn next_event(conn: &mut Conn) -> Vec<u8> {
    let (status, body) = conn.recv();
    assert_eq!(
        status, 2,
        "expected an event, got status {status}: {body:?}"
    );
    body
}

/// The next frame, which must be a status 0 reply.
fn next_reply(conn: &mut Conn) -> Value {
    let (status, body) = conn.recv();
    assert_eq!(status, 0, "expected a reply, got status {status}: {body:?}");
    decode(&body)
}

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn subscribed_to_echo(conn: &mut Conn) {
    assert_eq!(
        subscribe(conn, &["on_echo_fired"]),
        Ok(map([("subscribed", texts(&["on_echo_fired"]))]))
    );
}

fn event_then_reply(conn: &mut Conn) {
    subscribed_to_echo(conn);
    conn.send(b"echo", &cbor(&echo_args("hello", 0)));
    // Byte for byte: a definite-length map, keys in this order.
    assert_eq!(next_event(conn), cbor(&echo_fired("hello")));
    assert_eq!(next_reply(conn), echo_reply("hello"));
    // A call that waits first: the event still precedes its reply.
    conn.send(b"echo", &cbor(&echo_args("later", 30)));
    assert_eq!(next_event(conn), cbor(&echo_fired("later")));
    assert_eq!(next_reply(conn), echo_reply("later"));
    // Methods that fire nothing answer as before.
    assert_eq!(
        conn.call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn a_subscriber_receives_the_event_before_the_reply() {
    let server = ServerProcess::tcp();
    event_then_reply(&mut server.connect());
}

#[cfg(unix)]
#[test]
fn a_subscriber_receives_the_event_before_the_reply_over_a_unix_socket() {
    let server = ServerProcess::unix();
    event_then_reply(&mut server.connect());
}

#[test]
fn every_event_and_job_scheduled() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let all = map([("subscribed", texts(&["on_echo_fired", "on_job_scheduled"]))]);
    // An empty list, and an absent one, mean every event.
    assert_eq!(subscribe(&mut conn, &[]), Ok(all.clone()));
    assert_eq!(conn.call("rpc.subscribe", &map([])), Ok(all.clone()));
    let schedule = |name: &str| {
        map([
            (
                "job",
                map([
                    ("name", name.into()),
                    ("payload", texts(&[])),
                    ("priority", 1.into()),
                ]),
            ),
            (
                "retry",
                map([
                    ("maxAttempts", 3.into()),
                    ("backoffMs", 250.into()),
                    ("retryOn", texts(&[])),
                ]),
            ),
            (
                "schedule",
                map([("startAtMs", 0.into()), ("intervalMs", 1000.into())]),
            ),
        ])
    };
    conn.send(b"schedule", &cbor(&schedule("nightly")));
    assert_eq!(
        next_event(&mut conn),
        cbor(&envelope(
            "on_job_scheduled",
            map([
                ("jobId", "ipc-server:nightly".into()),
                ("willRunCount", 60.into()),
            ]),
        ))
    );
    assert_eq!(
        field(&next_reply(&mut conn), "jobId"),
        Some(&"ipc-server:nightly".into())
    );
    // A refused job fires nothing: the error is the next frame.
    conn.send(b"schedule", &cbor(&schedule("")));
    assert_eq!(conn.recv(), (1, b"job name must not be empty".to_vec()));
    conn.send(b"echo", &cbor(&echo_args("x", 0)));
    assert_eq!(next_event(&mut conn), cbor(&echo_fired("x")));
    assert_eq!(next_reply(&mut conn), echo_reply("x"));
}

#[test]
fn two_subscribers_both_receive_and_other_connections_see_only_replies() {
    let server = ServerProcess::tcp();
    let (mut a, mut b, mut other) = (server.connect(), server.connect(), server.connect());
    subscribed_to_echo(&mut a);
    subscribed_to_echo(&mut b);
    // `Conn::call` fails on any frame but a reply: no status 2 here.
    for i in 0..20 {
        let message = format!("m{i}");
        assert_eq!(
            other.call("echo", &echo_args(&message, 0)),
            Ok(echo_reply(&message))
        );
    }
    for conn in [&mut a, &mut b] {
        for i in 0..20 {
            assert_eq!(next_event(conn), cbor(&echo_fired(&format!("m{i}"))));
        }
        // Nothing else was queued: the next frame is this call's reply.
        assert_eq!(
            conn.call("version", &map([])),
            Ok("nim-timer v0.1.0".into())
        );
    }
}

#[test]
fn unsubscribe_stops_delivery() {
    let server = ServerProcess::tcp();
    let (mut conn, mut other) = (server.connect(), server.connect());
    subscribed_to_echo(&mut conn);
    conn.send(b"echo", &cbor(&echo_args("before", 0)));
    assert_eq!(next_event(&mut conn), cbor(&echo_fired("before")));
    assert_eq!(next_reply(&mut conn), echo_reply("before"));
    assert_eq!(
        unsubscribe(&mut conn, &["on_echo_fired"]),
        Ok(map([("unsubscribed", texts(&["on_echo_fired"]))]))
    );
    // Neither its own calls nor another connection's reach it any more.
    assert_eq!(
        conn.call("echo", &echo_args("after", 0)),
        Ok(echo_reply("after"))
    );
    assert_eq!(
        other.call("echo", &echo_args("elsewhere", 0)),
        Ok(echo_reply("elsewhere"))
    );
    assert_eq!(
        conn.call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
    // An empty list unsubscribes from (and names) every event.
    subscribe(&mut conn, &[]).unwrap();
    assert_eq!(
        unsubscribe(&mut conn, &[]),
        Ok(map([(
            "unsubscribed",
            texts(&["on_echo_fired", "on_job_scheduled"])
        )]))
    );
    assert!(subscribe(&mut conn, &["on_job_scheduled"]).is_ok());
    assert_eq!(
        conn.call("echo", &echo_args("unwanted", 0)),
        Ok(echo_reply("unwanted"))
    );
}

#[test]
fn unknown_event_names_and_bad_payloads_change_nothing() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    assert_eq!(
        subscribe(&mut conn, &["on_echo_fired", "no_such_event"]),
        Err("rpc.subscribe: unknown event: no_such_event".into())
    );
    // Not even the known name was subscribed.
    assert_eq!(conn.call("echo", &echo_args("a", 0)), Ok(echo_reply("a")));
    assert_eq!(
        unsubscribe(&mut conn, &["On_Echo_Fired"]),
        Err("rpc.unsubscribe: unknown event: On_Echo_Fired".into())
    );
    assert_eq!(
        conn.call("rpc.subscribe", &map([("events", "on_echo_fired".into())])),
        Err(
            "rpc.subscribe: invalid arguments: events: invalid type: text, expected an array"
                .into()
        )
    );
    assert_eq!(
        conn.call(
            "rpc.subscribe",
            &map([("events", Value::Array(vec![7.into()]))])
        ),
        Err(
            "rpc.subscribe: invalid arguments: events[0]: invalid type: integer, expected text"
                .into()
        )
    );
    let (status, body) = conn.call_raw(b"rpc.unsubscribe", b"\xff");
    assert_eq!(status, 1);
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("rpc.unsubscribe: invalid arguments: "),);
    // Other `rpc.` names are unknown methods, as any other name.
    assert_eq!(
        conn.call("rpc.publish", &map([])),
        Err("unknown method: rpc.publish".into())
    );
    // After all that, the connection is still unsubscribed and usable.
    assert_eq!(conn.call("echo", &echo_args("b", 0)), Ok(echo_reply("b")));
    subscribed_to_echo(&mut conn);
}

#[test]
fn pipelined_calls_on_a_subscribed_connection_get_their_replies_in_order() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    subscribed_to_echo(&mut conn);
    const N: usize = 40;
    let mut batch = Vec::new();
    for i in 0..N {
        // Later requests finish first.
        let delay = ((N - i) % 8) as i64 * 5;
        batch.extend(frame(b"echo", &cbor(&echo_args(&format!("p{i}"), delay))));
    }
    conn.send_raw(&batch);
    let mut seen = [false; N];
    let mut replies = 0;
    while replies < N {
        match conn.recv() {
            (2, body) => {
                let envelope = decode(&body);
                let payload = field(&envelope, "payload").unwrap();
                let message = field(payload, "message").unwrap().as_text().unwrap();
                let i: usize = message[1..].parse().unwrap();
                assert!(!seen[i], "event {i} twice");
                seen[i] = true;
            }
            (0, body) => {
                let message = format!("p{replies}");
                assert_eq!(decode(&body), echo_reply(&message), "replies in order");
                assert!(
                    seen[replies],
                    "the event of {message} comes before its reply"
                );
                replies += 1;
            }
            (status, body) => panic!("unexpected status {status}: {body:?}"),
        }
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn a_subscriber_that_never_reads_slows_no_one_and_learns_what_it_missed() {
    // A small backlog and queue: the server gives up on the sleeper sooner.
    let server = ServerProcess::tcp_with_env(&[
        ("RPC_MAX_WRITE_BACKLOG", "65536"),
        ("RPC_MAX_EVENT_QUEUE", "8"),
    ]);
    let mut sleeper = server.connect();
    subscribed_to_echo(&mut sleeper);
    // Far more event bytes than the socket buffers, the backlog and the
    // queue of the sleeper hold.
    const CALLS: usize = 2048;
    const BATCH: usize = 64;
    let message = "x".repeat(16 * 1024);
    let request = frame(b"echo", &cbor(&echo_args(&message, 0)));
    let mut caller = server.connect();
    for _ in 0..CALLS / BATCH {
        caller.send_raw(&request.repeat(BATCH));
        for _ in 0..BATCH {
            assert_eq!(next_reply(&mut caller), echo_reply(&message));
        }
    }
    // Every call of the other connection was answered while the sleeper
    // read nothing. Now it wakes, calls twice, and reads up to the replies:
    // the second call's event comes after any drop its first call saw.
    let (mut delivered, mut dropped) = (0u64, 0u64);
    for last in ["last", "very last"] {
        sleeper.send(b"echo", &cbor(&echo_args(last, 0)));
        loop {
            match sleeper.recv() {
                (2, body) => {
                    let envelope = decode(&body);
                    delivered += 1;
                    if let Some(n) = field(&envelope, "dropped") {
                        let n: u64 = n.as_integer().unwrap().try_into().unwrap();
                        assert!(n > 0, "dropped is present only when not 0");
                        dropped += n;
                    }
                }
                (0, body) => {
                    assert_eq!(decode(&body), echo_reply(last));
                    break;
                }
                (status, body) => panic!("unexpected status {status}: {body:?}"),
            }
        }
    }
    eprintln!("sleeper: {delivered} delivered, {dropped} dropped");
    assert!(dropped > 0, "the sleeper's queue never overflowed");
    assert_eq!(
        delivered + dropped,
        CALLS as u64 + 2,
        "every event is delivered or counted: {delivered} delivered, {dropped} dropped"
    );
}
