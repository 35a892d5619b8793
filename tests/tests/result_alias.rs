//! A `Result` is recognised by the trait system, not by its spelling: a
//! function returning an alias of `Result` (`Res<T>`) answers `Ok` with
//! status 0 and the bare value and `Err` with status 1 and its text, exactly
//! as one spelled `Result<T, E>`; its description's reply type is `T`; and
//! its typed stub delivers the value, with the error as
//! `CallError::Status`. A plain struct return is encoded whole.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use rpc_core::client::Transport;
use rpc_core::registry::{Call, Registry};
use rpc_core::wire::cbor;
use rpc_core::wire::Reply;
use rpc_core::{remote, CallError, Context};
use serde::{Deserialize, Serialize};

/// A `Result` under another name.
pub type Res<T> = Result<T, String>;

/// A `Result` alias with no type arguments at all.
pub type Halved = Result<u32, std::num::TryFromIntError>;

/// A struct, returned as a plain value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Across.
    pub x: i32,
    /// Down.
    pub y: i32,
}

/// Refuses odd numbers, through an alias of `Result`.
#[remote]
pub async fn alias_even(n: u32) -> Res<u32> {
    if n.is_multiple_of(2) {
        Ok(n)
    } else {
        Err(format!("{n} is odd"))
    }
}

/// Halves a signed number into a `u32`, through an alias with no arguments.
#[remote]
pub async fn alias_halve(n: i64) -> Halved {
    u32::try_from(n / 2)
}

/// The same as `alias_even`, spelled `Result`.
#[remote]
pub async fn spelled_even(n: u32) -> Result<u32, String> {
    alias_even(n).await
}

/// A plain struct reply.
#[remote]
pub async fn alias_point(x: i32) -> Point {
    Point { x, y: -x }
}

fn call(method: &str, n: i64) -> Reply {
    let key = if method == "alias_point" { "x" } else { "n" };
    let payload = cbor::to_vec(&BTreeMap::from([(key, n)])).unwrap();
    let (_, call) = Registry::global()
        .unwrap()
        .call(&Context::new(), method.as_bytes(), &payload);
    match call {
        Call::Ready(reply) => reply,
        Call::Pending(future) => block_on(future),
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn an_alias_of_result_replies_like_a_spelled_result() {
    for method in ["alias_even", "spelled_even"] {
        assert_eq!(
            call(method, 4),
            Reply::ok(cbor::to_vec(&4u32).unwrap()),
            "{method}"
        );
        assert_eq!(call(method, 3), Reply::error("3 is odd"), "{method}");
    }
    assert_eq!(
        call("alias_halve", 8),
        Reply::ok(cbor::to_vec(&4u32).unwrap())
    );
    let negative = call("alias_halve", -8);
    assert_eq!(negative.status, 1);
    assert_eq!(
        String::from_utf8(negative.body).unwrap(),
        u32::try_from(-4i64).unwrap_err().to_string()
    );
}

#[test]
fn a_struct_reply_is_the_whole_struct() {
    assert_eq!(
        call("alias_point", 5),
        Reply::ok(cbor::to_vec(&Point { x: 5, y: -5 }).unwrap())
    );
}

#[test]
fn the_description_of_an_alias_replies_its_ok_type() {
    let registry = Registry::global().unwrap();
    // The reply half of the traced types (the arguments structs' names differ).
    let reply = |method: &str| {
        let method = registry.get(method.as_bytes()).unwrap();
        let types = format!("{:?}", (method.types)());
        types[types.find("reply:").unwrap()..].to_owned()
    };
    assert_eq!(reply("alias_even"), reply("spelled_even"));
    assert!(
        reply("alias_even").contains("root: U32"),
        "{}",
        reply("alias_even")
    );
}

/// Calls the registry in this process.
struct InMemory;

impl Transport for InMemory {
    fn call(
        &self,
        method: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        let (_, call) =
            Registry::global()
                .unwrap()
                .call(&Context::new(), method.as_bytes(), &payload);
        async move {
            let reply = match call {
                Call::Ready(reply) => reply,
                Call::Pending(future) => future.await,
            };
            match reply.status {
                0 => Ok(Bytes::from(reply.body)),
                _ => Err(CallError::Status(String::from_utf8(reply.body).unwrap())),
            }
        }
    }
}

#[test]
fn the_stub_of_an_alias_delivers_the_value_and_the_error_as_a_status() {
    block_on(async {
        let ok: Result<Res<u32>, CallError> = InMemory.alias_even(6).await;
        assert_eq!(ok.unwrap(), Ok(6));
        let err = InMemory.alias_even(7).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Status(text) if text == "7 is odd"),
            "{err}"
        );
        assert_eq!(InMemory.alias_halve(10).await.unwrap(), Ok(5));

        // Spelled `Result`: the stub's success type is the `Ok` type.
        let spelled: Result<u32, CallError> = InMemory.spelled_even(2).await;
        assert_eq!(spelled.unwrap(), 2);

        assert_eq!(
            InMemory.alias_point(2).await.unwrap(),
            Point { x: 2, y: -2 }
        );
    });
}
