//! # rpc-core
//!
//! A generic RPC runtime: async functions marked [`remote`] become callable
//! over CBOR-framed TCP or unix sockets, by name, from any language. It knows
//! nothing of the libraries that use it.
//!
//! ```text
//! client ──frames──▶ server::Connection ──Registry::call──▶ #[remote] async fn
//! ```
//!
//! # Layout
//!
//! - [`codec`]: the frame codec (`[u32 len][method][u32 len][payload]` in,
//!   `[i32 status][u32 len][body]` out) with its size limit;
//! - [`cbor`]: strict CBOR decoding that names the offending field, and encoding;
//! - [`address`]: `tcp:HOST:PORT` and `unix:PATH`;
//! - [`registry`]: the table of methods filled by `#[remote]` through
//!   `inventory`, the [`Context`] handlers borrow, and the [`Reply`] they give;
//! - [`describe`]: the built-in `rpc.describe`, the methods and their CDDL
//!   generated from the Rust types;
//! - [`events`]: library events (`#[event]`), fired through a [`Hub`](events::Hub)
//!   to in-process listeners and to remote subscribers (`PROTOCOL.md`);
//! - [`server`] (feature `server`): listeners, the accept loop, connections,
//!   graceful shutdown;
//! - [`client`]: the [`Transport`] the generated stubs call through and the
//!   [`RpcError`] they return; with feature `client`, `Client`, a pipelined
//!   connection shared by many tasks;
//! - [`Error`]: the one error type.
//!
//! # Example
//!
//! ```
//! use rpc_core::remote;
//!
//! pub struct Greeter { greeting: String }
//!
//! /// Greets `name` with the greeter's greeting.
//! #[remote]
//! pub async fn greet(greeter: &Greeter, name: String) -> String {
//!     format!("{}, {name}", greeter.greeting)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Local callers call the function directly: no serialisation.
//! let greeter = Greeter { greeting: "hello".into() };
//! assert_eq!(greet(&greeter, "ada".into()).await, "hello, ada");
//!
//! // Remote callers reach it by name through the registry.
//! let ctx = rpc_core::Context::new().with(greeter);
//! let registry = rpc_core::Registry::global().unwrap();
//! let payload = rpc_core::cbor::to_vec(&std::collections::BTreeMap::from([("name", "bob")])).unwrap();
//! let (_, call) = registry.call(&ctx, b"greet", &payload);
//! let rpc_core::registry::Call::Pending(future) = call else { panic!() };
//! let reply = future.await;
//! assert_eq!(rpc_core::cbor::from_slice::<String>(&reply.body).unwrap(), "hello, bob");
//! # }
//! ```
//!
//! # A server and a typed client
//!
//! `#[remote]` also generates a stub, the trait `GreetRemote`, whose method
//! `greet` calls the function over any [`Transport`], here a `Client`
//! connection (features `server` and `client`):
//!
#![cfg_attr(all(feature = "server", feature = "client"), doc = "```")]
#![cfg_attr(not(all(feature = "server", feature = "client")), doc = "```ignore")]
//! use rpc_core::server::{Bound, Server};
//! use rpc_core::{remote, Client, Context, RpcError};
//!
//! pub struct Greeter { greeting: String }
//!
//! /// Greets `name`, refusing an empty one.
//! #[remote]
//! pub async fn greet(greeter: &Greeter, name: String) -> Result<String, String> {
//!     if name.is_empty() { return Err("whom?".into()) }
//!     Ok(format!("{}, {name}", greeter.greeting))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Context::new().with(Greeter { greeting: "hello".into() }))?;
//! let listener = Bound::bind(&"tcp:127.0.0.1:0".parse()?).await?;
//! let client = Client::connect_to(listener.local_address()).await?;
//! tokio::spawn(server.serve(listener, std::future::pending()));
//!
//! assert_eq!(client.greet("ada".into()).await?, "hello, ada");
//! assert!(matches!(client.greet("".into()).await, Err(RpcError::Status(e)) if e == "whom?"));
//! # Ok(()) }
//! ```

// Nothing a peer sends may reach a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod address;
pub mod cbor;
pub mod client;
pub mod codec;
pub mod describe;
mod error;
pub mod events;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use address::Address;
#[cfg(feature = "client")]
pub use client::Client;
pub use client::{RpcError, Transport};
pub use error::Error;
pub use registry::{Context, Method, Registry, Reply};
/// Declares an event payload type and its wire name; see [`events`].
pub use rpc_macros::event;
/// Marks an `async fn` as callable remotely; see the crate docs.
pub use rpc_macros::remote;
