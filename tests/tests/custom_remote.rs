//! A `#[remote]` function written here, in a crate the runtime knows nothing
//! of, is callable through the generic server with no other code: the
//! registry finds it, the server passes its context, and its panics and
//! errors become status 1 replies.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};

use rpc_core::registry::Registry;
use rpc_core::server::{Bound, Config, Server};
use rpc_core::{remote, Context};
use tests::{cbor, decode, frame, map, Conn, Value};

/// A context of this test crate.
pub struct Counter(AtomicI64);

/// Adds `amount` to the counter and returns the new total.
#[remote]
pub async fn add(counter: &Counter, amount: i64) -> i64 {
    counter.0.fetch_add(amount, Ordering::SeqCst) + amount
}

/// Divides, refusing zero.
#[remote(name = "math.div")]
pub async fn div(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by {b}"))
}

/// How many `later` calls run at once, and the most there ever were.
#[derive(Default)]
pub struct Gauge {
    now: AtomicI64,
    most: AtomicI64,
}

/// Returns `n` after yielding once, so that it is still running when its
/// connection could read the next request.
#[remote]
pub async fn later(gauge: &Gauge, n: i64) -> i64 {
    let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.most.fetch_max(now, Ordering::SeqCst);
    tokio::task::yield_now().await;
    gauge.now.fetch_sub(1, Ordering::SeqCst);
    n
}

/// Always panics.
#[remote]
pub async fn boom(after: Option<i64>) -> i64 {
    if after.is_some() {
        tokio::task::yield_now().await;
    }
    panic!("kaboom")
}

/// A server in this process, on its own runtime thread; stops when dropped.
struct InProcess {
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(context: Context, config: Config) -> Self {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                // Unchecked on purpose: some tests leave a context type out.
                let server =
                    Server::with_registry(Registry::global().unwrap(), context).with_config(config);
                let listener = Bound::bind(&"tcp:127.0.0.1:0".parse().unwrap())
                    .await
                    .unwrap();
                ready_tx.send(listener.local_address().to_string()).unwrap();
                server
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        InProcess {
            address: ready_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[test]
fn the_registry_holds_every_linked_function() {
    // Naming the timer crate links it, and its procs register with ours.
    let _ = my_timer::VERSION;
    let registry = Registry::global().unwrap();
    let names: Vec<_> = registry
        .methods()
        .iter()
        .map(|m| (m.name, m.params))
        .collect();
    assert_eq!(
        names,
        [
            ("add", &["amount"][..]),
            ("boom", &["after"]),
            ("complex", &["req"]),
            ("echo", &["req"]),
            ("later", &["n"]),
            ("math.div", &["a", "b"]),
            // The built-in, registered by rpc-core itself.
            ("rpc.describe", &[]),
            ("schedule", &["job", "retry", "schedule"]),
            ("version", &[]),
        ]
    );
    assert_eq!(
        registry.get(b"math.div").unwrap().path,
        "custom_remote::div"
    );
}

#[test]
fn a_new_function_is_callable_remotely_with_its_context() {
    let server = InProcess::start(
        Context::new().with(Counter(AtomicI64::new(40))),
        Config::default(),
    );
    let mut conn = Conn::connect(&server.address);
    assert_eq!(
        conn.call("add", &map([("amount", 2.into())])),
        Ok(42.into())
    );
    assert_eq!(
        conn.call("add", &map([("amount", (-50).into())])),
        Ok((-8).into())
    );
    assert_eq!(
        conn.call("math.div", &map([("a", 9.into()), ("b", 2.into())])),
        Ok(4.into())
    );
    assert_eq!(
        conn.call("math.div", &map([("a", 9.into()), ("b", 0.into())])),
        Err("cannot divide 9 by 0".into())
    );
    assert_eq!(
        conn.call("div", &map([])),
        Err("unknown method: div".into())
    );
    // The timer's procs are served by the same generic server.
    assert_eq!(
        conn.call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn a_panicking_handler_answers_status_1_and_the_server_goes_on() {
    let server = InProcess::start(Context::new(), Config::default());
    let mut conn = Conn::connect(&server.address);
    assert_eq!(
        conn.call("boom", &map([])),
        Err("boom: internal error: kaboom".into())
    );
    // A panic after the first poll, too.
    assert_eq!(
        conn.call("boom", &map([("after", 1.into())])),
        Err("boom: internal error: kaboom".into())
    );
    assert_eq!(
        conn.call("math.div", &map([("a", 1.into()), ("b", 1.into())])),
        Ok(1.into())
    );
    assert_eq!(
        Conn::connect(&server.address).call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn a_missing_context_is_an_internal_error_not_a_crash() {
    let server = InProcess::start(Context::new(), Config::default());
    let mut conn = Conn::connect(&server.address);
    assert_eq!(
        conn.call("add", &map([("amount", 1.into())])),
        Err(
            "add: internal error: the server holds no context of type custom_remote::Counter"
                .into()
        )
    );
    assert_eq!(
        conn.call("echo", &tests::echo_args("x", 0)),
        Err("echo: internal error: the server holds no context of type my_timer::Timer".into())
    );
}

#[test]
fn the_in_flight_bounds_pause_reading_instead_of_failing() {
    for (what, config, at_most_one) in [
        ("max_in_flight 1", Config::default().max_in_flight(1), true),
        (
            "max_in_flight_bytes 1",
            Config::default().max_in_flight_bytes(1),
            true,
        ),
        ("the defaults", Config::default(), false),
    ] {
        let gauge = Arc::new(Gauge::default());
        let mut context = Context::new();
        context.insert(Arc::clone(&gauge));
        let server = InProcess::start(context, config);
        let mut conn = Conn::connect(&server.address);
        let mut batch = Vec::new();
        for n in 0..200 {
            batch.extend(frame(b"later", &cbor(&map([("n", n.into())]))));
        }
        conn.send_raw(&batch);
        for n in 0..200 {
            assert_eq!(conn.recv(), (0, cbor(&Value::from(n))), "{what}");
        }
        let most = gauge.most.load(Ordering::SeqCst);
        if at_most_one {
            assert_eq!(most, 1, "{what}: the bound let calls run together");
        } else {
            assert!(
                most > 1,
                "{what}: calls of one connection ran one at a time"
            );
        }
        assert_eq!(
            decode(&conn.call_raw(b"version", &[0xa0]).1),
            Value::from("nim-timer v0.1.0")
        );
    }
}
