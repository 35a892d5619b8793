use rpc_core::event;
use serde::Serialize;

#[event("rpc.ping")]
#[derive(Clone, Serialize)]
struct Ping;

fn main() {}
