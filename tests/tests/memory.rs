//! Bounded memory against the real `serve_host`: subscribers that never
//! read, hogs over the memory budget (`RPC_MAX_MEMORY`) beside a good
//! client, stalled partial frames (`RPC_FRAME_TIMEOUT_MS`), the reply
//! ceiling (`RPC_MAX_REPLY`), and memory going back once they leave.
//!
//! The VmHWM/VmRSS bounds are generous, for a debug build on a loaded
//! machine, yet far below what the same loads took without the limits; the
//! release figures are in BENCHMARKS.md (`bench/memory.py`). The figures
//! are printed (`cargo test -p tests --test memory -- --nocapture`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use tests::{binary, cbor, decode, echo_args, frame, map, Conn, ServerProcess, Value, PATIENCE};

const MIB: usize = 1024 * 1024;

fn vm_kib(server: &ServerProcess, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a {field} line"))
}

fn raw(server: &ServerProcess) -> TcpStream {
    let host_port = server.address.strip_prefix("tcp:").expect("a tcp server");
    let stream = TcpStream::connect(host_port).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// A connection subscribed to `on_echo_fired`.
fn subscriber(server: &ServerProcess) -> Conn {
    let mut conn = server.connect();
    let names = map([("events", Value::Array(vec!["on_echo_fired".into()]))]);
    let reply = conn.call("rpc.subscribe", &names).expect("subscribed");
    assert_eq!(
        reply,
        map([("subscribed", Value::Array(vec!["on_echo_fired".into()]))])
    );
    conn
}

fn echo_payload(message: &str, delay_ms: i64) -> Vec<u8> {
    cbor(&echo_args(message, delay_ms))
}

fn echo_reply(message: &str) -> Vec<u8> {
    cbor(&map([
        ("echoed", message.into()),
        ("timerName", "ipc-server".into()),
    ]))
}

/// The fields of an event frame's envelope.
fn envelope(body: &[u8]) -> (String, Option<u64>) {
    let Value::Map(pairs) = decode(body) else {
        panic!("an envelope map")
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == Value::Text(name.into()))
            .map(|(_, v)| v.clone())
    };
    let Some(Value::Map(payload)) = field("payload") else {
        panic!("a payload map")
    };
    let message = payload
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (Value::Text(k), Value::Text(v)) if k == "message" => Some(v.clone()),
            _ => None,
        })
        .expect("a message");
    let dropped = field("dropped").map(|v| match v {
        Value::Integer(n) => u64::try_from(n).expect("a count"),
        other => panic!("dropped: {other:?}"),
    });
    (message, dropped)
}

/// Reads event frames until the one of `message`; returns the sum of the
/// dropped counts seen on the way (that one included).
fn events_until(conn: &mut Conn, message: &str) -> u64 {
    let mut dropped = 0;
    loop {
        let (status, body) = conn.recv();
        assert_eq!(status, 2, "an event frame");
        let (got, n) = envelope(&body);
        dropped += n.unwrap_or(0);
        if got == message {
            return dropped;
        }
    }
}

/// Waits until VmRSS is at most `limit` KiB, for at most `within`.
fn rss_falls_to(server: &ServerProcess, limit: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let rss = vm_kib(server, "VmRSS");
        if rss <= limit || Instant::now() > deadline {
            return rss;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn subscribers_that_never_read_hold_bounded_queues() {
    let server = ServerProcess::tcp();
    let idle = vm_kib(&server, "VmRSS");
    // Four subscribers that never read while another client echoes 1 MiB
    // messages: each event is 1 MiB, 150 of them.
    let mut subscribers: Vec<Conn> = (0..4).map(|_| subscriber(&server)).collect();
    let mut client = server.connect();
    let message = "m".repeat(MIB);
    let payload = echo_payload(&message, 0);
    let want = echo_reply(&message);
    for _ in 0..150 {
        assert_eq!(client.call_raw(b"echo", &payload), (0, want.clone()));
    }
    let peak = vm_kib(&server, "VmHWM");
    eprintln!(
        "VmHWM with 4 subscribers not reading 150 events of 1 MiB: {peak} KiB (idle {idle} KiB)"
    );
    // Without a byte bound the queues held 150 MiB.
    assert!(peak < 96 * 1024, "VmHWM {peak} KiB");
    // What did not fit was dropped and counted, and the next event arrives.
    client.call_raw(b"echo", &echo_payload("last", 0));
    for conn in &mut subscribers {
        let dropped = events_until(conn, "last");
        assert!(dropped > 0, "events were dropped and counted");
        assert!(dropped < 151, "{dropped}");
    }
    drop(subscribers);
    drop(client);
    server.wait_for_open_connections(0);
    let rss = rss_falls_to(&server, idle + 16 * 1024, PATIENCE);
    eprintln!("VmRSS after they closed: {rss} KiB (idle {idle} KiB)");
    assert!(rss <= idle + 16 * 1024, "VmRSS {rss} KiB, idle {idle} KiB");
}

/// A connection that writes `bytes` and never reads; returns a handle to
/// close it. The writer blocks while the server does not read.
fn hog(server: &ServerProcess, bytes: Vec<u8>) -> TcpStream {
    let stream = raw(server);
    let mut writer = stream.try_clone().expect("clone");
    thread::spawn(move || {
        // Fails once the test closes the socket.
        let _ = writer.write_all(&bytes);
    });
    stream
}

#[test]
fn hogs_wait_at_the_budget_while_a_good_client_is_served() {
    let server = ServerProcess::tcp_with_env(&[("RPC_MAX_MEMORY", &(8 * MIB).to_string())]);
    let idle = vm_kib(&server, "VmRSS");
    let mut hogs = Vec::new();
    // 16 clients pipelining 64 slow echoes of 64 KiB, never reading: 64 MiB
    // of payloads without the budget.
    let slow = frame(b"echo", &echo_payload(&"h".repeat(64 * 1024), 1000));
    for _ in 0..16 {
        hogs.push(hog(&server, slow.repeat(64)));
    }
    // 4 partial frames of 1 MiB, stalled after half.
    let mut partial = frame(b"echo", &echo_payload(&"p".repeat(MIB - 64), 0));
    partial.truncate(MIB / 2);
    for _ in 0..4 {
        hogs.push(hog(&server, partial.clone()));
    }
    server.wait_for_log(&["over the memory budget: reading paused"]);
    // The good client holds nothing between its calls: it is served.
    let mut good = server.connect();
    for i in 0..20 {
        let message = format!("good {i}");
        let reply = good.call_raw(b"echo", &echo_payload(&message, 0));
        assert_eq!(reply, (0, echo_reply(&message)));
    }
    // Past the hogs' delays: their calls have answered into their buffers.
    let reply = good.call_raw(b"echo", &echo_payload("later", 1500));
    assert_eq!(reply, (0, echo_reply("later")));
    let peak = vm_kib(&server, "VmHWM");
    eprintln!("VmHWM with 16 pipelining hogs and 4 stalled frames, budget 8 MiB: {peak} KiB (idle {idle} KiB)");
    assert!(peak < 64 * 1024, "VmHWM {peak} KiB");
    for stream in &hogs {
        let _ = stream.shutdown(Shutdown::Both);
    }
    drop(hogs);
    server.wait_for_open_connections(1);
    let rss = rss_falls_to(&server, idle + 16 * 1024, PATIENCE);
    eprintln!("VmRSS after the hogs left: {rss} KiB (idle {idle} KiB)");
    assert!(rss <= idle + 16 * 1024, "VmRSS {rss} KiB, idle {idle} KiB");
    // Still served after they left.
    let reply = good.call_raw(b"echo", &echo_payload("after", 0));
    assert_eq!(reply, (0, echo_reply("after")));
}

#[test]
fn a_stalled_partial_frame_closes_its_connection_a_steady_one_is_answered() {
    let server = ServerProcess::tcp_with_env(&[("RPC_FRAME_TIMEOUT_MS", "1000")]);
    let request = frame(b"echo", &echo_payload("steady", 0));
    // Stalled: half a frame, then nothing.
    let mut stalled = raw(&server);
    stalled
        .write_all(&request[..request.len() / 2])
        .expect("write");
    // Steady: a byte or a few every 100 ms, 1.5 s in all, longer than the
    // timeout but never silent for as long.
    let mut steady = raw(&server);
    let chunks: Vec<Vec<u8>> = request
        .chunks(request.len().div_ceil(15))
        .map(<[u8]>::to_vec)
        .collect();
    let writer = thread::spawn({
        let mut steady = steady.try_clone().expect("clone");
        move || {
            for chunk in chunks {
                steady.write_all(&chunk).expect("write");
                thread::sleep(Duration::from_millis(100));
            }
        }
    });
    server.wait_for_log(&["closing connection: partial frame stalled"]);
    let mut byte = [0u8; 1];
    match stalled.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the stalled connection is closed: {other:?}"),
    }
    writer.join().expect("the steady writer");
    let mut head = [0u8; 8];
    steady.read_exact(&mut head).expect("a reply");
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut body = vec![0; len];
    steady.read_exact(&mut body).expect("the body");
    assert_eq!(head[..4], [0; 4]);
    assert_eq!(body, echo_reply("steady"));
}

#[test]
fn replies_and_events_over_the_ceiling_are_refused() {
    let server = ServerProcess::tcp_with_env(&[("RPC_MAX_REPLY", "1000")]);
    let mut events = subscriber(&server);
    let mut conn = server.connect();
    let big = "b".repeat(2000);
    let (status, text) = conn.call_raw(b"echo", &echo_payload(&big, 0));
    let len = echo_reply(&big).len();
    assert_eq!(
        (status, String::from_utf8(text).unwrap()),
        (
            1,
            format!("echo: reply of {len} bytes exceeds the limit of 1000")
        )
    );
    assert_eq!(
        conn.call_raw(b"echo", &echo_payload("small", 0)),
        (0, echo_reply("small"))
    );
    // The event of the big echo was dropped and counted before the next.
    let (status, body) = events.recv();
    assert_eq!(status, 2);
    assert_eq!(envelope(&body), ("small".to_owned(), Some(1)));
}

/// `rpc listen` and its stdout lines; killed when dropped.
struct Listen {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn rpc_listen_survives_the_echo_of_a_maximum_request() {
    let server = ServerProcess::tcp();
    let mut child = Command::new(binary("rpc"))
        .args(["listen", &server.address, "on_echo_fired"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rpc starts");
    let listen = Listen {
        stdout: lines(child.stdout.take().unwrap()),
        stderr: lines(child.stderr.take().unwrap()),
        child,
    };
    let subscribed = listen.stderr.recv_timeout(PATIENCE).expect("a line");
    assert!(subscribed.contains("rpc.subscribe"), "{subscribed}");
    // Method name plus payload of exactly the default frame limit.
    let overhead = echo_payload("", 0).len() - 1 + 5;
    let message = "x".repeat(4 * MIB - 4 - overhead);
    let payload = echo_payload(&message, 0);
    assert_eq!(4 + payload.len(), 4 * MIB);
    let mut conn = server.connect();
    assert_eq!(conn.call_raw(b"echo", &payload), (0, echo_reply(&message)));
    assert_eq!(
        conn.call_raw(b"echo", &echo_payload("next", 0)),
        (0, echo_reply("next"))
    );
    let first = listen.stdout.recv_timeout(PATIENCE).expect("the big event");
    assert!(first.len() > 4 * MIB - 64, "{} bytes", first.len());
    assert!(first.contains(r#""eventType":"on_echo_fired""#));
    assert_eq!(
        listen
            .stdout
            .recv_timeout(PATIENCE)
            .expect("the next event"),
        r#"{"eventType":"on_echo_fired","payload":{"message":"next","echoCount":1}}"#
    );
}

#[test]
fn requests_larger_than_the_budget_are_all_answered() {
    // Each request alone is over the budget: they pass one at a time.
    let server = ServerProcess::tcp_with_env(&[("RPC_MAX_MEMORY", &(MIB / 2).to_string())]);
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let mut conn = server.connect();
            thread::spawn(move || {
                let message = format!("{i}").repeat(MIB);
                let reply = conn.call_raw(b"echo", &echo_payload(&message, 0));
                assert_eq!(reply, (0, echo_reply(&message)), "client {i}");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client is answered");
    }
}

#[test]
fn the_typed_client_takes_the_echo_of_a_maximum_request() {
    use my_timer::{EchoRemote, EchoRequest};
    let server = ServerProcess::tcp();
    let overhead = echo_payload("", 0).len() - 1 + 5;
    let message = "y".repeat(4 * MIB - 4 - overhead);
    assert_eq!(4 + echo_payload(&message, 0).len(), 4 * MIB);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = rpc_core::Client::connect(&server.address)
            .await
            .expect("connects");
        let request = EchoRequest {
            message: message.clone(),
            delay_ms: 0,
        };
        let reply = client.echo(request).await.expect("the whole reply");
        assert_eq!(reply.echoed.len(), message.len());
    });
}
