//! Each timer method's server-side cost: decode the payload, call the
//! function, encode the reply and its frame, as `Registry::call` does it.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use rpc_core::registry::Call;
use rpc_core::registry::Registry;
use rpc_core::wire::encode_response;
use rpc_core::wire::Reply;
use rpc_core::Context;

/// The contract's valid payloads, as a client sends them.
pub(crate) fn payloads() -> [(&'static str, Vec<u8>); 4] {
    use ciborium::Value as V;
    let m = |e: Vec<(&str, V)>| V::Map(e.into_iter().map(|(k, v)| (k.into(), v)).collect());
    let echo = || {
        m(vec![
            ("message", "hello over the wire".into()),
            ("delayMs", 0.into()),
        ])
    };
    let texts = |t: &[&str]| V::Array(t.iter().map(|s| (*s).into()).collect());
    let cbor = |v: V| {
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out).unwrap();
        out
    };
    [
        ("version", vec![0xa0]),
        ("echo", cbor(m(vec![("req", echo())]))),
        (
            "complex",
            cbor(m(vec![(
                "req",
                m(vec![
                    ("messages", V::Array(vec![echo(), echo(), echo()])),
                    ("tags", texts(&["a", "b"])),
                    ("note", "n".into()),
                    ("retries", 2.into()),
                ]),
            )])),
        ),
        (
            "schedule",
            cbor(m(vec![
                (
                    "job",
                    m(vec![
                        ("name", "nightly".into()),
                        ("payload", texts(&["x"])),
                        ("priority", 1.into()),
                    ]),
                ),
                (
                    "retry",
                    m(vec![
                        ("maxAttempts", 3.into()),
                        ("backoffMs", 250.into()),
                        ("retryOn", texts(&["io"])),
                    ]),
                ),
                (
                    "schedule",
                    m(vec![
                        ("startAtMs", 1000.into()),
                        ("intervalMs", 7000.into()),
                        ("jitter", V::Null),
                    ]),
                ),
            ])),
        ),
    ]
}

/// One request through the dispatch path, polled to completion (every
/// benchmarked call finishes at its first poll).
pub(crate) fn serve_one(
    registry: &Registry,
    ctx: &Context,
    method: &str,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let reply: Reply = match registry.call(ctx, method.as_bytes(), payload).1 {
        Call::Ready(reply) => reply,
        Call::Pending(future) => {
            let mut cx = TaskContext::from_waker(Waker::noop());
            match pin!(future).as_mut().poll(&mut cx) {
                Poll::Ready(reply) => reply,
                Poll::Pending => panic!("{method} did not finish at once"),
            }
        }
    };
    assert_eq!(
        reply.status,
        0,
        "{method}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    encode_response(reply.status, &reply.body, out);
}

fn methods(c: &mut Criterion) {
    let registry = Registry::global().unwrap();
    let ctx = Context::new().with(my_timer::Timer::new("ipc-server"));
    let mut group = c.benchmark_group("method");
    let mut out = BytesMut::with_capacity(4096);
    for (method, payload) in payloads() {
        group.bench_function(format!("{method}: decode + call + encode"), |b| {
            b.iter(|| {
                out.clear();
                serve_one(registry, &ctx, method, black_box(&payload), &mut out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, methods);
criterion_main!(benches);
