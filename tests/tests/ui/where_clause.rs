use rpc_core::remote;

#[remote]
async fn version() -> String
where
    String: Clone,
{
    String::new()
}

fn main() {}
