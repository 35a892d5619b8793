//! Two `#[remote]` functions with one wire name make the registry, and so
//! the server, refuse to start, naming both Rust paths.

use rpc_core::registry::Registry;
use rpc_core::server::Server;
use rpc_core::{Context, Error};

mod first {
    #[rpc_core::remote(name = "dup")]
    async fn one() -> i64 {
        1
    }
}

mod second {
    #[rpc_core::remote(name = "dup")]
    async fn two() -> i64 {
        2
    }
}

/// Asserts `error` is the duplicate `dup` between the two functions above.
fn assert_duplicate(error: Error) {
    let text = error.to_string();
    let Error::DuplicateMethod {
        name,
        first,
        second,
    } = error
    else {
        panic!("expected a duplicate method, got {text}");
    };
    assert_eq!(
        (name, first, second),
        (
            "dup",
            "duplicate_methods::first::one",
            "duplicate_methods::second::two"
        )
    );
    assert_eq!(
        text,
        r#"duplicate method "dup": registered by both duplicate_methods::first::one and duplicate_methods::second::two"#
    );
}

#[test]
fn the_registry_refuses_a_name_given_twice() {
    assert_duplicate(Registry::from_inventory().unwrap_err());
}

#[test]
fn the_server_refuses_to_start() {
    assert_duplicate(Server::new(Context::new()).unwrap_err());
}
