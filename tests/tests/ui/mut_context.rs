use rpc_core::remote;

struct Counter(i64);

#[remote]
async fn bump(counter: &mut Counter) -> i64 {
    counter.0 += 1;
    counter.0
}

fn main() {}
