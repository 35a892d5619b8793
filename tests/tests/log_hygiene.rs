//! What a peer sends cannot shape `serve_host`'s log: method names are
//! escaped and cut, argument values never appear, and a flood of protocol
//! errors gives a few WARN lines a second and a count of the rest.

use std::io::Write;
use std::time::Instant;

use tests::{cbor, echo_args, ServerProcess, PATIENCE};

#[test]
fn a_name_with_a_newline_is_one_escaped_line() {
    let server = ServerProcess::tcp_with_env(&[("RUST_LOG", "debug")]);
    let mut conn = server.connect();
    let name = b"evil\nINFO forged: admin logged in";
    let (status, body) = conn.call_raw(name, &[0xa0]);
    assert_eq!(status, 1);
    // Short names are quoted as the contract says, byte for byte.
    assert_eq!(body, b"unknown method: evil\nINFO forged: admin logged in");
    let lines = server.log_lines_until(&["reply", r"evil\nINFO forged"]);
    let started: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("request started"))
        .collect();
    assert_eq!(started.len(), 1, "{lines:#?}");
    assert!(
        started[0].contains(r"method=evil\nINFO forged: admin logged in"),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(!line.starts_with("INFO forged"), "{lines:#?}");
        if line.contains("forged") {
            assert!(line.contains(r"evil\nINFO forged"), "{line}");
        }
    }
}

#[test]
fn a_one_mebibyte_name_gives_a_short_line_and_a_cut_reply() {
    let server = ServerProcess::tcp_with_env(&[("RUST_LOG", "debug")]);
    let mut conn = server.connect();
    let name = vec![b'n'; 1 << 20];
    let (status, body) = conn.call_raw(&name, &[0xa0]);
    assert_eq!(status, 1);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text,
        format!("unknown method: {}… (1048576 bytes)", "n".repeat(256))
    );
    let line = server.wait_for_log(&["request started"]);
    assert!(line.contains("… (1048576 bytes)"), "{line}");
    assert!(line.len() < 400, "{} bytes: {line}", line.len());
}

#[test]
fn argument_values_are_never_logged() {
    let server = ServerProcess::tcp_with_env(&[("RUST_LOG", "trace")]);
    let mut conn = server.connect();
    let secret = "s3cr3t-argument-value";
    let (status, _) = conn.call_raw(b"echo", &cbor(&echo_args(secret, 0)));
    assert_eq!(status, 0);
    // Bad arguments too: the error reply may quote them, the log may not.
    let (status, _) = conn.call_raw(b"echo", &cbor(&tests::map([("message", 7.into())])));
    assert_eq!(status, 1);
    let (status, _) = conn.call_raw(b"version", &cbor(&tests::map([("x", secret.into())])));
    assert_eq!(status, 0);
    let lines = server.log_lines_until(&["reply", "method=version"]);
    assert!(
        lines.iter().any(|l| l.contains("method=echo")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains(secret), "{line}");
    }
}

/// A header announcing a 4 GiB method name: the server closes the connection.
fn send_bad_header(address: &str) {
    let host_port = address.strip_prefix("tcp:").unwrap();
    let mut stream = std::net::TcpStream::connect(host_port).unwrap();
    stream.write_all(&[0xff; 8]).unwrap();
}

#[test]
fn a_flood_of_bad_headers_gives_few_warn_lines_and_a_count() {
    let server = ServerProcess::tcp_with_env(&[("RUST_LOG", "warn")]);
    let started = Instant::now();
    for _ in 0..2000 {
        send_bad_header(&server.address);
    }
    // The count of the suppressed lines comes with the first line of a later
    // second: send more until it shows.
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("suppressed")) {
        assert!(
            started.elapsed() < PATIENCE,
            "no suppressed line: {lines:#?}"
        );
        send_bad_header(&server.address);
        lines.extend(server.new_log_lines());
        // Polled (the deadline above bounds it); the pause only spares sockets.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let warnings = lines
        .iter()
        .filter(|l| l.contains("closing connection"))
        .count();
    // At most 5 a second (and the "suppressed" lines), however many arrive.
    let seconds = started.elapsed().as_secs() as usize + 1;
    assert!(
        warnings <= 5 * seconds,
        "{warnings} in {seconds} s: {lines:#?}"
    );
    assert!(warnings >= 1);
    let suppressed = lines.iter().find(|l| l.contains("suppressed")).unwrap();
    assert!(suppressed.contains("WARN"), "{suppressed}");
    assert!(
        suppressed.contains("more protocol errors suppressed"),
        "{suppressed}"
    );
}
