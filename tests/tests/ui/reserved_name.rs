use rpc_core::remote;

#[remote(name = "rpc.x")]
async fn version() -> String {
    String::new()
}

fn main() {}
