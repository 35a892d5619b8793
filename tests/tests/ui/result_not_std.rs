use rpc_core::remote;

/// A type named `Result` that is not `std::result::Result`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Result<T>(T);

#[remote]
pub async fn wrap(n: u32) -> Result<u32> {
    Result(n)
}

fn main() {}
