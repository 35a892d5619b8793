use rpc_core::event;
use serde::Serialize;

#[event("wrapped")]
#[derive(Clone, Serialize)]
struct Wrapped<T> {
    inner: T,
}

fn main() {}
