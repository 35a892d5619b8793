//! `#[remote]` expands inside `#![no_implicit_prelude]` and registers each
//! function under the right name with the right payload keys.

use std::collections::BTreeMap;

use rpc_core::registry::Call;
use rpc_core::{Context, Registry, Reply};

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

    #[remote(name = "hygiene.renamed")]
    async fn hygiene_rust_name() -> bool {
        true
    }

    #[remote]
    async fn hygiene_raw(r#type: String) -> String {
        ::std::format!("type={}", r#type)
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
    let payload = rpc_core::cbor::to_vec(&payload).expect("encodes");
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
        rpc_core::cbor::from_slice(&reply.body).expect("a CBOR text")
    };
    let word = BTreeMap::from([("word", "fix")]);
    assert_eq!(text(call(&ctx, "hygiene_context", &word)), "pre-fix");
    let raw = BTreeMap::from([("type", "t")]);
    assert_eq!(text(call(&ctx, "hygiene_raw", &raw)), "type=t");

    let halve = call(&ctx, "hygiene_result", &BTreeMap::from([("divisor", 2)]));
    assert_eq!(halve, Reply::ok(rpc_core::cbor::to_vec(&42).unwrap()));
    let fail = call(&ctx, "hygiene_result", &BTreeMap::from([("divisor", 0)]));
    assert_eq!(fail, Reply::error("divide by zero"));
}
