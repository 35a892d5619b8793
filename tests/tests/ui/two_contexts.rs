use rpc_core::remote;

struct A;
struct B;

#[remote]
async fn both(a: &A, b: &B) -> bool {
    let _ = (a, b);
    true
}

fn main() {}
