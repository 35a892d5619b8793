//! Read buffers of connections waiting for their next request, per thread.
//!
//! tokio reports a new socket readable before any byte arrives, and a
//! connection waits far longer than it reads: a buffer is taken for a read
//! and given back when the read finds nothing, so idle connections hold no
//! buffer and a busy thread reuses a few without allocating.

use std::cell::RefCell;

use bytes::BytesMut;

use super::connection::{KEEP_BUFFER, READ_CHUNK};

/// Buffers kept per thread; more are freed.
const POOLED: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for a read.
pub(super) fn take() -> BytesMut {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
}

/// Returns an empty buffer; a large one is freed instead.
pub(super) fn give(mut buf: BytesMut) {
    if buf.capacity() > KEEP_BUFFER {
        return;
    }
    buf.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED {
            pool.push(buf);
        }
    });
}
