//! Support for the code `#[remote]` generates. Not a public API.

use std::fmt::Display;

pub use inventory;
pub use serde;

use crate::registry::Reply;
use crate::RpcError;

/// Decodes a payload into the generated arguments struct, or the status 1
/// reply that says which field was wrong and how.
pub fn decode_args<T: serde::de::DeserializeOwned>(
    method: &str,
    payload: &[u8],
) -> Result<T, Reply> {
    crate::cbor::from_slice(payload)
        .map_err(|e| Reply::error(format!("{method}: invalid arguments: {e}")))
}

/// Encodes a function's return value as a status 0 reply.
pub fn encode_ok<T: serde::Serialize>(method: &str, value: &T) -> Reply {
    match crate::cbor::to_vec(value) {
        Ok(body) => Reply::ok(body),
        Err(e) => Reply::error(format!(
            "{method}: internal error: cannot encode the reply: {e}"
        )),
    }
}

/// A function's `Result`: `Ok` is encoded, `Err` becomes its `Display` text.
pub trait RemoteResult {
    /// The success type.
    type Ok: serde::Serialize;
    /// The error type, shown byte for byte as a status 1 text.
    type Err: Display;
    /// Converts into a plain `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

impl<T: serde::Serialize, E: Display> RemoteResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// The reply of a function returning a `Result`.
pub fn encode_result<R: RemoteResult>(method: &str, ret: R) -> Reply {
    match ret.into_result() {
        Ok(value) => encode_ok(method, &value),
        Err(e) => Reply::error(e.to_string()),
    }
}

/// Encodes a stub's arguments struct as the call's payload.
pub fn encode_args<T: serde::Serialize>(
    method: &'static str,
    args: &T,
) -> Result<Vec<u8>, RpcError> {
    crate::cbor::to_vec(args).map_err(|e| RpcError::Encode {
        method,
        message: e.to_string(),
    })
}

/// Decodes the body of a status 0 reply into a stub's return type.
pub fn decode_reply<T: serde::de::DeserializeOwned>(
    method: &'static str,
    body: &[u8],
) -> Result<T, RpcError> {
    crate::cbor::from_slice(body).map_err(|source| RpcError::Decode { method, source })
}

/// How `#[event]` describes its payload type `T`: traced when `T` is
/// `Deserialize`, `any` otherwise. The generated code calls
/// `(&PayloadProbe::<T>::new()).shape()` with both traits in scope; the
/// first impl applies only when its bound holds, else method lookup goes on
/// to the second, on `&PayloadProbe<T>` (autoref specialisation).
pub struct PayloadProbe<T>(std::marker::PhantomData<T>);

impl<T> PayloadProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        PayloadProbe(std::marker::PhantomData)
    }
}

/// The payload type is `Deserialize`: trace it.
pub trait TracedPayload {
    /// The payload's shape.
    fn shape(&self) -> crate::describe::Shape;
}

impl<T: serde::de::DeserializeOwned> TracedPayload for PayloadProbe<T> {
    fn shape(&self) -> crate::describe::Shape {
        crate::describe::Shape::of::<T>()
    }
}

/// The payload type is not `Deserialize`: describe it as `any`.
pub trait UntracedPayload {
    /// The payload's shape.
    fn shape(&self) -> crate::describe::Shape;
}

impl<T> UntracedPayload for &PayloadProbe<T> {
    fn shape(&self) -> crate::describe::Shape {
        crate::describe::Shape::any()
    }
}
