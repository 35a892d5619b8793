//! Every rule of `contract.md`, checked against the real `serve_host` over
//! real sockets: the reference exchange, each method's arithmetic and error
//! texts, bad payloads, pipelining, concurrency, framing limits, unix sockets
//! and graceful shutdown. `contract_tls.rs` runs this file again with every
//! `ServerProcess::tcp()` server and its connections over TLS.

use std::time::{Duration, Instant};

use tests::{cbor, decode, echo_args, frame, map, texts, Conn, ServerProcess, Value};

fn echo_request(message: &str, delay: i64) -> Value {
    map([("message", message.into()), ("delayMs", delay.into())])
}

fn schedule_args(name: &str, max_attempts: i64, interval: i64, jitter: Option<Value>) -> Value {
    let mut schedule = vec![
        (Value::from("startAtMs"), Value::from(1_000_000)),
        (Value::from("intervalMs"), Value::from(interval)),
    ];
    if let Some(jitter) = jitter {
        schedule.push(("jitter".into(), jitter));
    }
    map([
        (
            "job",
            map([
                ("name", name.into()),
                ("payload", texts(&["a"])),
                ("priority", 3.into()),
            ]),
        ),
        (
            "retry",
            map([
                ("maxAttempts", max_attempts.into()),
                ("backoffMs", 250.into()),
                ("retryOn", texts(&["io"])),
            ]),
        ),
        ("schedule", Value::Map(schedule)),
    ])
}

#[test]
fn the_reference_client_over_tcp() {
    // Plain TCP even in contract_tls: the reference client speaks no TLS.
    let server = ServerProcess::start("tcp:127.0.0.1:0");
    let (status, stdout, stderr) = tests::run(&tests::binary("client"), &[&server.address]);
    assert!(status.success(), "client failed: {stderr}");
    assert_eq!(
        stdout,
        "[client] version = nim-timer v0.1.0\n[client] echo.echoed= hello over the wire\n[client] echo.timer = ipc-server\n"
    );
}

#[cfg(unix)]
#[test]
fn the_reference_client_over_a_unix_socket() {
    let server = ServerProcess::unix();
    assert!(server.address.starts_with("unix:"));
    let (status, stdout, stderr) = tests::run(&tests::binary("client"), &[&server.address]);
    assert!(status.success(), "client failed: {stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

#[test]
fn serve_host_usage_and_bad_addresses() {
    let host = tests::binary("serve_host");
    let (status, _, stderr) = tests::run(&host, &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Usage"), "{stderr}");
    let (status, _, stderr) = tests::run(&host, &["tcp:nohost"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(
        stderr.trim(),
        r#"my_timer_serve: invalid address "tcp:nohost": expected tcp:HOST:PORT"#
    );
}

#[test]
fn version_accepts_any_map() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let expected = Value::from("nim-timer v0.1.0");
    assert_eq!(conn.call_raw(b"version", &[0xa0]), (0, cbor(&expected)));
    assert_eq!(
        conn.call("version", &map([("anything", 1.into())])),
        Ok(expected.clone())
    );
    // An indefinite-length map.
    assert_eq!(
        conn.call_raw(b"version", &[0xbf, 0x61, b'k', 0x01, 0xff]).0,
        0
    );
    let (status, text) = conn.call_raw(b"version", &[0x01]);
    assert_eq!(status, 1);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "version: invalid arguments: invalid type: integer, expected a map"
    );
    assert_eq!(conn.call("version", &map([])), Ok(expected));
}

#[test]
fn echo_echoes_with_the_context_name() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let reply = conn.call_raw(b"echo", &cbor(&echo_args("hi there", 0)));
    let expected = map([
        ("echoed", "hi there".into()),
        ("timerName", "ipc-server".into()),
    ]);
    assert_eq!(
        reply,
        (0, cbor(&expected)),
        "definite map, declared key order"
    );
    assert_eq!(
        conn.call("echo", &echo_args("", -100)),
        Ok(map([
            ("echoed", "".into()),
            ("timerName", "ipc-server".into())
        ]))
    );
    // Unknown keys are ignored at every level, keys in any order.
    let args = map([
        ("extra", Value::Array(vec![1.into()])),
        (
            "req",
            map([
                ("delayMs", 1.into()),
                ("zzz", Value::Null),
                ("message", "m".into()),
            ]),
        ),
    ]);
    assert_eq!(
        conn.call("echo", &args).unwrap(),
        map([("echoed", "m".into()), ("timerName", "ipc-server".into())])
    );
}

#[test]
fn bad_payloads_are_status_1_and_the_connection_stays_usable() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            cbor(&map([])),
            "echo: invalid arguments: missing field `req`",
        ),
        (
            cbor(&map([("req", map([("message", "m".into())]))])),
            "echo: invalid arguments: req: missing field `delayMs`",
        ),
        (
            cbor(&map([(
                "req",
                map([("message", "m".into()), ("delayMs", "soon".into())]),
            )])),
            "echo: invalid arguments: req.delayMs: invalid type: text, expected an integer",
        ),
        (
            cbor(&map([(
                "req",
                map([("message", 5.into()), ("delayMs", 1.into())]),
            )])),
            "echo: invalid arguments: req.message: invalid type: integer, expected text",
        ),
        (
            cbor(&map([("req", Value::Array(vec![]))])),
            "echo: invalid arguments: req: invalid type: array, expected a map",
        ),
        (
            vec![],
            "echo: invalid arguments: the payload is empty, expected a CBOR item",
        ),
        (
            vec![0xa1, 0x63],
            "echo: invalid arguments: the CBOR item ends early (truncated payload)",
        ),
        (
            [cbor(&echo_args("m", 0)), vec![0xa0, 0x00]].concat(),
            "echo: invalid arguments: 2 unexpected bytes after the CBOR item",
        ),
        (
            vec![0xff],
            "echo: invalid arguments: invalid type: break, expected a map",
        ),
    ];
    for (payload, text) in cases {
        let (status, body) = conn.call_raw(b"echo", &payload);
        assert_eq!(
            (status, String::from_utf8(body).unwrap().as_str()),
            (1, text)
        );
        assert_eq!(
            conn.call("echo", &echo_args("still here", 0)).unwrap(),
            map([
                ("echoed", "still here".into()),
                ("timerName", "ipc-server".into())
            ])
        );
    }
}

#[test]
fn complex_summarises() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let msgs = Value::Array(vec![
        echo_request("a", 1),
        echo_request("b", 2),
        echo_request("c", 3),
    ]);
    let call = |conn: &mut Conn, extra: Vec<(Value, Value)>| {
        let mut req = vec![
            (Value::from("messages"), msgs.clone()),
            ("tags".into(), texts(&["x", "y"])),
        ];
        req.extend(extra);
        conn.call_raw(b"complex", &cbor(&map([("req", Value::Map(req))])))
    };
    let expect = |summary: &str, has_note: bool| {
        (
            0,
            cbor(&map([
                ("summary", summary.into()),
                ("itemCount", 3.into()),
                ("hasNote", has_note.into()),
            ])),
        )
    };
    assert_eq!(
        call(&mut conn, vec![]),
        expect("received 3 messages, note=<none>, retries=0", false)
    );
    assert_eq!(
        call(
            &mut conn,
            vec![
                ("note".into(), Value::Null),
                ("retries".into(), Value::Null)
            ]
        ),
        expect("received 3 messages, note=<none>, retries=0", false)
    );
    assert_eq!(
        call(
            &mut conn,
            vec![("note".into(), "".into()), ("retries".into(), 4.into())]
        ),
        expect("received 3 messages, note=, retries=4", true)
    );
    assert_eq!(
        call(
            &mut conn,
            vec![
                ("note".into(), "urgent".into()),
                ("retries".into(), (-2).into())
            ]
        ),
        expect("received 3 messages, note=urgent, retries=-2", true)
    );
    let empty = map([(
        "req",
        map([
            ("messages", Value::Array(vec![])),
            ("tags", Value::Array(vec![])),
        ]),
    )]);
    assert_eq!(
        conn.call("complex", &empty).unwrap(),
        map([
            (
                "summary",
                "received 0 messages, note=<none>, retries=0".into()
            ),
            ("itemCount", 0.into()),
            ("hasNote", false.into())
        ])
    );
    let bad = map([(
        "req",
        map([
            (
                "messages",
                Value::Array(vec![echo_request("a", 1), map([("message", "b".into())])]),
            ),
            ("tags", texts(&[])),
        ]),
    )]);
    assert_eq!(
        conn.call("complex", &bad),
        Err("complex: invalid arguments: req.messages[1]: missing field `delayMs`".into())
    );
    let bad = map([(
        "req",
        map([
            ("messages", Value::Array(vec![])),
            ("tags", Value::Array(vec![1.into()])),
        ]),
    )]);
    assert!(conn
        .call("complex", &bad)
        .unwrap_err()
        .starts_with("complex: invalid arguments: req.tags[0]: "));
}

#[test]
fn schedule_arithmetic_and_errors() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let reply = |job: &str, count: i64, first: i64| {
        cbor(&map([
            ("jobId", format!("ipc-server:{job}").into()),
            ("willRunCount", count.into()),
            ("firstRunAtMs", first.into()),
            ("effectiveBackoffMs", 250.into()),
        ]))
    };
    let cases = [
        (1000, None, 60, 1_000_000),
        (7000, Some(Value::from(5)), 8, 1_000_005),
        (60_000, Some(Value::Null), 1, 1_000_000),
        (90_000, Some(Value::from(-7)), 1, 999_993),
        (0, None, 1, 1_000_000),
        (-10, None, 1, 1_000_000),
        (1, None, 60_000, 1_000_000),
    ];
    for (interval, jitter, count, first) in cases {
        assert_eq!(
            conn.call_raw(
                b"schedule",
                &cbor(&schedule_args("job-1", 3, interval, jitter))
            ),
            (0, reply("job-1", count, first))
        );
    }
    assert_eq!(
        conn.call("schedule", &schedule_args("", 0, 1000, None)),
        Err("job name must not be empty".into())
    );
    assert_eq!(
        conn.call("schedule", &schedule_args("j", 0, 1000, None)),
        Err("retry.maxAttempts must be positive".into())
    );
    assert_eq!(
        conn.call("schedule", &schedule_args("j", -1, 1000, None)),
        Err("retry.maxAttempts must be positive".into())
    );
    let missing = map([(
        "job",
        map([
            ("name", "j".into()),
            ("payload", texts(&[])),
            ("priority", 1.into()),
        ]),
    )]);
    assert_eq!(
        conn.call("schedule", &missing),
        Err("schedule: invalid arguments: missing field `retry`".into())
    );
}

#[test]
fn unknown_methods_are_named_before_the_payload_is_read() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let unknown = |conn: &mut Conn, name: &[u8]| {
        let (status, body) = conn.call_raw(name, &[0xff, 0x00, 0x13]);
        assert_eq!(status, 1);
        String::from_utf8(body).expect("valid UTF-8")
    };
    assert_eq!(unknown(&mut conn, b"nope"), "unknown method: nope");
    assert_eq!(unknown(&mut conn, b"Version"), "unknown method: Version");
    assert_eq!(unknown(&mut conn, b""), "unknown method: ");
    assert_eq!(
        unknown(&mut conn, b"bad\xff\xfename"),
        "unknown method: bad\u{fffd}\u{fffd}name"
    );
    assert_eq!(
        conn.call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn pipelined_replies_come_in_order_while_a_slow_echo_runs() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let mut batch = frame(b"echo", &cbor(&echo_args("slow", 1500)));
    batch.extend(frame(b"echo", &cbor(&echo_args("slow too", 1500))));
    for i in 0..20 {
        batch.extend(frame(b"echo", &cbor(&echo_args(&format!("fast {i}"), 0))));
        batch.extend(frame(b"nope", b""));
    }
    let started = Instant::now();
    conn.send_raw(&batch);
    for expected in ["slow", "slow too"] {
        let (status, body) = conn.recv();
        assert_eq!(
            (status, decode(&body)),
            (
                0,
                map([
                    ("echoed", expected.into()),
                    ("timerName", "ipc-server".into())
                ])
            )
        );
    }
    // Two 1.5 s echoes of one connection ran concurrently, not one after the other.
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    for i in 0..20 {
        let (status, body) = conn.recv();
        assert_eq!(status, 0);
        assert_eq!(
            decode(&body),
            map([
                ("echoed", format!("fast {i}").into()),
                ("timerName", "ipc-server".into())
            ])
        );
        assert_eq!(conn.recv(), (1, b"unknown method: nope".to_vec()));
    }
}

#[test]
fn many_connections_at_once() {
    let server = ServerProcess::tcp();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let address = server.address.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::connect(&address);
                for j in 0..20 {
                    let message = format!("{i}/{j}");
                    let reply = conn
                        .call("echo", &echo_args(&message, (j % 3) as i64))
                        .unwrap();
                    assert_eq!(
                        reply,
                        map([
                            ("echoed", message.into()),
                            ("timerName", "ipc-server".into())
                        ])
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn frames_split_anywhere_are_reassembled() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    let request = frame(b"echo", &cbor(&echo_args("split", 0)));
    for cut in 1..request.len() {
        conn.send_raw(&request[..cut]);
        conn.send_raw(&request[cut..]);
        assert_eq!(
            decode(&conn.recv().1),
            map([
                ("echoed", "split".into()),
                ("timerName", "ipc-server".into())
            ])
        );
    }
    // And one byte per write.
    for byte in &request {
        conn.send_raw(std::slice::from_ref(byte));
    }
    assert_eq!(conn.recv().0, 0);
}

#[test]
fn an_oversized_header_closes_after_the_replies_owed() {
    let server = ServerProcess::tcp();
    for oversized in [
        // A 4 GiB method name.
        vec![0xff, 0xff, 0xff, 0xff],
        // A 4 GiB payload.
        [&[0, 0, 0, 4][..], b"echo", &[0xff, 0xff, 0xff, 0xff]].concat(),
        // Just over the 4 MiB default limit.
        [&[0, 0, 0, 4][..], b"echo", &(4u32 << 20).to_be_bytes()].concat(),
    ] {
        let mut conn = server.connect();
        let mut batch = frame(b"echo", &cbor(&echo_args("owed", 300)));
        batch.extend(frame(b"version", &[0xa0]));
        batch.extend(oversized);
        conn.send_raw(&batch);
        assert_eq!(
            decode(&conn.recv().1),
            map([
                ("echoed", "owed".into()),
                ("timerName", "ipc-server".into())
            ])
        );
        assert_eq!(decode(&conn.recv().1), Value::from("nim-timer v0.1.0"));
        conn.expect_closed();
    }
    // The server goes on.
    assert_eq!(
        server.connect().call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn a_frame_at_the_limit_is_served() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    // method (4) + payload = 4 MiB exactly.
    let prefix = cbor(&map([(
        "req",
        map([("delayMs", 0.into()), ("message", "".into())]),
    )]));
    let message_len = (4 << 20) - 4 - prefix.len() - 4;
    let message = "m".repeat(message_len);
    let payload = cbor(&echo_args(&message, 0));
    assert_eq!(payload.len() + 4, 4 << 20);
    let (status, body) = conn.call_raw(b"echo", &payload);
    assert_eq!(status, 0);
    assert_eq!(
        decode(&body),
        map([
            ("echoed", message.into()),
            ("timerName", "ipc-server".into())
        ])
    );
}

#[test]
fn a_half_closed_client_still_gets_its_replies() {
    let server = ServerProcess::tcp();
    let mut conn = server.connect();
    conn.send(b"echo", &cbor(&echo_args("bye", 200)));
    conn.send(b"version", &[0xa0]);
    conn.shutdown_write();
    assert_eq!(conn.recv().0, 0);
    assert_eq!(conn.recv().0, 0);
    conn.expect_closed();
}

// What is at a unix path before binding (a stale socket, a regular file, a
// symlink, a live server) and the socket file's mode: `unix_socket.rs`.

#[cfg(unix)]
#[test]
fn sigterm_answers_the_request_in_flight_then_exits_0() {
    for server in [ServerProcess::tcp(), ServerProcess::unix()] {
        let address = server.address.clone();
        let mut conn = server.connect();
        conn.send(b"echo", &cbor(&echo_args("last words", 700)));
        server.wait_for_log(&["request started", "method=echo"]);
        let mut idle = server.connect();
        assert_eq!(
            idle.call("version", &map([])),
            Ok("nim-timer v0.1.0".into())
        );
        let status = server.terminate();
        assert!(status.success(), "exit status {status:?}");
        assert_eq!(
            decode(&conn.recv().1),
            map([
                ("echoed", "last words".into()),
                ("timerName", "ipc-server".into())
            ])
        );
        conn.expect_closed();
        idle.expect_closed();
        if let Some(path) = address.strip_prefix("unix:") {
            assert!(!std::path::Path::new(path).exists());
        }
    }
}

#[test]
fn ipv6_and_port_zero() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let server = ServerProcess::start("tcp:[::1]:0");
    assert!(
        server.address.starts_with("tcp:[::1]:") && !server.address.ends_with(":0"),
        "{}",
        server.address
    );
    assert_eq!(
        server.connect().call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}
