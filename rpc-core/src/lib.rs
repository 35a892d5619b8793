//! # rpc-core
//!
//! A generic RPC runtime: async functions marked [`remote`] become callable
//! over CBOR-framed TCP, TLS or unix sockets, by name, from any language. It knows
//! nothing of the libraries that use it.
//!
//! ```text
//! client ──frames──▶ server::Connection ──Registry::call──▶ #[remote] async fn
//! ```
//!
//! # Layout
//!
//! The modules form three layers; each uses only its own layer and those
//! below (`tests/module_graph.rs` checks it and prints the graph).
//!
//! - bottom: [`wire`] (the frame codec for requests, replies and event
//!   frames, the status codes, the [`Reply`](wire::Reply) of a call, and
//!   [`wire::cbor`], the only code that touches the CBOR crates);
//!   [`schema`] (the traced types of methods and events); [`address`]
//!   (`tcp:HOST:PORT`, `unix:PATH`); [`Error`], what fails outside a call;
//!   [`Peer`], who is on the other end of a connection;
//! - middle: [`registry`] (the table of methods `#[remote]` fills through
//!   `inventory`); [`Context`], the values handlers borrow; [`events`]
//!   (`#[event]` types, the [`Hub`](events::Hub) that fires them to
//!   in-process listeners and remote subscribers); `handler`, what generated
//!   handlers call;
//! - top: [`builtins`] (every `rpc.*` method); [`cddl`] (the CDDL text of
//!   the traced types); [`server`] (feature `server`: listeners, the accept
//!   loop, connections, shutdown); [`client`] (the
//!   [`Transport`](client::Transport) stubs call through, the [`CallError`]
//!   of one call, and with feature `client` the pipelined `Client`);
//!   `__private`, re-exports for generated code only.
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
//! let registry = rpc_core::registry::Registry::global().unwrap();
//! let payload = rpc_core::wire::cbor::to_vec(&std::collections::BTreeMap::from([("name", "bob")])).unwrap();
//! let (_, call) = registry.call(&ctx, b"greet", &payload);
//! let rpc_core::registry::Call::Pending(future) = call else { panic!() };
//! let reply = future.await;
//! assert_eq!(rpc_core::wire::cbor::from_slice::<String>(&reply.body).unwrap(), "hello, bob");
//! # }
//! ```
//!
//! # A server and a typed client
//!
//! `#[remote]` also generates a stub, the trait `GreetRemote`, whose method
//! `greet` calls the function over any [`Transport`](client::Transport), here a `Client`
//! connection (features `server` and `client`):
//!
#![cfg_attr(all(feature = "server", feature = "client"), doc = "```")]
#![cfg_attr(not(all(feature = "server", feature = "client")), doc = "```ignore")]
//! use rpc_core::server::{Bound, Server};
//! use rpc_core::{remote, Client, Context, CallError};
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
//! assert!(matches!(client.greet("".into()).await, Err(CallError::Status(e)) if e == "whom?"));
//! # Ok(()) }
//! ```

// Nothing a peer sends may reach a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod address;
pub mod builtins;
pub mod cddl;
pub mod client;
mod context;
mod error;
pub mod events;
#[doc(hidden)]
pub mod handler;
mod peer;
#[cfg(any(feature = "server", feature = "client"))]
mod pem;
pub mod registry;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use address::Address;
pub use client::CallError;
#[cfg(feature = "client")]
pub use client::Client;
pub use context::Context;
pub use error::Error;
pub use peer::Peer;
/// Declares an event payload type and its wire name; see [`events`].
pub use rpc_macros::event;
/// Marks an `async fn` as callable remotely; see the crate docs.
pub use rpc_macros::remote;
#[cfg(feature = "server")]
pub use server::Server;
