//! `#[remote]` expands inside `#![no_implicit_prelude]`, registers each
//! function under the right name with the right payload keys, and generates
//! stubs that reach the functions through any `Transport`; `#[event]`
//! expands there too and registers its name.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use bytes::Bytes;
use rpc_core::client::Transport;
use rpc_core::registry::Call;
use rpc_core::registry::Registry;
use rpc_core::wire::Reply;
use rpc_core::{CallError, Context};

mod remote_fns {
    #![no_implicit_prelude]

    use ::rpc_core::remote;
    use ::std::string::String;

    /// The context of [`hygiene_context`].
    pub(super) struct Prefix(pub(super) &'static str);

    #[remote]
    async fn hygiene_no_params() -> i64 {
        7
    }

    #[remote]
    async fn hygiene_context(prefix: &Prefix, word: String) -> String {
        ::std::format!("{}{word}", prefix.0)
    }

    #[remote]
    async fn hygiene_result(divisor: i64) -> ::core::result::Result<i64, String> {
        match 84_i64.checked_div(divisor) {
            ::core::option::Option::Some(q) => ::core::result::Result::Ok(q),
            ::core::option::Option::None => {
                ::core::result::Result::Err(::std::borrow::ToOwned::to_owned("divide by zero"))
            }
        }
    }

    /// An event declared without the prelude.
    #[::rpc_core::event("hygiene.event")]
    #[derive(::core::clone::Clone, ::serde::Serialize)]
    pub(super) struct HygieneEvent;

    #[remote(name = "hygiene.renamed")]
    async fn hygiene_rust_name() -> bool {
        true
    }

    #[remote]
    async fn hygiene_raw(r#type: String) -> String {
        ::std::format!("type={}", r#type)
    }

    /// A `Result` alias without type arguments: the stub finds its `Ok` type
    /// through the trait system.
    type Result = ::core::result::Result<u8, String>;

    #[remote]
    async fn hygiene_alias(ok: bool) -> Result {
        if ok {
            ::core::result::Result::Ok(1)
        } else {
            ::core::result::Result::Err(::std::borrow::ToOwned::to_owned("not ok"))
        }
    }

    #[remote]
    async fn hygiene_unit(_flag: ::core::option::Option<bool>) {}

    /// What each stub gave.
    pub(super) struct Results {
        pub(super) no_params: Stub<i64>,
        pub(super) context: Stub<String>,
        pub(super) result_ok: Stub<i64>,
        pub(super) result_err: Stub<i64>,
        pub(super) renamed: Stub<bool>,
        pub(super) raw: Stub<String>,
        pub(super) alias_ok: Stub<u8>,
        pub(super) alias_err: Stub<u8>,
        pub(super) unit: Stub<()>,
    }

    pub(super) type Stub<T> = ::core::result::Result<T, ::rpc_core::CallError>;

    /// Calls every stub once through `transport`, from inside this module.
    pub(super) async fn call_every_stub<T: ::rpc_core::client::Transport>(
        transport: &T,
    ) -> Results {
        Results {
            no_params: transport.hygiene_no_params().await,
            context: transport
                .hygiene_context(::std::borrow::ToOwned::to_owned("fix"))
                .await,
            result_ok: transport.hygiene_result(2).await,
            result_err: transport.hygiene_result(0).await,
            renamed: transport.hygiene_rust_name().await,
            raw: transport
                .hygiene_raw(::std::borrow::ToOwned::to_owned("t"))
                .await,
            alias_ok: transport.hygiene_alias(true).await,
            alias_err: transport.hygiene_alias(false).await,
            unit: transport
                .hygiene_unit(::core::option::Option::Some(true))
                .await,
        }
    }
}

#[test]
fn each_function_is_registered_with_its_payload_keys() {
    let registry = Registry::global().expect("no duplicate names");
    let method = |name: &str| {
        registry
            .get(name.as_bytes())
            .unwrap_or_else(|| panic!("{name} is not registered"))
    };
    assert_eq!(method("hygiene_no_params").params, [""; 0]);
    assert_eq!(method("hygiene_context").params, ["word"]);
    assert_eq!(method("hygiene_result").params, ["divisor"]);
    assert_eq!(method("hygiene.renamed").params, [""; 0]);
    assert_eq!(method("hygiene_raw").params, ["type"]);
    assert_eq!(
        method("hygiene.renamed").path,
        "hygiene::remote_fns::hygiene_rust_name"
    );
    assert!(registry.get(b"hygiene_rust_name").is_none());
}

/// Calls `name` through the global registry with a map payload.
fn call(ctx: &Context, name: &str, payload: &impl serde::Serialize) -> Reply {
    let payload = rpc_core::wire::cbor::to_vec(&payload).expect("encodes");
    let (method, call) = Registry::global()
        .unwrap()
        .call(ctx, name.as_bytes(), &payload);
    assert!(method.is_some(), "{name} is not registered");
    let Call::Pending(future) = call else {
        panic!("{name} did not start: {call:?}")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(future)
}

#[test]
fn calls_through_the_registry_reach_the_functions() {
    let ctx = Context::new().with(remote_fns::Prefix("pre-"));
    let text = |reply: Reply| -> String {
        assert_eq!(
            reply.status,
            0,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        rpc_core::wire::cbor::from_slice(&reply.body).expect("a CBOR text")
    };
    let word = BTreeMap::from([("word", "fix")]);
    assert_eq!(text(call(&ctx, "hygiene_context", &word)), "pre-fix");
    let raw = BTreeMap::from([("type", "t")]);
    assert_eq!(text(call(&ctx, "hygiene_raw", &raw)), "type=t");

    let halve = call(&ctx, "hygiene_result", &BTreeMap::from([("divisor", 2)]));
    assert_eq!(halve, Reply::ok(rpc_core::wire::cbor::to_vec(&42).unwrap()));
    let fail = call(&ctx, "hygiene_result", &BTreeMap::from([("divisor", 0)]));
    assert_eq!(fail, Reply::error("divide by zero"));
}

/// A transport that calls the registry in this process, recording each
/// method and payload it is given.
struct InMemory {
    context: Context,
    sent: Mutex<Vec<(&'static str, Vec<u8>)>>,
}

impl Transport for InMemory {
    fn call(
        &self,
        method: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        let (_, call) =
            Registry::global()
                .unwrap()
                .call(&self.context, method.as_bytes(), &payload);
        self.sent.lock().unwrap().push((method, payload));
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

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn status<T: std::fmt::Debug>(result: remote_fns::Stub<T>) -> String {
    match result {
        Err(CallError::Status(text)) => text,
        other => panic!("expected a status 1 text, got {other:?}"),
    }
}

#[test]
fn stubs_reach_the_functions_through_a_transport() {
    let transport = InMemory {
        context: Context::new().with(remote_fns::Prefix("pre-")),
        sent: Mutex::new(Vec::new()),
    };
    let results = block_on(remote_fns::call_every_stub(&transport));
    assert_eq!(results.no_params.unwrap(), 7);
    assert_eq!(results.context.unwrap(), "pre-fix");
    assert_eq!(results.result_ok.unwrap(), 42);
    assert_eq!(status(results.result_err), "divide by zero");
    assert!(results.renamed.unwrap());
    assert_eq!(results.raw.unwrap(), "type=t");
    assert_eq!(results.alias_ok.unwrap(), 1);
    assert_eq!(status(results.alias_err), "not ok");
    results.unit.unwrap();

    // The payloads are maps keyed by the parameter names (raw names unraw'd),
    // under the wire name.
    let sent = transport.sent.into_inner().unwrap();
    let payload = |method: &str| -> tests::Value {
        let (_, bytes) = sent
            .iter()
            .find(|(m, _)| *m == method)
            .unwrap_or_else(|| panic!("{method} was not called"));
        tests::decode(bytes)
    };
    assert_eq!(payload("hygiene_no_params"), tests::map([]));
    assert_eq!(payload("hygiene.renamed"), tests::map([]));
    assert_eq!(payload("hygiene_raw"), tests::map([("type", "t".into())]));
    assert_eq!(
        payload("hygiene_context"),
        tests::map([("word", "fix".into())])
    );
    assert!(sent.iter().all(|(m, _)| *m != "hygiene_rust_name"));
}

/// Answers every call with the CBOR text "nonsense".
struct Liar;

impl Transport for Liar {
    fn call(
        &self,
        _method: &'static str,
        _payload: Vec<u8>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        std::future::ready(Ok(Bytes::from(
            rpc_core::wire::cbor::to_vec("nonsense").unwrap(),
        )))
    }
}

#[test]
fn a_reply_of_the_wrong_type_is_a_decode_error() {
    let results = block_on(remote_fns::call_every_stub(&Liar));
    match results.no_params {
        Err(CallError::Decode { method, source }) => {
            assert_eq!(method, "hygiene_no_params");
            assert_eq!(source.message(), "invalid type: text, expected an integer");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let err = results.renamed.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("hygiene.renamed: the reply did not decode: "),
        "{err}"
    );
    // A text reply is a fine `String`.
    assert_eq!(results.raw.unwrap(), "nonsense");
}

#[test]
fn events_expand_without_the_prelude_and_register() {
    use rpc_core::events::{Event, EventTable};
    assert_eq!(<remote_fns::HygieneEvent as Event>::NAME, "hygiene.event");
    let table = EventTable::global().unwrap();
    let def = table.events()[table.index("hygiene.event").unwrap()];
    assert_eq!(def.path, "hygiene::remote_fns::HygieneEvent");
}
