use rpc_core::event;
use serde::Serialize;

#[event]
#[derive(Clone, Serialize)]
struct Ping;

#[event(label = "pong")]
#[derive(Clone, Serialize)]
struct Pong;

fn main() {}
