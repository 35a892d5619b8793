use rpc_core::remote;

#[remote]
fn version() -> String {
    String::new()
}

fn main() {}
