use rpc_core::remote;

struct Opaque;

#[remote]
async fn take(value: Opaque) -> bool {
    let _ = value;
    true
}

fn main() {}
