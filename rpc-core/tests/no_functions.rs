//! A program that links no `#[remote]` function gets a start-up error from
//! `Server::new`, not a server that silently answers only `rpc.*`.
#![cfg(feature = "server")]

use rpc_core::{Context, Error, Server};

#[test]
fn a_server_without_functions_is_refused_at_start() {
    let err = Server::new(Context::new()).unwrap_err();
    assert!(matches!(err, Error::NoFunctions), "{err}");
    let text = format!("{err:?}");
    println!("{text}");
    assert!(text.contains("links no #[remote] function"), "{text}");
    assert!(text.contains("`use mylib as _;`"), "{text}");
}
