//! Per-stage micro-benchmarks of the runtime: frame decoding, method
//! dispatch (lookup, and the unknown-method reply) and CBOR payloads.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rpc_core::registry::Registry;
use rpc_core::registry::{Call, Method, Scope};
use rpc_core::wire::Reply;
use rpc_core::wire::{encode_request, encode_response, RequestCodec};
use rpc_core::Context;
use tokio_util::codec::Decoder;

fn frame_decode(c: &mut Criterion) {
    let mut batch = BytesMut::new();
    let echo = b"\xa1\x63req\xa2\x67message\x73hello over the wire\x67delayMs\x00";
    for _ in 0..64 {
        encode_request(b"echo", echo, &mut batch);
    }
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(64));
    group.bench_function("decode 64 pipelined echo frames", |b| {
        let mut codec = RequestCodec::default();
        b.iter(|| {
            let mut buf = batch.clone();
            while let Some(request) = codec.decode(&mut buf).unwrap() {
                black_box(request);
            }
        })
    });
    group.bench_function(
        "find 64 pipelined echo frames in place (server path)",
        |b| {
            let codec = RequestCodec::default();
            b.iter(|| {
                let mut at = 0;
                while let Some(frame) = codec.frame(&batch[at..]).unwrap() {
                    black_box((frame.method(&batch[at..]), frame.payload(&batch[at..])));
                    at += frame.len();
                }
            })
        },
    );
    group.bench_function("encode 64 replies", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            for _ in 0..64 {
                encode_response(0, b"\x70nim-timer v0.1.0", &mut out);
            }
            black_box(&out);
        })
    });
    group.finish();
}

fn ready(_: &Scope<'_>, _: &[u8]) -> Call {
    Call::Ready(Reply::ok(vec![0xf6]))
}

static METHODS: [Method; 6] = [
    Method {
        name: "version",
        params: &[],
        path: "b::version",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
    Method {
        name: "echo",
        params: &["req"],
        path: "b::echo",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
    Method {
        name: "complex",
        params: &["req"],
        path: "b::complex",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
    Method {
        name: "schedule",
        params: &["job", "retry", "schedule"],
        path: "b::schedule",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
    Method {
        name: "math.add",
        params: &["a", "b"],
        path: "b::add",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
    Method {
        name: "math.sub",
        params: &["a", "b"],
        path: "b::sub",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: &[],
    },
];

fn dispatch(c: &mut Criterion) {
    let registry: &'static Registry =
        Box::leak(Box::new(Registry::from_methods(&METHODS).unwrap()));
    let ctx = Context::new();
    let mut group = c.benchmark_group("dispatch");
    group.bench_function("lookup and call", |b| {
        b.iter(|| black_box(registry.call(&ctx, black_box(b"schedule"), &[0xa0])))
    });
    group.bench_function("unknown method", |b| {
        b.iter(|| black_box(registry.call(&ctx, black_box(b"nope"), &[0xa0])))
    });
    group.finish();
}

/// The shapes of the timer's `complex` arguments and reply.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Echo {
    message: String,
    delay_ms: i64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complex {
    messages: Vec<Echo>,
    tags: Vec<String>,
    note: Option<String>,
    retries: Option<i64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Args {
    req: Complex,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    summary: String,
    item_count: i64,
    has_note: bool,
}

fn cbor(c: &mut Criterion) {
    let args = Args {
        req: Complex {
            messages: (0..8)
                .map(|i| Echo {
                    message: format!("message number {i}"),
                    delay_ms: i * 1000,
                })
                .collect(),
            tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
            note: Some("a note".into()),
            retries: None,
        },
    };
    let payload = rpc_core::wire::cbor::to_vec(&args).unwrap();
    // {"req": {"messages": [..., {"message": "x", "delayMs": "soon"}], ...}}
    let mut bad = args;
    bad.req.messages.push(Echo {
        message: "x".into(),
        delay_ms: 0,
    });
    let mut bad = rpc_core::wire::cbor::to_vec(&bad).unwrap();
    let at = bad.windows(8).rposition(|w| w == b"\x67delayMs").unwrap() + 8;
    bad[at] = 0x60;
    let reply = Summary {
        summary: "received 8 messages, note=a note, retries=0".into(),
        item_count: 8,
        has_note: true,
    };
    let mut group = c.benchmark_group("cbor");
    group.bench_function("decode complex arguments (8 messages)", |b| {
        b.iter(|| black_box(rpc_core::wire::cbor::from_slice::<Args>(black_box(&payload)).unwrap()))
    });
    group.bench_function("decode failing arguments, with the path", |b| {
        b.iter(|| black_box(rpc_core::wire::cbor::from_slice::<Args>(black_box(&bad)).unwrap_err()))
    });
    group.bench_function("encode complex reply", |b| {
        b.iter(|| black_box(rpc_core::wire::cbor::to_vec(black_box(&reply)).unwrap()))
    });
    group.bench_function("encode complex arguments (8 messages)", |b| {
        let args: Args = rpc_core::wire::cbor::from_slice(&payload).unwrap();
        b.iter(|| black_box(rpc_core::wire::cbor::to_vec(black_box(&args)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, frame_decode, dispatch, cbor);
criterion_main!(benches);
