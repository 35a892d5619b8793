//! The bodies of the fuzz targets in `fuzz/`, here so that the normal test
//! suite replays their corpora without cargo-fuzz (`tests/fuzz_corpus.rs`).
//!
//! Each function takes the fuzzer's bytes and panics when a promise of the
//! runtime is broken: that panic is what the fuzzer reports as a crash.

use std::cell::RefCell;
use std::sync::OnceLock;

use bytes::BytesMut;
use rpc_core::registry::Call;
use rpc_core::registry::Registry;
use rpc_core::wire::Reply;
use rpc_core::wire::{encode_request, RequestCodec, DEFAULT_MAX_FRAME};
use rpc_core::Context;
use tokio_util::codec::Decoder;

/// A fuzz target's body: takes the fuzzer's bytes, panics on a broken promise.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: the `fuzz/fuzz_targets/NAME.rs` files and the
/// `fuzz/corpus/NAME` folders.
pub const TARGETS: [(&str, Target); 2] = [
    ("frame_decoder", decode_frames),
    ("method_args", call_method),
];

/// The frame decoder fed `data[1..]` in chunks. `data[0]` picks the limit
/// (low 2 bits: 4 MiB, 64, 1 or 0 bytes) and the chunk size (the other 6
/// bits, plus 1).
///
/// Checks that the decoder never panics, never grows the read buffer,
/// yields exactly the frames of the input in order (re-encoding them gives
/// the input back), asks for more bytes only when no whole frame is
/// buffered, and refuses only a header over the limit.
pub fn decode_frames(data: &[u8]) {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let max_frame = [DEFAULT_MAX_FRAME, 64, 1, 0][usize::from(knobs & 3)];
    let chunk = usize::from(knobs >> 2) + 1;
    let mut codec = RequestCodec::new(max_frame);
    let mut buf = BytesMut::new();
    let mut decoded = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let (len, capacity) = (buf.len(), buf.capacity());
            let result = codec.decode(&mut buf);
            assert!(
                buf.capacity() <= capacity,
                "the decoder grew the buffer from {capacity} to {}",
                buf.capacity()
            );
            match result {
                Ok(Some(request)) => {
                    let size = request.method.len() + request.payload.len();
                    assert!(size <= max_frame, "a frame of {size} over {max_frame}");
                    assert_eq!(len - buf.len(), 8 + size, "consumed one whole frame");
                    encode_request(&request.method, &request.payload, &mut decoded);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), len, "nothing consumed without a frame");
                    assert!(
                        reference_frame_len(&buf, max_frame).is_none(),
                        "asked for more with a whole frame buffered"
                    );
                    break;
                }
                Err(_) => {
                    assert!(
                        over_limit(&buf, max_frame),
                        "refused a header within the limit: {:02x?}",
                        &buf[..buf.len().min(16)]
                    );
                    assert_eq!(&decoded[..], &input[..decoded.len()]);
                    return;
                }
            }
        }
    }
    assert_eq!(
        &decoded[..],
        &input[..decoded.len()],
        "frames re-encode to the input"
    );
    assert_eq!(decoded.len() + buf.len(), input.len(), "no byte lost");
}

fn header(buf: &[u8], at: usize) -> Option<u64> {
    let word = buf.get(at..at + 4)?;
    Some(u64::from(u32::from_be_bytes([
        word[0], word[1], word[2], word[3],
    ])))
}

/// The length of the whole, acceptable frame at the start of `buf`, if any.
fn reference_frame_len(buf: &[u8], max_frame: usize) -> Option<usize> {
    let method = header(buf, 0)?;
    let payload = header(buf, usize::try_from(4 + method).ok()?)?;
    let total = usize::try_from(8 + method + payload).ok()?;
    (method + payload <= max_frame as u64 && buf.len() >= total).then_some(total)
}

/// Whether the header at the start of `buf` announces more than the limit
/// (as far as it has arrived).
fn over_limit(buf: &[u8], max_frame: usize) -> bool {
    let max = max_frame as u64;
    let Some(method) = header(buf, 0) else {
        return false;
    };
    if method > max {
        return true;
    }
    usize::try_from(4 + method)
        .ok()
        .and_then(|at| header(buf, at))
        .is_some_and(|payload| method + payload > max)
}

/// The context a served timer has.
fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| Context::new().with(my_timer::Timer::new("ipc-server")))
}

thread_local! {
    // One runtime per thread, with time paused: an `echo` asking for a
    // delay of years finishes at once.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn run_call(future: rpc_core::registry::CallFuture) -> Reply {
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(future)
    })
}

/// A request `[n][n bytes of method name][payload]` handed to the registry
/// of every `#[remote]` function linked in (the timer's), the way the server
/// does, and run to its reply.
///
/// Checks that no payload panics a handler (a panic caught by the registry
/// shows as an `internal error` reply, which fails here too), that every
/// reply is well-formed, and that a registered name never gets
/// `unknown method`.
pub fn call_method(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (name, payload) = rest.split_at(usize::from(n).min(rest.len()));
    let registry = Registry::global().expect("no two methods share a name");
    let (method, call) = registry.call(context(), name, payload);
    let reply = match call {
        Call::Ready(reply) => reply,
        Call::Pending(future) => run_call(future),
    };
    assert_well_formed(&reply);
    // The registry's and the generated code's own failures read
    // `NAME: internal error: ...`.
    let text = String::from_utf8_lossy(&reply.body);
    let internal = format!("{}: internal error", String::from_utf8_lossy(name));
    assert!(
        reply.status == 0 || !text.starts_with(&internal),
        "a handler failed inside: {text}"
    );
    match method {
        Some(method) => assert_eq!(method.name.as_bytes(), name),
        None => assert_eq!(
            reply,
            Reply::error(format!("unknown method: {}", String::from_utf8_lossy(name)))
        ),
    }
}

/// A reply as the contract shapes it: status 0 with exactly one CBOR item,
/// or status 1 with non-empty UTF-8 text.
pub fn assert_well_formed(reply: &Reply) {
    match reply.status {
        0 => {
            let mut rest = &reply.body[..];
            let item = ciborium::de::from_reader::<ciborium::Value, _>(&mut rest);
            assert!(
                item.is_ok() && rest.is_empty(),
                "status 0 with a body that is not one CBOR item: {:02x?}",
                reply.body
            );
        }
        1 => {
            assert!(!reply.body.is_empty(), "status 1 with an empty body");
            assert!(
                std::str::from_utf8(&reply.body).is_ok(),
                "status 1 with a body that is not UTF-8: {:02x?}",
                reply.body
            );
        }
        other => panic!("status {other}"),
    }
}

/// The contract's valid requests, `(method, CBOR payload)`: the reference
/// exchange and one call of each method, the seeds of both corpora.
pub fn contract_requests() -> Vec<(&'static str, Vec<u8>)> {
    use crate::{cbor, echo_args, map, texts, Value};
    let complex = map([(
        "req",
        map([
            (
                "messages",
                Value::Array(vec![map([("message", "a".into()), ("delayMs", 0.into())])]),
            ),
            ("tags", texts(&["x", "y"])),
            ("note", "hi".into()),
            ("retries", Value::Null),
        ]),
    )]);
    let schedule = map([
        (
            "job",
            map([
                ("name", "nightly".into()),
                ("payload", texts(&["a", "b"])),
                ("priority", 3.into()),
            ]),
        ),
        (
            "retry",
            map([
                ("maxAttempts", 5.into()),
                ("backoffMs", 250.into()),
                ("retryOn", texts(&["timeout"])),
            ]),
        ),
        (
            "schedule",
            map([
                ("startAtMs", 1_000_000.into()),
                ("intervalMs", 7000.into()),
                ("jitter", 15.into()),
            ]),
        ),
    ]);
    vec![
        ("version", vec![0xa0]),
        ("echo", cbor(&echo_args("hello over the wire", 5))),
        ("complex", cbor(&complex)),
        ("schedule", cbor(&schedule)),
    ]
}

/// The checked-in seed files: `(target, file name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let requests = contract_requests();
    let mut seeds = Vec::new();
    let mut pipeline = vec![0xfc];
    for (method, payload) in &requests {
        let mut frame = BytesMut::new();
        encode_request(method.as_bytes(), payload, &mut frame);
        pipeline.extend_from_slice(&frame);
        // Fed a byte at a time, under the default limit.
        let mut data = vec![0x00];
        data.extend_from_slice(&frame);
        seeds.push(("frame_decoder", format!("seed-{method}"), data));
        let mut data = vec![u8::try_from(method.len()).unwrap_or(u8::MAX)];
        data.extend_from_slice(method.as_bytes());
        data.extend_from_slice(payload);
        seeds.push(("method_args", format!("seed-{method}"), data));
    }
    // Every request pipelined, fed in chunks of 64 bytes.
    seeds.push(("frame_decoder", "seed-pipeline".to_owned(), pipeline));
    seeds
}
