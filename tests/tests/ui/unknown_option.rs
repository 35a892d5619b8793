use rpc_core::remote;

#[remote(rename = "v")]
async fn version() -> String {
    String::new()
}

fn main() {}
