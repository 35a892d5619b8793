//! Hostile and overloading clients against the real `serve_host`: oversized
//! headers, cut frames, slowloris, connection storms, random blobs, clients
//! that vanish or never read, and more connections than the limit.
//!
//! Each scenario runs on a fresh server and ends with the server alive, no
//! connection left open, a fresh connection answered correctly and (on Linux)
//! a VmRSS under 32 MiB; `all_scenarios_in_a_row_on_one_server` runs them all
//! against one process to catch what accumulates. The RSS figures are printed
//! (`cargo test -p tests --test hostile -- --nocapture`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use rpc_core::wire::RequestCodec;
use tests::{cbor, decode, echo_args, frame, map, texts, Conn, ServerProcess, Value, PATIENCE};
use tokio_util::codec::Decoder;

const VERSION: &str = "nim-timer v0.1.0";
/// The VmRSS a debug `serve_host` must stay under after any scenario.
const RSS_LIMIT_KIB: u64 = 32 * 1024;

// ---------------------------------------------------------------- helpers

/// A raw TCP connection with the tests' time bounds.
fn raw(server: &ServerProcess) -> TcpStream {
    let host_port = server.address.strip_prefix("tcp:").expect("a tcp server");
    let stream = TcpStream::connect(host_port).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// Closes with a reset (RST) instead of a FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// Reads one reply, or `None` at a clean end of stream (or a reset) between
/// replies. A reply cut short is a failure.
fn read_reply(stream: &mut TcpStream) -> Option<(i32, Vec<u8>)> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) if got == 0 => return None,
            Ok(0) => panic!("end of stream inside a reply header"),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && got == 0 => return None,
            Err(e) => panic!("reading a reply: {e}"),
        }
    }
    let status = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).expect("a whole reply body");
    Some((status, body))
}

/// Every reply until the server closes.
fn read_to_end(stream: &mut TcpStream) -> Vec<(i32, Vec<u8>)> {
    std::iter::from_fn(|| read_reply(stream)).collect()
}

/// The contract's shape of a reply: status 0 with exactly one CBOR item, or
/// status 1 with non-empty UTF-8 text.
fn assert_well_formed((status, body): &(i32, Vec<u8>), what: &str) {
    match status {
        0 => {
            let mut rest = &body[..];
            let item = ciborium::de::from_reader::<Value, _>(&mut rest);
            assert!(
                item.is_ok() && rest.is_empty(),
                "{what}: status 0 body is not one CBOR item: {body:02x?}"
            );
        }
        1 => {
            assert!(!body.is_empty(), "{what}: empty error text");
            assert!(
                std::str::from_utf8(body).is_ok(),
                "{what}: error text is not UTF-8: {body:02x?}"
            );
        }
        other => panic!("{what}: unexpected status {other}"),
    }
}

fn echo_frame(message: &str, delay_ms: i64) -> Vec<u8> {
    frame(b"echo", &cbor(&echo_args(message, delay_ms)))
}

fn version_frame() -> Vec<u8> {
    frame(b"version", &[0xa0])
}

fn echoed(message: &str) -> (i32, Vec<u8>) {
    (
        0,
        cbor(&map([
            ("echoed", message.into()),
            ("timerName", "ipc-server".into()),
        ])),
    )
}

fn version_reply() -> (i32, Vec<u8>) {
    (0, cbor(&Value::from(VERSION)))
}

/// A `/proc/PID/status` figure in KiB: `VmRSS` (resident), `VmHWM` (peak
/// resident) or `VmData` (heap and other private data, touched or not).
#[cfg(target_os = "linux")]
fn vm_kib(server: &ServerProcess, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a {field} line"))
}

fn assert_rss_bounded(server: &ServerProcess, what: &str) {
    #[cfg(target_os = "linux")]
    {
        let rss = vm_kib(server, "VmRSS");
        let peak = vm_kib(server, "VmHWM");
        eprintln!("VmRSS after {what}: {rss} KiB (peak so far {peak} KiB)");
        assert!(
            rss < RSS_LIMIT_KIB,
            "{what}: VmRSS {rss} KiB, limit {RSS_LIMIT_KIB} KiB"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (server, what, RSS_LIMIT_KIB);
}

/// The end of every scenario: every connection closed, the process alive,
/// a fresh connection answered correctly, memory bounded.
fn assert_healthy(server: &mut ServerProcess, what: &str) {
    server.wait_for_open_connections(0);
    assert!(server.is_running(), "{what}: the server died");
    let mut conn = server.connect();
    assert_eq!(conn.call("version", &map([])), Ok(VERSION.into()), "{what}");
    assert_eq!(
        conn.call("echo", &echo_args("still here", 0)),
        Ok(decode(&echoed("still here").1)),
        "{what}"
    );
    drop(conn);
    server.wait_for_open_connections(0);
    assert_rss_bounded(server, what);
}

/// A small deterministic generator (xorshift64), so that a failing blob can
/// be replayed from its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// -------------------------------------------------------------- scenarios

/// A header announcing a 4 GiB method name, or a 4 GiB payload, followed by
/// megabytes of data: the reply owed for an earlier request is written, the
/// connection is closed, and nothing of the announced size is allocated.
fn huge_headers_then_megabytes(server: &mut ServerProcess) {
    let mut payload_header = vec![0, 0, 0, 4];
    payload_header.extend_from_slice(b"echo");
    payload_header.extend_from_slice(&[0xff; 4]);
    for (what, header) in [("method name", vec![0xff; 4]), ("payload", payload_header)] {
        let mut stream = raw(server);
        let mut bytes = version_frame();
        bytes.extend_from_slice(&header);
        stream.write_all(&bytes).expect("write");
        // The server may close before it has taken every byte: a failed
        // write is fine, a hang or a crash is not.
        let mut writer = stream.try_clone().expect("clone");
        let flood = thread::spawn(move || {
            let chunk = vec![0x5a; 64 * 1024];
            let mut sent = 0;
            while sent < 8 * 1024 * 1024 && writer.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
        });
        assert_eq!(read_reply(&mut stream), Some(version_reply()), "{what}");
        assert_eq!(read_reply(&mut stream), None, "{what}: closed after");
        flood.join().expect("flood thread");
        server.wait_for_log(&[
            "closing connection",
            &format!("{what} of 4294967295 bytes exceeds the frame limit"),
        ]);
        assert_rss_bounded(server, &format!("a 4 GiB {what} header"));
    }
}

/// Huge lengths followed by a close (FIN) or a reset (RST), with many such
/// frames held open at once: a header just under the limit must not make
/// the server reserve its announced size either, not even untouched.
fn huge_lengths_then_close_or_reset(server: &mut ServerProcess) {
    let header = |method_len: u32, payload_len: Option<u32>| {
        let mut header = version_frame();
        header.extend_from_slice(&method_len.to_be_bytes());
        if let Some(payload_len) = payload_len {
            header.extend_from_slice(&vec![b'm'; method_len as usize]);
            header.extend_from_slice(&payload_len.to_be_bytes());
        }
        header.extend_from_slice(&[0xa5; 1024]);
        header
    };
    let just_under = (4 * 1024 * 1024 - 64) as u32;
    let refused = [header(u32::MAX, None), header(4, Some(u32::MAX))];
    let waiting = [header(just_under, None), header(4, Some(just_under))];
    for (i, bytes) in refused.iter().cycle().take(8).enumerate() {
        let mut stream = raw(server);
        stream.write_all(bytes).expect("write");
        assert_eq!(read_reply(&mut stream), Some(version_reply()));
        if i % 2 == 0 {
            stream.shutdown(Shutdown::Both).expect("shutdown");
        } else {
            reset(stream);
        }
    }
    const HELD: usize = 32;
    let mut held = Vec::new();
    for bytes in waiting.iter().cycle().take(HELD) {
        let mut stream = raw(server);
        stream.write_all(bytes).expect("write");
        // The reply proves the server has read what came with it.
        assert_eq!(read_reply(&mut stream), Some(version_reply()));
        held.push(stream);
    }
    server.wait_for_open_connections(HELD as i64);
    // Each announces ~4 MiB: 128 MiB, if the server reserved it.
    assert_rss_bounded(server, "32 connections announcing 4 MiB frames");
    #[cfg(target_os = "linux")]
    {
        let data = vm_kib(server, "VmData");
        eprintln!("VmData with 32 connections announcing 4 MiB frames: {data} KiB");
        assert!(
            data < RSS_LIMIT_KIB,
            "VmData {data} KiB: announced sizes reserved"
        );
    }
    for (i, stream) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            stream.shutdown(Shutdown::Both).expect("shutdown");
        } else {
            reset(stream);
        }
    }
}

/// A frame cut at every position and then closed gets no reply and no
/// crash; a complete frame followed by a cut one gets its reply.
fn cut_frames(server: &mut ServerProcess) {
    let whole = echo_frame("cut here", 0);
    for cut in 0..=whole.len() {
        let mut stream = raw(server);
        stream.write_all(&whole[..cut]).expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let replies = read_to_end(&mut stream);
        if cut == whole.len() {
            assert_eq!(replies, [echoed("cut here")]);
        } else {
            assert_eq!(replies, [], "cut at {cut}");
        }
    }
    for cut in 1..whole.len() {
        let mut stream = raw(server);
        let mut bytes = version_frame();
        bytes.extend_from_slice(&whole[..cut]);
        stream.write_all(&bytes).expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        assert_eq!(read_to_end(&mut stream), [version_reply()], "cut at {cut}");
    }
}

/// A client trickling a frame a byte at a time holds nothing up: 20 other
/// clients are served while its frame is half sent, and its own request is
/// answered once complete.
fn slowloris(server: &mut ServerProcess) {
    let bytes = version_frame();
    let (half_sent, half_sent_rx) = mpsc::channel();
    let (others_done, others_done_rx) = mpsc::channel::<()>();
    let mut slow = raw(server);
    let trickle = thread::spawn(move || {
        for (i, byte) in bytes.iter().enumerate() {
            if i == bytes.len() / 2 {
                half_sent.send(()).expect("signal");
                others_done_rx.recv().expect("the others finish");
            }
            slow.write_all(&[*byte]).expect("write a byte");
            thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(read_reply(&mut slow), Some(version_reply()));
    });
    half_sent_rx.recv().expect("half sent");
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let address = server.address.clone();
            thread::spawn(move || {
                let mut conn = Conn::connect(&address);
                for j in 0..5 {
                    let message = format!("client {i} call {j}");
                    assert_eq!(
                        conn.call("echo", &echo_args(&message, 0)),
                        Ok(decode(&echoed(&message).1))
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a prompt client");
    }
    others_done.send(()).expect("signal");
    trickle.join().expect("the slow client is answered too");
}

/// 200 connections opened and dropped in every way: at once or after part
/// of a frame, with a FIN or a reset, before or after a whole request.
fn connections_opened_and_dropped(server: &mut ServerProcess) {
    let whole = echo_frame("dropped", 0);
    for i in 0..200 {
        let mut stream = raw(server);
        match (i / 2) % 3 {
            0 => {}
            1 => stream.write_all(&whole[..whole.len() / 2]).expect("write"),
            _ => stream.write_all(&whole).expect("write"),
        }
        if i % 2 == 0 {
            drop(stream);
        } else {
            reset(stream);
        }
    }
}

/// 200 connections held open at once, each with a request: all answered.
fn connections_held_open(server: &mut ServerProcess) {
    let mut streams: Vec<_> = (0..200)
        .map(|i| {
            let mut stream = raw(server);
            stream
                .write_all(&echo_frame(&format!("held {i}"), 0))
                .expect("write");
            stream
        })
        .collect();
    server.wait_for_open_connections(200);
    for (i, stream) in streams.iter_mut().enumerate() {
        assert_eq!(read_reply(stream), Some(echoed(&format!("held {i}"))));
    }
    assert_rss_bounded(server, "200 connections held open");
}

/// Valid payloads of the methods that answer at once (no delay to mutate).
fn valid_payloads() -> Vec<(&'static [u8], Vec<u8>)> {
    let complex = map([(
        "req",
        map([
            (
                "messages",
                Value::Array(vec![map([("message", "m".into()), ("delayMs", 0.into())])]),
            ),
            ("tags", texts(&["a", "b"])),
            ("note", "n".into()),
            ("retries", 2.into()),
        ]),
    )]);
    let schedule = map([
        (
            "job",
            map([
                ("name", "j".into()),
                ("payload", texts(&["p"])),
                ("priority", 1.into()),
            ]),
        ),
        (
            "retry",
            map([
                ("maxAttempts", 3.into()),
                ("backoffMs", 10.into()),
                ("retryOn", texts(&["io"])),
            ]),
        ),
        (
            "schedule",
            map([
                ("startAtMs", 5.into()),
                ("intervalMs", 1000.into()),
                ("jitter", Value::Null),
            ]),
        ),
    ]);
    vec![
        (b"version", vec![0xa0]),
        (b"complex", cbor(&complex)),
        (b"schedule", cbor(&schedule)),
    ]
}

/// How many replies a byte stream is owed: its whole frames up to the first
/// incomplete or oversized one, by the same codec rules.
fn frames_owed(blob: &[u8]) -> usize {
    let mut codec = RequestCodec::default();
    let mut buf = BytesMut::from(blob);
    let mut owed = 0;
    while let Ok(Some(_)) = codec.decode(&mut buf) {
        owed += 1;
    }
    owed
}

/// A few hundred seeded random blobs, half pure noise and half well-framed
/// requests with noise or mutated payloads: each gets exactly the replies
/// its whole frames are owed, every one of them well-formed.
fn random_blobs(server: &mut ServerProcess) {
    let mut rng = Rng(0x5eed_f00d_b10b);
    let valid = valid_payloads();
    let names: [&[u8]; 7] = [
        b"version",
        b"echo",
        b"complex",
        b"schedule",
        b"",
        b"no such method",
        b"\xff\xfe",
    ];
    for i in 0..300 {
        let blob = if i % 2 == 0 {
            let len = rng.below(600);
            rng.bytes(len)
        } else {
            let mut blob = Vec::new();
            for _ in 0..1 + rng.below(4) {
                if rng.below(2) == 0 {
                    let (name, mut payload) = valid[rng.below(valid.len())].clone();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(payload.len());
                        payload[at] = rng.next() as u8;
                    }
                    blob.extend(frame(name, &payload));
                } else {
                    let len = rng.below(80);
                    let payload = rng.bytes(len);
                    blob.extend(frame(names[rng.below(names.len())], &payload));
                }
            }
            blob
        };
        let mut stream = raw(server);
        // The server may close early on an oversized header.
        let _ = stream.write_all(&blob);
        let _ = stream.shutdown(Shutdown::Write);
        let replies = read_to_end(&mut stream);
        for reply in &replies {
            assert_well_formed(reply, &format!("blob {i}"));
        }
        assert_eq!(replies.len(), frames_owed(&blob), "blob {i}: {blob:02x?}");
    }
}

/// Rounds of 50 clients that send a slow echo with a large message and
/// leave before the reply: the work is finished or dropped, every
/// connection closes, and the memory does not add up round after round
/// (what a round holds, kept, would pass the bound within a few rounds).
fn clients_leave_before_their_reply(server: &mut ServerProcess) {
    let message = "x".repeat(48 * 1024);
    for round in 0..20 {
        for i in 0..50 {
            let mut stream = raw(server);
            stream.write_all(&echo_frame(&message, 50)).expect("write");
            if i % 2 == 0 {
                drop(stream);
            } else {
                reset(stream);
            }
        }
        server.wait_for_open_connections(0);
        assert_rss_bounded(server, &format!("round {round} of 50 vanished clients"));
    }
}

/// 1000 requests of every kind in one write: 1000 replies, in order.
fn pipeline_of_1000(server: &mut ServerProcess) {
    let valid = valid_payloads();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        match i % 5 {
            0 => {
                batch.extend(version_frame());
                expected.push(Some(version_reply()));
            }
            1 => {
                let message = format!("pipelined {i}");
                batch.extend(echo_frame(&message, (i % 3) as i64));
                expected.push(Some(echoed(&message)));
            }
            2 => {
                let (name, payload) = &valid[i % valid.len()];
                batch.extend(frame(name, payload));
                expected.push(None);
            }
            3 => {
                batch.extend(frame(b"echo", &[0xa1, 0x63, b'r', b'e', b'q', 0x01]));
                expected.push(None);
            }
            _ => {
                batch.extend(frame(format!("nope {i}").as_bytes(), &[0xa0]));
                expected.push(Some((1, format!("unknown method: nope {i}").into_bytes())));
            }
        }
    }
    let mut stream = raw(server);
    stream.write_all(&batch).expect("one write");
    for (i, expected) in expected.into_iter().enumerate() {
        let reply = read_reply(&mut stream).expect("a reply");
        assert_well_formed(&reply, &format!("request {i}"));
        match (i % 5, expected) {
            (_, Some(expected)) => assert_eq!(reply, expected, "request {i}"),
            (2, None) => assert_eq!(reply.0, 0, "request {i}"),
            (_, None) => assert_eq!(reply.0, 1, "request {i}"),
        }
    }
}

/// A client that sends large requests and never reads: the server stops
/// reading from it (its writes end up blocked) instead of buffering the
/// replies, others are served meanwhile, and once it reads it gets every
/// reply it is owed.
///
/// Not on Windows: there a socket whose send timed out is left in an
/// indeterminate state, and this scenario detects the stall by that timeout.
#[cfg(not(windows))]
fn a_client_that_never_reads(server: &mut ServerProcess) {
    const LIMIT: usize = 64 * 1024 * 1024;
    let message = "r".repeat(64 * 1024);
    let one = echo_frame(&message, 0);
    let mut stream = raw(server);
    // A write blocked this long means the server has stopped reading.
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let stream_bytes = one.repeat(LIMIT / one.len() + 1);
    let mut written = 0;
    while written < LIMIT {
        match stream.write(&stream_bytes[written..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        written < LIMIT,
        "the server took {written} bytes from a client that reads nothing"
    );
    eprintln!("a client that never reads got {written} bytes in before blocking");
    assert_rss_bounded(server, "a client that never reads, blocked");
    let mut other = server.connect();
    assert_eq!(other.call("version", &map([])), Ok(VERSION.into()));
    drop(other);
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let owed = written / one.len();
    let mut answered = 0;
    while let Some(reply) = read_reply(&mut stream) {
        assert_eq!(reply, echoed(&message), "reply {answered}");
        answered += 1;
    }
    assert_eq!(answered, owed, "every whole request is answered");
}

type Scenario = fn(&mut ServerProcess);

fn run(scenario: Scenario, what: &str) {
    let mut server = ServerProcess::tcp();
    scenario(&mut server);
    assert_healthy(&mut server, what);
}

const SCENARIOS: &[(Scenario, &str)] = &[
    (huge_headers_then_megabytes, "4 GiB headers then megabytes"),
    (
        huge_lengths_then_close_or_reset,
        "huge lengths then FIN or RST",
    ),
    (cut_frames, "cut frames"),
    (slowloris, "slowloris"),
    (connections_opened_and_dropped, "200 dropped connections"),
    (connections_held_open, "200 held connections"),
    (random_blobs, "300 random blobs"),
    (clients_leave_before_their_reply, "vanished clients"),
    (pipeline_of_1000, "a pipeline of 1000"),
    #[cfg(not(windows))]
    (a_client_that_never_reads, "a client that never reads"),
];

#[test]
fn huge_headers_then_megabytes_of_data() {
    run(huge_headers_then_megabytes, "4 GiB headers then megabytes");
}

#[test]
fn huge_lengths_then_a_close_or_a_reset() {
    run(
        huge_lengths_then_close_or_reset,
        "huge lengths then FIN or RST",
    );
}

#[test]
fn frames_cut_at_every_position() {
    run(cut_frames, "cut frames");
}

#[test]
fn a_slowloris_holds_nobody_up() {
    run(slowloris, "slowloris");
}

#[test]
fn two_hundred_connections_dropped() {
    run(connections_opened_and_dropped, "200 dropped connections");
}

#[test]
fn two_hundred_connections_held_open() {
    run(connections_held_open, "200 held connections");
}

#[test]
fn seeded_random_blobs_get_well_formed_replies() {
    run(random_blobs, "300 random blobs");
}

#[test]
fn clients_that_leave_before_their_reply_leak_nothing() {
    run(clients_leave_before_their_reply, "vanished clients");
}

#[test]
fn a_pipeline_of_1000_requests_in_one_write() {
    run(pipeline_of_1000, "a pipeline of 1000");
}

#[cfg(not(windows))]
#[test]
fn a_client_that_never_reads_is_paused_not_buffered() {
    run(a_client_that_never_reads, "a client that never reads");
}

#[test]
fn all_scenarios_in_a_row_on_one_server() {
    let mut server = ServerProcess::tcp();
    for &(scenario, what) in SCENARIOS {
        scenario(&mut server);
        assert_healthy(&mut server, &format!("{what} (in a row)"));
    }
}

/// More connections than `RPC_MAX_CONNECTIONS`: the excess waits in the
/// accept backlog, the others are unaffected, and it is served as soon as a
/// place frees up.
#[test]
fn connections_over_the_limit_wait_their_turn() {
    let mut server = ServerProcess::tcp_with_env(&[("RPC_MAX_CONNECTIONS", "4")]);
    let mut admitted: Vec<_> = (0..4).map(|_| server.connect()).collect();
    for conn in &mut admitted {
        assert_eq!(conn.call("version", &map([])), Ok(VERSION.into()));
    }
    let mut waiting = raw(&server);
    waiting.write_all(&version_frame()).expect("write");
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the fifth connection must wait, got {early:?}"
    );
    for conn in &mut admitted {
        assert_eq!(
            conn.call("echo", &echo_args("unaffected", 0)),
            Ok(decode(&echoed("unaffected").1))
        );
    }
    drop(admitted.pop());
    waiting.set_read_timeout(Some(PATIENCE)).expect("timeout");
    assert_eq!(read_reply(&mut waiting), Some(version_reply()));
    drop(waiting);
    drop(admitted);
    assert_healthy(&mut server, "more connections than the limit");
}

/// The other limits, set through the environment, apply: a small frame
/// limit closes after the replies owed, a small in-flight bound and write
/// backlog still answer a pipeline in order, and an idle timeout closes a
/// silent connection but not one waiting for a slow reply.
#[test]
fn limits_from_the_environment_apply() {
    let mut server = ServerProcess::tcp_with_env(&[
        ("RPC_MAX_FRAME", "1024"),
        ("RPC_MAX_IN_FLIGHT", "2"),
        ("RPC_MAX_WRITE_BACKLOG", "256"),
        ("RPC_IDLE_TIMEOUT_MS", "300"),
    ]);
    let mut stream = raw(&server);
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend(echo_frame(&format!("small {i}"), i % 3));
    }
    batch.extend(echo_frame(&"y".repeat(2000), 0));
    stream.write_all(&batch).expect("write");
    for i in 0..50 {
        assert_eq!(read_reply(&mut stream), Some(echoed(&format!("small {i}"))));
    }
    assert_eq!(read_reply(&mut stream), None, "closed at the big frame");
    server.wait_for_log(&["closing connection", "exceeds the frame limit of 1024"]);

    // Busy for longer than the idle timeout: still answered.
    let mut slow = raw(&server);
    slow.write_all(&echo_frame("slow", 600)).expect("write");
    assert_eq!(read_reply(&mut slow), Some(echoed("slow")));
    // Then silent: closed.
    assert_eq!(read_reply(&mut slow), None);
    server.wait_for_log(&["idle timeout"]);
    let mut silent = raw(&server);
    assert_eq!(read_reply(&mut silent), None);
    assert_healthy(&mut server, "limits from the environment");
}
