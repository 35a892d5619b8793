use rpc_core::remote;

struct Timer;

impl Timer {
    #[remote]
    async fn version(&self) -> String {
        String::new()
    }
}

fn main() {}
