//! The typed client: the stubs `#[remote]` generates, over a pipelined
//! `rpc_core::Client`, against the real `serve_host` over real sockets.
//! Every timer method through its stub (the refused jobs as status 1
//! texts), a thousand concurrent calls sharing one connection, a server that
//! dies mid-call, a timeout, and the `typed_client` example.

use std::future::Future;
use std::time::Duration;

use my_timer::{
    ComplexRemote, ComplexReply, ComplexRequest, EchoRemote, EchoReply, EchoRequest, JobSpec,
    RetryPolicy, ScheduleConfig, ScheduleRemote, ScheduleReply, VersionRemote,
};
use rpc_core::{CallError, Client};
use tests::{ServerProcess, PATIENCE};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn echo_request(message: &str, delay_ms: i64) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        delay_ms,
    }
}

fn job(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        payload: vec!["a".into()],
        priority: 3,
    }
}

fn retry(max_attempts: i64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff_ms: 250,
        retry_on: vec!["io".into()],
    }
}

fn schedule_config(interval_ms: i64, jitter: Option<i64>) -> ScheduleConfig {
    ScheduleConfig {
        start_at_ms: 1_000_000,
        interval_ms,
        jitter,
    }
}

fn status_text<T: std::fmt::Debug>(result: Result<T, CallError>) -> String {
    match result {
        Err(CallError::Status(text)) => text,
        other => panic!("expected a status 1 text, got {other:?}"),
    }
}

async fn every_method(address: &str) {
    let client = Client::connect(address).await.expect("connects");
    assert_eq!(client.version().await.unwrap(), "nim-timer v0.1.0");
    assert_eq!(
        client.echo(echo_request("typed", 3)).await.unwrap(),
        EchoReply {
            echoed: "typed".into(),
            timer_name: "ipc-server".into(),
        }
    );
    let complex = |note: Option<&str>, retries| ComplexRequest {
        messages: vec![echo_request("a", 0), echo_request("b", 1)],
        tags: vec!["t".into()],
        note: note.map(str::to_owned),
        retries,
    };
    assert_eq!(
        client.complex(complex(Some("n"), Some(4))).await.unwrap(),
        ComplexReply {
            summary: "received 2 messages, note=n, retries=4".into(),
            item_count: 2,
            has_note: true,
        }
    );
    assert_eq!(
        client.complex(complex(None, None)).await.unwrap(),
        ComplexReply {
            summary: "received 2 messages, note=<none>, retries=0".into(),
            item_count: 2,
            has_note: false,
        }
    );
    assert_eq!(
        client
            .schedule(job("j"), retry(2), schedule_config(7000, Some(5)))
            .await
            .unwrap(),
        ScheduleReply {
            job_id: "ipc-server:j".into(),
            will_run_count: 8,
            first_run_at_ms: 1_000_005,
            effective_backoff_ms: 250,
        }
    );
    // The contract's errors, in its order, as status 1 texts.
    let empty = client.schedule(job(""), retry(0), schedule_config(1, None));
    assert_eq!(status_text(empty.await), "job name must not be empty");
    let no_attempts = client.schedule(job("j"), retry(0), schedule_config(1, None));
    assert_eq!(
        status_text(no_attempts.await),
        "retry.maxAttempts must be positive"
    );
    // The connection is still good after the errors.
    assert_eq!(client.version().await.unwrap(), "nim-timer v0.1.0");
}

#[test]
fn every_method_through_its_stub_over_tcp() {
    let server = ServerProcess::tcp();
    block_on(every_method(&server.address));
}

#[cfg(unix)]
#[test]
fn every_method_through_its_stub_over_a_unix_socket() {
    let server = ServerProcess::unix();
    block_on(every_method(&server.address));
}

#[test]
fn a_thousand_concurrent_calls_share_one_connection() {
    let server = ServerProcess::tcp();
    block_on(async {
        let client = Client::connect(&server.address).await.unwrap();
        let calls: Vec<_> = (0..1000)
            .map(|i| {
                let client = client.clone();
                // Varied delays: handlers finish out of order, replies do not.
                tokio::spawn(async move {
                    let message = format!("call {i}");
                    let reply = client.echo(echo_request(&message, i % 7)).await;
                    (message, reply)
                })
            })
            .collect();
        for call in calls {
            let (message, reply) = call.await.unwrap();
            assert_eq!(reply.unwrap().echoed, message);
        }
    });
}

#[test]
fn a_server_that_dies_mid_call_fails_the_pending_calls() {
    let server = ServerProcess::tcp();
    let runtime = runtime();
    // A timeout well past the test's patience would show up as a Timeout.
    let client = runtime
        .block_on(Client::connect(&server.address))
        .unwrap()
        .with_timeout(PATIENCE);
    let pending: Vec<_> = (0..5)
        .map(|i| {
            let client = client.clone();
            runtime.spawn(async move {
                client
                    .echo(echo_request(&format!("never {i}"), 60_000))
                    .await
            })
        })
        .collect();
    for _ in 0..5 {
        server.wait_for_log(&["request started", "method=echo"]);
    }
    drop(server); // kills the process
    for call in pending {
        match runtime.block_on(call).unwrap() {
            Err(CallError::Closed) => {}
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    let later = runtime.block_on(client.version());
    assert!(matches!(later, Err(CallError::Closed)), "{later:?}");
    assert!(client.is_closed());
}

#[test]
fn a_timed_out_call_leaves_the_connection_usable() {
    let server = ServerProcess::tcp();
    block_on(async {
        let client = Client::connect(&server.address).await.unwrap();
        let impatient = client.clone().with_timeout(Duration::from_millis(50));
        match impatient.echo(echo_request("slow", 1000)).await {
            Err(CallError::Timeout(after)) => assert_eq!(after, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // The slow reply arrives first and is discarded; each later call
        // still gets its own reply, on the same connection.
        let later: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(
                    async move { client.echo(echo_request(&format!("after {i}"), 0)).await },
                )
            })
            .collect();
        for (i, call) in later.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap().echoed, format!("after {i}"));
        }
        assert_eq!(impatient.version().await.unwrap(), "nim-timer v0.1.0");
    });
}

#[test]
fn unknown_addresses_and_refused_connections_are_errors() {
    block_on(async {
        let err = Client::connect("udp:1.2.3.4:5").await.unwrap_err();
        assert!(
            matches!(err, rpc_core::Error::InvalidAddress { .. }),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("unix:{}", dir.path().join("none.sock").display());
        let err = Client::connect(&missing).await.unwrap_err();
        if cfg!(unix) {
            assert!(matches!(err, rpc_core::Error::Connect { .. }), "{err}");
            assert!(
                err.to_string().starts_with("cannot connect to unix:"),
                "{err}"
            );
        } else {
            assert!(matches!(err, rpc_core::Error::UnixUnsupported(_)), "{err}");
        }
    });
}

const EXAMPLE_OUTPUT: &str = "\
[typed_client] version  -> \"nim-timer v0.1.0\"
[typed_client] echo     -> EchoReply { echoed: \"hello through a stub\", timer_name: \"ipc-server\" }
[typed_client] complex  -> ComplexReply { summary: \"received 2 messages, note=no hand-written CBOR, retries=0\", item_count: 2, has_note: true }
[typed_client] schedule -> ScheduleReply { job_id: \"ipc-server:nightly\", will_run_count: 4, first_run_at_ms: 1000250, effective_backoff_ms: 500 }
[typed_client] schedule (empty name)    -> refused: job name must not be empty
[typed_client] schedule (maxAttempts 0) -> refused: retry.maxAttempts must be positive
";

#[test]
fn the_typed_client_example_over_tcp() {
    let server = ServerProcess::tcp();
    let (status, stdout, stderr) = tests::run(&tests::binary("typed_client"), &[&server.address]);
    assert!(status.success(), "typed_client failed: {stderr}");
    assert_eq!(stdout, EXAMPLE_OUTPUT);
}

#[cfg(unix)]
#[test]
fn the_typed_client_example_over_a_unix_socket() {
    let server = ServerProcess::unix();
    let (status, stdout, stderr) = tests::run(&tests::binary("typed_client"), &[&server.address]);
    assert!(status.success(), "typed_client failed: {stderr}");
    assert_eq!(stdout, EXAMPLE_OUTPUT);
}

#[test]
fn the_typed_client_example_links_no_server() {
    // Built on its own, its rpc-core has only `client` and its timer no `serve`.
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "typed_client",
            "-e",
            "features",
            "--prefix",
            "none",
        ])
        .current_dir(tests::workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("rpc-core feature \"client\""), "{tree}");
    for feature in [
        "rpc-core feature \"server\"",
        "rpc-core feature \"default\"",
        "timer feature \"serve\"",
    ] {
        assert!(!tree.contains(feature), "{feature} is enabled:\n{tree}");
    }
}
