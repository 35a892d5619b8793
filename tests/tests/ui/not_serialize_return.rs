use rpc_core::remote;

struct Opaque;

#[remote]
async fn give() -> Opaque {
    Opaque
}

fn main() {}
