use rpc_core::remote;

#[remote]
async fn greet(name: &str) -> String {
    format!("hello, {name}")
}

#[remote]
async fn total(values: &[i64]) -> i64 {
    values.iter().sum()
}

fn main() {}
