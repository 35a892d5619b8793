use rpc_core::remote;

#[remote]
async fn show(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {}
