//! TLS and mutual TLS: `serve_host tls:...` with certificates made here
//! (rcgen), the contract suite over TLS, refusals that say what was wrong
//! (unknown CA, wrong name, expired, no client certificate), plain and TLS
//! clients on the wrong kind of port, SIGHUP reload, start-up errors, the
//! `rpc` CLI, and in-process: the client's identity and the handshake deadline.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::client::ClientOptions;
use rpc_core::server::{Bound, Config, Listener, Stream};
use rpc_core::{Address, Client, Error};
use tests::tls::{self, Pki, Validity};
use tests::{cbor, frame, map, Conn, ServerProcess, Value};

const VERSION: &str = "nim-timer v0.1.0";

fn version(conn: &mut Conn) -> Result<Value, String> {
    conn.call("version", &map([]))
}

/// What `Client` says connecting to `address` with `options` (it must fail).
async fn connect_error(address: &str, options: &ClientOptions) -> String {
    match Client::connect_with(address, options).await {
        Ok(_) => panic!("connecting to {address} succeeded"),
        Err(e @ Error::Connect { .. }) => e.to_string(),
        Err(e) => panic!("not a connect error: {e}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn serve_host_announces_tls_and_answers_the_same_bytes() {
    let server = ServerProcess::tls_with_env(&[]);
    let port = server
        .address
        .strip_prefix("tls:127.0.0.1:")
        .unwrap_or_else(|| panic!("{}", server.address));
    assert!(port.parse::<u16>().unwrap() > 0);
    let mut conn = server.connect();
    // The reply bytes are those of plain TCP: status 0, length, CBOR text.
    let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 17];
    expected.extend(cbor(&VERSION.into()));
    conn.send_raw(&frame(b"version", &[0xa0]));
    let (status, body) = conn.recv();
    assert_eq!(
        [
            &status.to_be_bytes()[..],
            &(body.len() as u32).to_be_bytes(),
            &body
        ]
        .concat(),
        expected
    );
    // Closing without a close_notify ends the stream like a TCP close.
    drop(conn);
    server.wait_for_log(&["connection closed"]);
    // A name the certificate covers works as well as the IP.
    let by_name = server.address.replace("127.0.0.1", "localhost");
    if std::net::TcpStream::connect(by_name.trim_start_matches("tls:")).is_ok() {
        assert_eq!(version(&mut Conn::connect(&by_name)), Ok(VERSION.into()));
    }
}

#[test]
fn the_contract_suite_binary_is_switched_to_tls() {
    // contract_tls.rs runs the contract suite over TLS: the switch is the
    // binary's name, so this binary, and plain `contract`, stay on TCP.
    assert!(!tls::transport_is_tls() || std::env::var("TESTS_TRANSPORT").is_ok());
    let server = ServerProcess::tcp();
    assert_eq!(server.address.starts_with("tls:"), tls::transport_is_tls());
}

#[test]
fn a_silent_client_does_not_hold_up_the_others() {
    let server = ServerProcess::tls_with_env(&[]);
    let host_port = server.address.strip_prefix("tls:").unwrap();
    // Connected, and never a byte of handshake: accepted, waiting in its task.
    let _silent: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(host_port).unwrap())
        .collect();
    server.wait_for_open_connections(4);
    assert_eq!(version(&mut server.connect()), Ok(VERSION.into()));
}

#[test]
fn a_plain_client_on_a_tls_port_is_dropped_and_the_server_goes_on() {
    let server = ServerProcess::tls_with_env(&[]);
    let host_port = server.address.strip_prefix("tls:").unwrap();
    let mut plain = std::net::TcpStream::connect(host_port).unwrap();
    plain.set_read_timeout(Some(tests::PATIENCE)).unwrap();
    plain.write_all(&frame(b"version", &[0xa0])).unwrap();
    // No reply frame: at most a TLS alert record (content type 21), then the end.
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    assert!(answer.len() < 64, "{answer:?}");
    server.wait_for_log(&["TLS handshake failed", "corrupt message"]);
    assert_eq!(version(&mut server.connect()), Ok(VERSION.into()));
}

#[test]
fn a_tls_client_on_a_plain_port_fails_clearly_and_the_server_goes_on() {
    let server = ServerProcess::start("tcp:127.0.0.1:0");
    let tls_address = server.address.replace("tcp:", "tls:");
    let options = ClientOptions::default().ca(&tls::shared().ca);
    let err = runtime().block_on(connect_error(&tls_address, &options));
    assert!(
        err.starts_with(&format!("cannot connect to {tls_address}: TLS")),
        "{err}"
    );
    assert_eq!(version(&mut server.connect()), Ok(VERSION.into()));
}

#[test]
fn unknown_ca_wrong_name_and_expired_certificates_are_named() {
    let pki = tls::shared();
    let server = ServerProcess::tls_with_env(&[]);
    let rt = runtime();

    let stranger = Pki::new("another CA");
    let err = rt.block_on(connect_error(
        &server.address,
        &ClientOptions::default().ca(&stranger.ca),
    ));
    assert!(err.contains("not signed by a trusted CA"), "{err}");

    let err = rt.block_on(connect_error(
        &server.address,
        &ClientOptions::default()
            .ca(&pki.ca)
            .server_name("other.example"),
    ));
    assert!(
        err.contains(r#"not valid for the name "other.example""#),
        "{err}"
    );

    let expired = pki.issue("expired", &["127.0.0.1"], Validity::Expired);
    let old = ServerProcess::tls_with_env(&[
        ("RPC_TLS_CERT", expired.cert.to_str().unwrap()),
        ("RPC_TLS_KEY", expired.key.to_str().unwrap()),
    ]);
    let err = rt.block_on(connect_error(
        &old.address,
        &ClientOptions::default().ca(&pki.ca),
    ));
    assert!(err.contains("certificate has expired"), "{err}");

    // The right CA and name work with the pipelined client.
    let client = rt
        .block_on(Client::connect_with(
            &server.address,
            &ClientOptions::default().ca(&pki.ca),
        ))
        .unwrap();
    let reply = rt.block_on(client.call_raw("version", vec![0xa0])).unwrap();
    assert_eq!(&reply[..], &cbor(&VERSION.into())[..]);
}

#[test]
fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let pki = tls::shared();
    let ca = pki.ca.to_str().unwrap();
    let server = ServerProcess::tls_with_env(&[("RPC_TLS_CLIENT_CA", ca)]);
    let rt = runtime();

    // With the certificate: served, and the server saw who it was.
    let with_cert = ClientOptions::default()
        .ca(&pki.ca)
        .client_cert(&pki.client.cert, &pki.client.key);
    let client = rt
        .block_on(Client::connect_with(&server.address, &with_cert))
        .unwrap();
    let reply = rt.block_on(client.call_raw("version", vec![0xa0])).unwrap();
    assert_eq!(&reply[..], &cbor(&VERSION.into())[..]);
    server.wait_for_log(&["TLS handshake done", "CN=test client"]);

    // Without: the client says why, the server logs the refusal.
    let err = rt.block_on(connect_error(
        &server.address,
        &ClientOptions::default().ca(&pki.ca),
    ));
    assert!(err.contains("requires a client certificate"), "{err}");
    server.wait_for_log(&["TLS handshake failed", "certificate"]);

    // A raw TLS client without one is refused at its first read.
    let mut raw = Conn::connect_tls(&server.address, pki.client_config(None)).unwrap();
    raw.send(b"version", &[0xa0]);
    raw.expect_closed_or_alert();

    // A certificate from another CA is refused too.
    let stranger = Pki::new("another CA");
    let foreign = ClientOptions::default()
        .ca(&pki.ca)
        .client_cert(&stranger.client.cert, &stranger.client.key);
    let refused = rt.block_on(async {
        match Client::connect_with(&server.address, &foreign).await {
            Err(e) => Some(e.to_string()),
            // TLS 1.3: the refusal arrives after the client's handshake.
            Ok(client) => client
                .call_raw("version", vec![0xa0])
                .await
                .err()
                .map(|e| e.to_string()),
        }
    });
    assert!(refused.is_some(), "a foreign client certificate was served");

    // The server goes on serving.
    let mut conn =
        Conn::connect_tls(&server.address, pki.client_config(Some(&pki.client))).unwrap();
    assert_eq!(version(&mut conn), Ok(VERSION.into()));
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let pki = Pki::new("reload CA");
    let cert = pki.dir().join("live.pem");
    let key = pki.dir().join("live.key");
    std::fs::copy(&pki.server.cert, &cert).unwrap();
    std::fs::copy(&pki.server.key, &key).unwrap();
    let server = ServerProcess::tls_with_env(&[
        ("RPC_TLS_CERT", cert.to_str().unwrap()),
        ("RPC_TLS_KEY", key.to_str().unwrap()),
    ]);
    let config = pki.client_config(None);
    let mut before = Conn::connect_tls(&server.address, Arc::clone(&config)).unwrap();
    assert_eq!(version(&mut before), Ok(VERSION.into()));
    let first = before.peer_certificate().unwrap();

    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let renewed = pki.issue("renewed", &["127.0.0.1"], Validity::Current);
    std::fs::copy(&renewed.cert, &cert).unwrap();
    std::fs::copy(&renewed.key, &key).unwrap();
    hup();
    server.wait_for_log(&["TLS certificate reloaded"]);
    let mut after = Conn::connect_tls(&server.address, Arc::clone(&config)).unwrap();
    let second = after.peer_certificate().unwrap();
    assert_ne!(first, second, "a new connection sees the new certificate");
    assert_eq!(version(&mut after), Ok(VERSION.into()));
    // The connection opened before goes on, with its old session.
    assert_eq!(version(&mut before), Ok(VERSION.into()));

    std::fs::write(&cert, "not a certificate").unwrap();
    hup();
    let line = server.wait_for_log(&["TLS reload failed"]);
    assert!(line.contains("live.pem"), "{line}");
    let mut last = Conn::connect_tls(&server.address, config).unwrap();
    assert_eq!(
        last.peer_certificate().unwrap(),
        second,
        "the old config stays"
    );
    assert_eq!(version(&mut last), Ok(VERSION.into()));
    assert_eq!(version(&mut before), Ok(VERSION.into()));
}

#[test]
fn start_up_errors_name_the_file_and_exit_2() {
    let pki = tls::shared();
    let host = tests::serve_host();
    let run = |env: &[(&str, &str)]| {
        let out = Command::new(&host)
            .arg("tls:127.0.0.1:0")
            .env_remove("RPC_TLS_CERT")
            .env_remove("RPC_TLS_KEY")
            .env_remove("RPC_TLS_CLIENT_CA")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tls:127.0.0.1:0 needs a certificate: set RPC_TLS_CERT"),
        "{stderr}"
    );

    let missing = pki.dir().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let key = pki.server.key.to_str().unwrap();
    let cert = pki.server.cert.to_str().unwrap();
    for (env, named) in [
        (
            vec![("RPC_TLS_CERT", missing), ("RPC_TLS_KEY", key)],
            "certificate",
        ),
        (
            vec![("RPC_TLS_CERT", cert), ("RPC_TLS_KEY", missing)],
            "key",
        ),
        (
            vec![
                ("RPC_TLS_CERT", cert),
                ("RPC_TLS_KEY", key),
                ("RPC_TLS_CLIENT_CA", missing),
            ],
            "client CA",
        ),
    ] {
        let (code, stderr) = run(&env);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "my_timer_serve: cannot read the TLS {named} {missing}: "
            )),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // A key that is not the certificate's.
    let (code, stderr) = run(&[
        ("RPC_TLS_CERT", cert),
        ("RPC_TLS_KEY", pki.client.key.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("do not go together"), "{stderr}");
}

#[test]
fn the_rpc_cli_over_tls_and_mutual_tls() {
    let pki = tls::shared();
    let ca = pki.ca.to_str().unwrap();
    let rpc = tests::binary("rpc");
    let server = ServerProcess::tls_with_env(&[]);
    let (status, stdout, stderr) =
        tests::run(&rpc, &["--ca", ca, "call", &server.address, "version"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, format!("\"{VERSION}\"\n"));

    // The environment instead of the flag; `listen` connects the same way.
    let out = Command::new(&rpc)
        .args(["describe", &server.address])
        .env("RPC_TLS_CA", ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version("));

    let stranger = Pki::new("another CA");
    let (status, _, stderr) = tests::run(
        &rpc,
        &[
            "--ca",
            stranger.ca.to_str().unwrap(),
            "call",
            &server.address,
            "version",
        ],
    );
    assert_eq!(status.code(), Some(2));
    assert!(stderr.starts_with(&format!("rpc: cannot connect to {}: TLS: the server's certificate is not signed by a trusted CA", server.address)), "{stderr}");

    let mutual = ServerProcess::tls_with_env(&[("RPC_TLS_CLIENT_CA", ca)]);
    let (status, _, stderr) = tests::run(&rpc, &["--ca", ca, "call", &mutual.address, "version"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("requires a client certificate"), "{stderr}");
    let (cert, key) = (
        pki.client.cert.to_str().unwrap(),
        pki.client.key.to_str().unwrap(),
    );
    let (status, stdout, stderr) = tests::run(
        &rpc,
        &[
            "--ca",
            ca,
            "--cert",
            cert,
            "--key",
            key,
            "call",
            &mutual.address,
            "version",
        ],
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, format!("\"{VERSION}\"\n"));
    // --cert without --key is a usage error.
    let (status, _, stderr) =
        tests::run(&rpc, &["--cert", cert, "call", &mutual.address, "version"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
}

/// A `tls:` listener in this process, with `config`'s files.
async fn bind(config: &Config) -> Bound {
    Bound::bind_with(&"tls:127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn server_config(pki: &Pki) -> Config {
    Config::default()
        .tls_cert(&pki.server.cert)
        .tls_key(&pki.server.key)
}

#[tokio::test]
async fn the_identity_of_a_mutual_tls_client_is_on_the_stream() {
    let pki = tls::shared();
    let mut listener = bind(&server_config(pki).tls_client_ca(&pki.ca)).await;
    let address = listener.local_address().to_string();
    assert!(matches!(listener.local_address(), Address::Tls { .. }));
    let options = ClientOptions::default()
        .ca(&pki.ca)
        .client_cert(&pki.client.cert, &pki.client.key);
    let client = tokio::spawn(async move { Client::connect_with(&address, &options).await });
    let (mut stream, peer) = listener.accept().await;
    assert!(matches!(peer, Address::Tls { .. }), "{peer}");
    assert!(
        stream.tls_identity().is_none(),
        "known only after the handshake"
    );
    stream.handshake().await.unwrap();
    let identity = stream.tls_identity().expect("a client certificate");
    assert_eq!(identity.subject, "CN=test client, O=rpc tests");
    assert_eq!(identity.sans, ["DNS:client.test", "email:client@rpc.test"]);
    client.await.unwrap().unwrap();

    // Without client authentication there is no identity.
    let mut listener = bind(&server_config(pki)).await;
    let address = listener.local_address().to_string();
    let options = ClientOptions::default().ca(&pki.ca);
    let client = tokio::spawn(async move { Client::connect_with(&address, &options).await });
    let (mut stream, _) = listener.accept().await;
    stream.handshake().await.unwrap();
    assert!(stream.tls_identity().is_none());
    client.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_handshake_deadline() {
    let pki = tls::shared();
    let mut listener = bind(&server_config(pki)).await;
    let port = match listener.local_address() {
        Address::Tls { port, .. } => *port,
        other => panic!("{other}"),
    };
    // Accepting does no I/O: a client that sends nothing is accepted at
    // once, and another behind it is accepted too.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut first, _) = listener.accept().await;
    let _second = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (_, _) = listener.accept().await;
    let started = tokio::time::Instant::now();
    let err = first.handshake().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("within 10 s"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    // A stream whose handshake failed stays failed.
    assert!(first.handshake().await.is_err());
    assert!(matches!(first, Stream::Tls(_)));
}

#[tokio::test]
async fn tls_without_a_certificate_and_reload_of_plain_listeners() {
    let err = Bound::bind(&"tls:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    let plain = Bound::bind(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    plain.reload_tls().unwrap();
    let pki = Pki::new("reload");
    let tls = bind(&server_config(&pki)).await;
    tls.reload_tls().unwrap();
    std::fs::write(&pki.server.key, "garbage").unwrap();
    let err = tls.reload_tls().unwrap_err().to_string();
    assert!(err.contains("server.key"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out() {
    // The kernel accepts the TCP connection into the backlog; nobody reads.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("tls:{}", mute.local_addr().unwrap());
    let options = ClientOptions::default()
        .ca(&tls::shared().ca)
        .connect_timeout(Duration::from_millis(200));
    let err = connect_error(&address, &options).await;
    assert_eq!(
        err,
        format!("cannot connect to {address}: no answer to the TLS handshake within 0.2 s")
    );
}

/// Who is calling, as a `#[remote]` function sees it over TLS.
#[rpc_core::remote]
pub async fn tls_peer_who(peer: &rpc_core::Peer) -> (String, Option<String>, Vec<String>) {
    let addr = peer.addr().map(|a| a.to_string()).unwrap_or_default();
    match peer {
        rpc_core::Peer::Tls { subject, sans, .. } => (addr, subject.clone(), sans.clone()),
        other => (other.to_string(), None, Vec::new()),
    }
}

/// Serves this binary's functions on `config`'s `tls:` listener until the
/// returned sender is dropped.
async fn serve_in_process(config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = bind(&config).await;
    let address = listener.local_address().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The timer's functions are linked too, and their context is not here.
    let server = rpc_core::server::Server::with_registry(
        rpc_core::registry::Registry::global().unwrap(),
        rpc_core::Context::new(),
    );
    tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (address, stop)
}

#[tokio::test]
async fn a_remote_function_sees_the_tls_peer_and_its_certificate() {
    let pki = tls::shared();
    let (address, _stop) = serve_in_process(server_config(pki).tls_client_ca(&pki.ca)).await;
    let options = ClientOptions::default()
        .ca(&pki.ca)
        .client_cert(&pki.client.cert, &pki.client.key);
    let client = Client::connect_with(&address, &options).await.unwrap();
    let reply = client.call_raw("tls_peer_who", vec![0xa0]).await.unwrap();
    let (addr, subject, sans): (String, Option<String>, Vec<String>) =
        ciborium::from_reader(&reply[..]).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(subject.as_deref(), Some("CN=test client, O=rpc tests"));
    assert_eq!(sans, ["DNS:client.test", "email:client@rpc.test"]);

    // Without mutual TLS the peer is a TLS address with no certificate.
    let (address, _stop) = serve_in_process(server_config(pki)).await;
    let client = Client::connect_with(&address, &ClientOptions::default().ca(&pki.ca))
        .await
        .unwrap();
    let reply = client.call_raw("tls_peer_who", vec![0xa0]).await.unwrap();
    let (addr, subject, sans): (String, Option<String>, Vec<String>) =
        ciborium::from_reader(&reply[..]).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!((subject, sans), (None, Vec::new()));
}
