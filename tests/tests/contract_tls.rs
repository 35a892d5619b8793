//! The contract suite of `contract.rs`, byte for byte, over `tls:`: in this
//! test binary `ServerProcess::tcp()` serves `tls:127.0.0.1:0` with
//! certificates made at run time and `Conn` wraps its socket in rustls
//! ([`tests::tls::transport_is_tls`]), so every check applies unchanged.

#[path = "contract.rs"]
mod contract;

#[test]
fn the_suite_here_runs_over_tls() {
    let server = tests::ServerProcess::tcp();
    assert!(server.address.starts_with("tls:"), "{}", server.address);
    let conn = server.connect();
    assert!(conn.peer_certificate().is_some(), "a TLS session");
}
