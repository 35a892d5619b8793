//! The multiplexing extension against `serve_host`, with raw frames:
//! `rpc.hello`, replies matched by id as calls finish, deadlines,
//! `rpc.cancel`, duplicate ids, events with id 0, `rpc.hello` twice and
//! while base requests are in flight. The base protocol is untouched for
//! connections that never send `rpc.hello` (the contract suite).

use tests::{decode, echo_args, map, texts, Conn, ServerProcess, Value};

fn hello(conn: &mut Conn) {
    assert_eq!(
        conn.call("rpc.hello", &map([("features", texts(&["multiplex"]))])),
        Ok(map([("features", texts(&["multiplex"]))]))
    );
}

fn echo_reply(message: &str) -> Value {
    map([
        ("echoed", message.into()),
        ("timerName", "ipc-server".into()),
    ])
}

fn text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap()
}

#[test]
fn replies_come_as_calls_finish_matched_by_id() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    hello(&mut conn);
    conn.send_mux(1, 0, "echo", &echo_args("slow", 400));
    conn.send_mux(2, 0, "version", &map([]));
    conn.send_mux(3, 0, "echo", &echo_args("fast", 0));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status), (2, 0));
    assert_eq!(decode(&body), "nim-timer v0.1.0".into());
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (3, 0, echo_reply("fast")));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (1, 0, echo_reply("slow")));
    // Errors keep their base texts, under their id.
    conn.send_mux(4, 0, "nope", &map([]));
    let (id, status, body) = conn.recv_mux();
    assert_eq!(
        (id, status, text(body)),
        (4, 1, "unknown method: nope".into())
    );
}

#[test]
fn a_call_past_its_deadline_is_dropped_and_answered() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    hello(&mut conn);
    conn.send_mux(7, 50, "echo", &echo_args("late", 60_000));
    let (id, status, body) = conn.recv_mux();
    assert_eq!(
        (id, status, text(body)),
        (7, 1, "echo: deadline exceeded".into())
    );
    // A deadline the call meets changes nothing.
    conn.send_mux(8, 60_000, "echo", &echo_args("on time", 0));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (8, 0, echo_reply("on time")));
}

#[test]
fn cancel_drops_a_call_and_says_whether_it_found_one() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    hello(&mut conn);
    conn.send_mux(5, 0, "echo", &echo_args("forever", 60_000));
    conn.send_mux(6, 0, "rpc.cancel", &map([("id", 5.into())]));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, text(body)), (5, 1, "echo: cancelled".into()));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status), (6, 0));
    assert_eq!(decode(&body), map([("cancelled", true.into())]));

    conn.send_mux(9, 0, "rpc.cancel", &map([("id", 5.into())]));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status), (9, 0));
    assert_eq!(decode(&body), map([("cancelled", false.into())]));

    conn.send_mux(10, 0, "rpc.cancel", &map([]));
    let (id, status, body) = conn.recv_mux();
    assert_eq!(
        (id, status, text(body)),
        (
            10,
            1,
            "rpc.cancel: invalid arguments: missing field `id`".into()
        )
    );
}

#[test]
fn a_duplicate_id_is_refused_and_the_running_call_goes_on() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    hello(&mut conn);
    conn.send_mux(3, 0, "echo", &echo_args("first", 300));
    conn.send_mux(3, 0, "echo", &echo_args("second", 0));
    let (id, status, body) = conn.recv_mux();
    assert_eq!(
        (id, status, text(body)),
        (3, 1, "duplicate call id 3".into())
    );
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (3, 0, echo_reply("first")));
    // Once answered, the id may be used again.
    conn.send_mux(3, 0, "echo", &echo_args("again", 0));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (3, 0, echo_reply("again")));
}

#[test]
fn events_have_id_zero_and_precede_the_reply_of_their_call() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    hello(&mut conn);
    conn.send_mux(
        1,
        0,
        "rpc.subscribe",
        &map([("events", texts(&["on_echo_fired"]))]),
    );
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status), (1, 0));
    assert_eq!(
        decode(&body),
        map([("subscribed", texts(&["on_echo_fired"]))])
    );
    conn.send_mux(2, 0, "echo", &echo_args("hi", 0));
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status), (0, 2), "the event first");
    let envelope = decode(&body);
    assert_eq!(
        envelope.as_map().unwrap()[0],
        ("eventType".into(), "on_echo_fired".into())
    );
    let (id, status, body) = conn.recv_mux();
    assert_eq!((id, status, decode(&body)), (2, 0, echo_reply("hi")));
}

#[test]
fn hello_twice_is_refused_and_hello_waits_for_the_base_replies_owed() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    // A base request in flight when rpc.hello arrives is answered first,
    // in the base framing, then rpc.hello's own reply.
    conn.send(b"echo", &tests::cbor(&echo_args("before", 300)));
    conn.send(
        b"rpc.hello",
        &tests::cbor(&map([("features", texts(&["zstd", "multiplex"]))])),
    );
    let (status, body) = conn.recv();
    assert_eq!((status, decode(&body)), (0, echo_reply("before")));
    let (status, body) = conn.recv();
    assert_eq!(
        (status, decode(&body)),
        (0, map([("features", texts(&["multiplex"]))]))
    );

    conn.send_mux(
        1,
        0,
        "rpc.hello",
        &map([("features", texts(&["multiplex"]))]),
    );
    let (id, status, body) = conn.recv_mux();
    assert_eq!(
        (id, status, text(body)),
        (
            1,
            1,
            "rpc.hello: the connection is already multiplexed".into()
        )
    );
}

#[test]
fn without_multiplex_the_connection_stays_on_the_base_protocol() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    assert_eq!(
        conn.call("rpc.hello", &map([("features", texts(&["zstd"]))])),
        Ok(map([("features", texts(&[]))]))
    );
    assert_eq!(
        conn.call("rpc.cancel", &map([("id", 1.into())])),
        Err("rpc.cancel: the connection is not multiplexed (send rpc.hello first)".into())
    );
    assert_eq!(
        conn.call("echo", &echo_args("base", 0)),
        Ok(echo_reply("base"))
    );
}

#[test]
fn describe_lists_hello_and_cancel() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let described = conn.call("rpc.describe", &map([])).unwrap();
    let methods = &described.as_map().unwrap()[0].1;
    let names: Vec<String> = methods
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_map().unwrap()[0].1.as_text().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == "rpc.hello"), "{names:?}");
    assert!(names.iter().any(|n| n == "rpc.cancel"), "{names:?}");
}

/// The session PROTOCOL.md shows byte for byte ("A multiplexed session").
#[test]
fn the_session_of_protocol_md_byte_for_byte() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let hello_cbor = b"\xa1\x68features\x81\x69multiplex";
    conn.send(b"rpc.hello", hello_cbor);
    assert_eq!(conn.recv(), (0, hello_cbor.to_vec()));
    let mut sent = Vec::new();
    sent.extend_from_slice(b"\0\0\0\x01\0\0\0\0\0\0\0\x04echo\0\0\0\x1e");
    sent.extend_from_slice(b"\xa1\x63req\xa2\x67message\x64slow\x67delayMs\x19\x03\xe8");
    sent.extend_from_slice(b"\0\0\0\x02\0\0\0\0\0\0\0\x07version\0\0\0\x01\xa0");
    conn.send_raw(&sent);
    assert_eq!(conn.recv_mux(), (2, 0, b"\x70nim-timer v0.1.0".to_vec()));
    assert_eq!(
        conn.recv_mux(),
        (
            1,
            0,
            b"\xa2\x66echoed\x64slow\x69timerName\x6aipc-server".to_vec()
        )
    );
}

/// The typed `Client` negotiates multiplexing: a slow call no longer holds
/// up a fast one on the same shared connection; `Protocol::Base` keeps the
/// base protocol, where it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_multiplexes_unless_told_not_to() {
    use my_timer::{EchoRemote, VersionRemote};
    use rpc_core::client::Protocol;
    use rpc_core::Client;

    let server = ServerProcess::tcp();
    let address: rpc_core::Address = server.address.parse().unwrap();
    let client = Client::connect_to(&address).await.unwrap();
    assert!(client.multiplexed().await);
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .echo(my_timer::EchoRequest {
                    message: "slow".into(),
                    delay_ms: 60_000,
                })
                .await
        }
    });
    // Answered while the slow echo still runs.
    assert_eq!(client.version().await.unwrap(), "nim-timer v0.1.0");
    assert!(!slow.is_finished());
    slow.abort();

    let base = Client::connect_with_protocol(&address, Protocol::Base)
        .await
        .unwrap();
    assert!(!base.multiplexed().await);
    assert_eq!(base.version().await.unwrap(), "nim-timer v0.1.0");
}
