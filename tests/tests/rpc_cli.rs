//! The `rpc` command line against a spawned `serve_host`: a call of every
//! timer method, error replies, bad JSON, unreachable and silent servers,
//! `rpc describe` and `rpc listen`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};

use rpc_core::builtins::describe::Description;
use serde_json::{json, Value as Json};
use tests::{binary, cbor, map, run, ServerProcess, PATIENCE};

/// Runs `rpc ARGS...`: exit status, stdout, stderr.
fn rpc(args: &[&str]) -> (ExitStatus, String, String) {
    run(&binary("rpc"), args)
}

/// `rpc call ADDRESS METHOD JSON`, which must succeed; its stdout as JSON.
fn call_ok(server: &ServerProcess, method: &str, json: &str) -> Json {
    let (status, stdout, stderr) = rpc(&["call", &server.address, method, json]);
    assert!(status.success(), "{method}: {status}: {stderr}");
    assert_eq!(stderr, "", "{method}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{method}: {e}: {stdout:?}"))
}

#[test]
fn rpc_call_reaches_every_timer_method() {
    let server = ServerProcess::tcp();
    assert_eq!(call_ok(&server, "version", "{}"), json!("nim-timer v0.1.0"));
    // The default arguments are {}.
    let (status, stdout, _) = rpc(&["call", &server.address, "version"]);
    assert!(status.success());
    assert_eq!(stdout, "\"nim-timer v0.1.0\"\n");
    assert_eq!(
        call_ok(
            &server,
            "echo",
            r#"{"req": {"message": "hello over the wire", "delayMs": 5}}"#
        ),
        json!({"echoed": "hello over the wire", "timerName": "ipc-server"})
    );
    assert_eq!(
        call_ok(
            &server,
            "complex",
            r#"{"req": {"messages": [{"message": "a", "delayMs": 0}], "tags": ["x"], "note": "n"}}"#
        ),
        json!({"summary": "received 1 messages, note=n, retries=0", "itemCount": 1, "hasNote": true})
    );
    assert_eq!(
        call_ok(
            &server,
            "schedule",
            r#"{"job": {"name": "nightly", "payload": [], "priority": 1},
                "retry": {"maxAttempts": 3, "backoffMs": 250, "retryOn": []},
                "schedule": {"startAtMs": 1700000000000, "intervalMs": 7000, "jitter": 7}}"#
        ),
        json!({"jobId": "ipc-server:nightly", "willRunCount": 8, "firstRunAtMs": 1_700_000_000_007_i64, "effectiveBackoffMs": 250})
    );
    let description = call_ok(&server, "rpc.describe", "{}");
    assert_eq!(
        description["methods"][0],
        json!({"name": "complex", "params": ["req"]})
    );
}

#[test]
fn replies_print_as_indented_json_with_integers_kept() {
    let server = ServerProcess::tcp();
    let (status, stdout, _) = rpc(&[
        "call",
        &server.address,
        "schedule",
        r#"{"job": {"name": "j", "payload": [], "priority": 1},
            "retry": {"maxAttempts": 1, "backoffMs": -9007199254740993, "retryOn": []},
            "schedule": {"startAtMs": 9007199254740993, "intervalMs": 0}}"#,
    ]);
    assert!(status.success());
    // 2^53 + 1 is not a double: it arrived and came back as an integer.
    assert_eq!(
        stdout,
        "{\n  \"jobId\": \"ipc-server:j\",\n  \"willRunCount\": 1,\n  \
         \"firstRunAtMs\": 9007199254740993,\n  \"effectiveBackoffMs\": -9007199254740993\n}\n"
    );
    // A float where an integer is expected is the server's to refuse.
    let (status, _, stderr) = rpc(&[
        "call",
        &server.address,
        "echo",
        r#"{"req": {"message": "m", "delayMs": 1.0}}"#,
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.starts_with("echo: invalid arguments: req.delayMs"),
        "{stderr}"
    );
}

#[test]
fn an_error_reply_prints_its_text_on_stderr_and_exits_1() {
    let server = ServerProcess::tcp();
    let (status, stdout, stderr) = rpc(&[
        "call",
        &server.address,
        "schedule",
        r#"{"job": {"name": "", "payload": [], "priority": 1},
            "retry": {"maxAttempts": 1, "backoffMs": 0, "retryOn": []},
            "schedule": {"startAtMs": 0, "intervalMs": 0}}"#,
    ]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr, "job name must not be empty\n");

    let (status, stdout, stderr) = rpc(&["call", &server.address, "nope"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr, "unknown method: nope\n");
}

#[test]
fn bad_json_exits_2_without_calling() {
    let server = ServerProcess::tcp();
    for bad in [r#"{"req": "#, "{'a': 1}", "{} {}", ""] {
        let (status, stdout, stderr) = rpc(&["call", &server.address, "echo", bad]);
        assert_eq!(status.code(), Some(2), "{bad:?}");
        assert_eq!(stdout, "");
        assert!(
            stderr.starts_with("rpc: the arguments are not valid JSON: "),
            "{bad:?}: {stderr}"
        );
    }
}

#[test]
fn an_unreachable_or_malformed_address_exits_2() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("tcp:{}", free.local_addr().unwrap());
    drop(free);
    for command in [
        vec!["call", &address, "version"],
        vec!["describe", &address],
        vec!["listen", &address],
    ] {
        let (status, stdout, stderr) = rpc(&command);
        assert_eq!(status.code(), Some(2), "{command:?}");
        assert_eq!(stdout, "");
        assert!(
            stderr.starts_with(&format!("rpc: cannot connect to {address}: ")),
            "{command:?}: {stderr}"
        );
    }
    let (status, _, stderr) = rpc(&["call", "tcp:127.0.0.1", "version"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.starts_with("rpc: invalid address"), "{stderr}");
}

#[test]
fn a_silent_server_times_out_with_exit_2() {
    // Accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("tcp:{}", silent.local_addr().unwrap());
    let (status, stdout, stderr) = rpc(&["--timeout", "0.2", "call", &address, "version"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stdout, "");
    assert_eq!(stderr, "rpc: no reply to version within 0.2 s\n");
    let (status, _, stderr) = rpc(&["--timeout", "0.2", "listen", &address]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr, "rpc: no reply to rpc.subscribe within 0.2 s\n");
}

#[cfg(unix)]
#[test]
fn rpc_call_works_over_a_unix_socket() {
    let server = ServerProcess::unix();
    assert_eq!(call_ok(&server, "version", "{}"), json!("nim-timer v0.1.0"));
}

#[test]
fn rpc_describe_prints_the_methods_then_the_cddl() {
    let server = ServerProcess::tcp();
    let (status, stdout, stderr) = rpc(&["describe", &server.address]);
    assert!(status.success(), "{stderr}");
    let mut conn = server.connect();
    let (_, body) = conn.call_raw(b"rpc.describe", &cbor(&map([])));
    let wire: Description = rpc_core::wire::cbor::from_slice(&body).unwrap();
    assert_eq!(wire.events, ["on_echo_fired", "on_job_scheduled"]);
    let events = "events:\n  on_echo_fired\n  on_job_scheduled\n";
    assert_eq!(
        stdout,
        format!(
            "methods:\n  complex(req)\n  echo(req)\n  rpc.cancel(id)\n  \
             rpc.describe()\n  rpc.hello(features)\n  rpc.subscribe(events)\n  rpc.unsubscribe(events)\n  \
             schedule(job, retry, schedule)\n  version()\n{events}\n{}\n",
            wire.cddl.trim_end()
        )
    );
}

#[test]
fn rpc_help_shows_examples() {
    let (status, stdout, _) = rpc(&["--help"]);
    assert!(status.success());
    assert!(
        stdout.contains("Examples:\n  rpc call tcp:127.0.0.1:9099 version\n"),
        "{stdout}"
    );
    assert!(stdout.contains("base64url"), "{stdout}");
}

/// A running `rpc listen`, its stdout and stderr lines; killed when dropped.
struct Listener {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Listener {
    fn start(args: &[&str]) -> Listener {
        let mut child = Command::new(binary("rpc"))
            .arg("listen")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rpc starts");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Listener {
            child,
            stdout,
            stderr,
        }
    }

    fn next(lines: &Receiver<String>) -> String {
        lines.recv_timeout(PATIENCE).expect("a line")
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn rpc_listen_prints_each_event_as_a_json_line() {
    let server = ServerProcess::tcp();
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut listener = Listener::start(&[&server.address, "on_echo_fired"]);
    // The subscription is in force once its reply is reported.
    assert_eq!(
        Listener::next(&listener.stderr),
        r#"rpc: rpc.subscribe: {"subscribed":["on_echo_fired"]}"#
    );
    call_ok(
        &server,
        "echo",
        r#"{"req": {"message": "one", "delayMs": 0}}"#,
    );
    call_ok(
        &server,
        "schedule",
        r#"{"job": {"name": "j", "payload": [], "priority": 1},
            "retry": {"maxAttempts": 1, "backoffMs": 0, "retryOn": []},
            "schedule": {"startAtMs": 0, "intervalMs": 0}}"#,
    );
    call_ok(
        &server,
        "echo",
        r#"{"req": {"message": "two", "delayMs": 0}}"#,
    );
    // Only the event subscribed to, in firing order, one JSON line each.
    assert_eq!(
        Listener::next(&listener.stdout),
        r#"{"eventType":"on_echo_fired","payload":{"message":"one","echoCount":1}}"#
    );
    assert_eq!(
        Listener::next(&listener.stdout),
        r#"{"eventType":"on_echo_fired","payload":{"message":"two","echoCount":1}}"#
    );
    #[cfg(unix)]
    {
        // Ctrl-C ends it normally.
        let pid = listener.child.id().to_string();
        let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(killed.success());
        let status = listener.child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn rpc_listen_without_names_gets_every_event() {
    let server = ServerProcess::tcp();
    let listener = Listener::start(&[&server.address]);
    assert_eq!(
        Listener::next(&listener.stderr),
        r#"rpc: rpc.subscribe: {"subscribed":["on_echo_fired","on_job_scheduled"]}"#
    );
    call_ok(
        &server,
        "schedule",
        r#"{"job": {"name": "j", "payload": [], "priority": 1},
            "retry": {"maxAttempts": 1, "backoffMs": 0, "retryOn": []},
            "schedule": {"startAtMs": 0, "intervalMs": 1000}}"#,
    );
    assert_eq!(
        Listener::next(&listener.stdout),
        r#"{"eventType":"on_job_scheduled","payload":{"jobId":"ipc-server:j","willRunCount":60}}"#
    );
}

#[test]
fn rpc_listen_to_an_unknown_event_exits_1() {
    let server = ServerProcess::tcp();
    let (status, stdout, stderr) = rpc(&["listen", &server.address, "on_echo_fired", "nope"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr, "rpc.subscribe: unknown event: nope\n");
}
