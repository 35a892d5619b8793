//! Heap allocations per request on the server's dispatch path (decode,
//! call, encode, frame), counted by a global allocator. Prints one line per
//! method; `cargo bench -p timer --bench allocations`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use rpc_core::registry::Registry;
use rpc_core::Context;

#[path = "methods.rs"]
#[allow(dead_code)]
mod methods;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let registry = Registry::global().expect("registry");
    let ctx = Context::new().with(my_timer::Timer::new("ipc-server"));
    let mut out = BytesMut::with_capacity(1 << 16);
    const N: u64 = 10_000;
    println!("allocations per request (dispatch path: decode + call + encode + frame)");
    for (method, payload) in methods::payloads() {
        methods::serve_one(registry, &ctx, method, &payload, &mut out);
        out.clear();
        let (a0, b0) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..N {
            methods::serve_one(registry, &ctx, method, &payload, &mut out);
            out.clear();
        }
        let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - a0) as f64 / N as f64;
        let bytes = (BYTES.load(Ordering::Relaxed) - b0) as f64 / N as f64;
        println!("{method:>9}: {allocs:5.2} allocations, {bytes:7.1} bytes");
    }
}
