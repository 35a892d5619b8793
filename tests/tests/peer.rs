//! A `#[remote]` function that takes `&Peer` sees its caller: the client's
//! address over TCP, its uid, gid and pid over a unix socket; and can refuse
//! callers with it.

use std::sync::mpsc;

use rpc_core::registry::Registry;
use rpc_core::server::{Bound, Server};
use rpc_core::{remote, Address, Context, Peer};
use tests::{cbor, map, Conn, Value};

/// Who is calling, as the server sees it.
#[remote]
pub async fn peer_who(peer: &Peer) -> String {
    peer.to_string()
}

/// The user the service answers to.
pub struct Owner {
    uid: u32,
}

/// An authorization check: only the owner, on the unix socket, is answered.
#[remote]
pub async fn peer_secret(owner: &Owner, peer: &Peer, question: String) -> Result<String, String> {
    match peer {
        Peer::Unix { uid, .. } if *uid == owner.uid => Ok(format!("the answer to {question}")),
        other => Err(format!(
            "peer_secret: permission denied for {other}: only uid {} may ask",
            owner.uid
        )),
    }
}

/// Serves `address` in this process with `context` on its own runtime; the
/// server lives as long as the returned sender.
fn serve(address: &str, context: Context) -> (String, tokio::sync::oneshot::Sender<()>) {
    let address: Address = address.parse().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            // The timer's functions are linked too, and their context is
            // not here: serve this file's functions unchecked.
            let server = Server::with_registry(Registry::global().unwrap(), context);
            let listener = Bound::bind(&address).await.unwrap();
            ready_tx.send(listener.local_address().to_string()).unwrap();
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    (ready_rx.recv().unwrap(), stop)
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

fn gid() -> u32 {
    // SAFETY: as getuid.
    unsafe { libc::getgid() }
}

fn ask(conn: &mut Conn, question: &str) -> Result<Value, String> {
    conn.call("peer_secret", &map([("question", question.into())]))
}

#[test]
fn a_tcp_peer_is_the_clients_address() {
    let (address, _stop) = serve("tcp:127.0.0.1:0", Context::new().with(Owner { uid: uid() }));
    let mut conn = Conn::connect(&address);
    let local = conn.tcp().unwrap().local_addr().unwrap();
    assert_eq!(
        conn.call("peer_who", &map([])),
        Ok(Value::from(format!("tcp:{local}")))
    );
    // Another connection is another peer.
    let mut other = Conn::connect(&address);
    let other_local = other.tcp().unwrap().local_addr().unwrap();
    assert_ne!(other_local, local);
    assert_eq!(
        other.call("peer_who", &map([])),
        Ok(Value::from(format!("tcp:{other_local}")))
    );
    assert_eq!(
        ask(&mut conn, "life"),
        Err(format!(
            "peer_secret: permission denied for tcp:{local}: only uid {} may ask",
            uid()
        ))
    );
}

#[cfg(unix)]
#[test]
fn a_unix_peer_is_this_process_by_uid_gid_and_pid() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:{}", dir.path().join("peer.sock").display());
    let (address, _stop) = serve(&address, Context::new().with(Owner { uid: uid() }));
    let mut conn = Conn::connect(&address);
    let want = format!(
        "unix peer uid {} gid {} pid {}",
        uid(),
        gid(),
        std::process::id()
    );
    assert_eq!(conn.call("peer_who", &map([])), Ok(Value::from(want)));
    assert_eq!(ask(&mut conn, "life"), Ok("the answer to life".into()));
}

#[cfg(unix)]
#[test]
fn a_unix_peer_of_another_uid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:{}", dir.path().join("deny.sock").display());
    let owner = uid().wrapping_add(1);
    let (address, _stop) = serve(&address, Context::new().with(Owner { uid: owner }));
    let mut conn = Conn::connect(&address);
    let (status, body) = conn.call_raw(b"peer_secret", &cbor(&map([("question", "x".into())])));
    assert_eq!(status, 1);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with(&format!(
            "peer_secret: permission denied for unix peer uid {}",
            uid()
        )),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("only uid {owner} may ask")),
        "{text}"
    );
}

#[test]
fn the_start_up_check_never_asks_for_a_peer() {
    let registry = Registry::global().unwrap();
    // Without an Owner: named, and Peer never is.
    let err = registry.check(&Context::new()).unwrap_err().to_string();
    assert!(
        err.contains("peer::Owner (borrowed by peer::peer_secret)"),
        "{err}"
    );
    assert!(!err.contains("Peer"), "{err}");
    // With one: whatever else is missing (the timer's context), not these.
    match registry.check(&Context::new().with(Owner { uid: 0 })) {
        Ok(()) => {}
        Err(e) => {
            let e = e.to_string();
            assert!(!e.contains("Owner") && !e.contains("Peer"), "{e}");
        }
    }
}
