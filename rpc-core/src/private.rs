//! Re-exports for the code `#[remote]` and `#[event]` generate. Not a public
//! API: generated code names only `::rpc_core::__private::NAME`, so users
//! never depend on these crates or paths themselves.

pub use inventory;
pub use serde;

pub use crate::client::{decode_reply, encode_args, CallError, PlainDecode, Transport};
pub use crate::context::Context;
pub use crate::events::{Event, EventDef};
pub use crate::handler::{
    decode_args, encode_ok, encode_result, missing_context, PlainReturn, RemoteResult, ReturnProbe,
};
pub use crate::registry::{Borrow, Call, Method, Scope};
pub use crate::schema::{PayloadProbe, Shape, TracedPayload, Types, UntracedPayload};
