//! Per-stage micro-benchmarks of the runtime: frame decoding and method
//! dispatch (lookup, and the unknown-method reply).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rpc_core::registry::Registry;
use rpc_core::registry::{Call, Method};
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

fn ready(_: &Context, _: &[u8]) -> Call {
    Call::Ready(Reply::ok(vec![0xf6]))
}

static METHODS: [Method; 6] = [
    Method {
        name: "version",
        params: &[],
        path: "b::version",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
    },
    Method {
        name: "echo",
        params: &["req"],
        path: "b::echo",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
    },
    Method {
        name: "complex",
        params: &["req"],
        path: "b::complex",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
    },
    Method {
        name: "schedule",
        params: &["job", "retry", "schedule"],
        path: "b::schedule",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
    },
    Method {
        name: "math.add",
        params: &["a", "b"],
        path: "b::add",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
    },
    Method {
        name: "math.sub",
        params: &["a", "b"],
        path: "b::sub",
        handler: ready,
        types: rpc_core::schema::Types::untyped,
        borrows: None,
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

criterion_group!(benches, frame_decode, dispatch);
criterion_main!(benches);
