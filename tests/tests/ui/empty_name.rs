use rpc_core::remote;

#[remote(name = "")]
async fn version() -> String {
    String::new()
}

fn main() {}
