use rpc_core::event;

#[event("ping")]
fn ping() {}

fn main() {}
