//! Events in Rust: `Client::subscribe` on the same connection as the typed
//! calls, against the real `serve_host`; and, in one process, a server and
//! an in-process listener of the same hub receiving the same event.

use std::future::Future;

use futures_util::{FutureExt, StreamExt};
use my_timer::{
    EchoFired, EchoRemote, EchoRequest, JobScheduled, JobSpec, RetryPolicy, ScheduleConfig,
    ScheduleRemote, Timer, VersionRemote,
};
use rpc_core::server::{Bound, Server};
use rpc_core::{CallError, Client, Context};
use tests::ServerProcess;

/// An event this test program declares and the timer's server does not know.
#[rpc_core::event("not_served_here")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct NotServedHere {}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn echo_request(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        delay_ms: 0,
    }
}

fn fired(message: &str) -> EchoFired {
    EchoFired {
        message: message.into(),
        echo_count: 1,
    }
}

#[test]
fn a_typed_subscription_receives_events_alongside_the_calls() {
    let server = ServerProcess::tcp();
    block_on(async {
        let client = Client::connect(&server.address).await.unwrap();
        let mut echoes = client.subscribe::<EchoFired>().await.unwrap();
        client.echo(echo_request("one")).await.unwrap();
        // The event came before the reply: it is waiting already.
        let waiting = echoes.next().now_or_never();
        let event = waiting.expect("the event is routed before the reply is handed over");
        assert_eq!(event.unwrap().unwrap(), fired("one"));

        let mut jobs = client.subscribe::<JobScheduled>().await.unwrap();
        let job = JobSpec {
            name: "j".into(),
            payload: vec![],
            priority: 0,
        };
        let retry = RetryPolicy {
            max_attempts: 1,
            backoff_ms: 0,
            retry_on: vec![],
        };
        let schedule = ScheduleConfig {
            start_at_ms: 0,
            interval_ms: 30_000,
            jitter: None,
        };
        client.schedule(job, retry, schedule).await.unwrap();
        let event = jobs.next().now_or_never().expect("waiting already");
        assert_eq!(
            event.unwrap().unwrap(),
            JobScheduled {
                job_id: "ipc-server:j".into(),
                will_run_count: 2,
            }
        );

        // Concurrent calls: every event arrives once.
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.echo(echo_request(&format!("c{i}"))).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let mut got: Vec<String> = Vec::new();
        for _ in 0..100 {
            got.push(echoes.next().await.unwrap().unwrap().message);
        }
        got.sort();
        let mut want: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(echoes.dropped(), 0);
        assert!(echoes.next().now_or_never().is_none(), "nothing more");

        // Dropping unsubscribes; the unawaited reply keeps later replies matched.
        drop(echoes);
        assert_eq!(client.version().await.unwrap(), "nim-timer v0.1.0");
        client.echo(echo_request("unheard")).await.unwrap();
        let mut again = client.subscribe::<EchoFired>().await.unwrap();
        client.echo(echo_request("heard")).await.unwrap();
        assert_eq!(again.next().await.unwrap().unwrap(), fired("heard"));

        let err = client.subscribe::<NotServedHere>().await.unwrap_err();
        assert!(
            matches!(&err, CallError::Status(text) if text == "rpc.subscribe: unknown event: not_served_here"),
            "{err}"
        );
        // Calls go on after the refusal.
        assert_eq!(client.version().await.unwrap(), "nim-timer v0.1.0");
    });
}

#[test]
fn a_subscription_ends_when_the_connection_closes() {
    let server = ServerProcess::tcp();
    block_on(async {
        let client = Client::connect(&server.address).await.unwrap();
        let mut echoes = client.subscribe::<EchoFired>().await.unwrap();
        drop(server);
        assert!(echoes.next().await.is_none());
        assert!(matches!(client.version().await, Err(CallError::Closed)));
    });
}

#[test]
fn an_in_process_listener_and_a_remote_subscriber_share_the_hub() {
    block_on(async {
        let timer = Timer::new("in-process");
        let mut local = timer.events().listen::<EchoFired>();
        let context = Context::new().with(timer.events().clone()).with(timer);
        let server = Server::new(context).unwrap();
        let listener = Bound::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = Client::connect_to(listener.local_address()).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));

        let mut remote = client.subscribe::<EchoFired>().await.unwrap();
        let reply = client.echo(echo_request("both")).await.unwrap();
        assert_eq!(reply.timer_name, "in-process");
        // The same typed value, one cloned in-process, one over CBOR.
        assert_eq!(local.next().await, Some(fired("both")));
        assert_eq!(remote.next().await.unwrap().unwrap(), fired("both"));
        assert_eq!(local.dropped(), 0);

        drop((remote, client));
        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    });
}

/// What `examples/typed_client/src/bin/typed_events.rs` prints: each event
/// before the reply of the call that fired it.
const EXAMPLE_OUTPUT: &str = r#"[typed_events] subscribed to on_echo_fired and on_job_scheduled
[typed_events] event on_echo_fired    <- EchoFired { message: "hello, subscriber", echo_count: 1 }
[typed_events] reply echo             <- EchoReply { echoed: "hello, subscriber", timer_name: "ipc-server" }
[typed_events] event on_job_scheduled <- JobScheduled { job_id: "ipc-server:nightly", will_run_count: 4 }
[typed_events] reply schedule         <- ScheduleReply { job_id: "ipc-server:nightly", will_run_count: 4, first_run_at_ms: 0, effective_backoff_ms: 500 }
"#;

#[test]
fn the_typed_events_example() {
    let server = ServerProcess::tcp();
    let (status, stdout, stderr) = tests::run(&tests::binary("typed_events"), &[&server.address]);
    assert!(status.success(), "typed_events failed: {stderr}");
    assert_eq!(stdout, EXAMPLE_OUTPUT);
}
