//! The socket server: one accept loop for TCP, TLS and unix sockets, one task per
//! connection, handlers of a connection running concurrently with replies
//! written in request order, and a graceful drain on shutdown.
//!
//! # Layout
//!
//! - `listener`: the [`Listener`] trait, implemented for TCP and unix
//!   sockets, and [`Bound`], TCP, TLS or unix bound from an [`Address`];
//! - `tls`: the TLS config of `tls:` listeners (PEM files, SIGHUP reload),
//!   the lazily handshaking [`TlsStream`] and the client's [`TlsIdentity`];
//! - [`Server`] owns the registry, the context and the [`Config`], and runs
//!   the accept loop until its shutdown future resolves;
//! - `connection` (private): the per-connection state machine: read and
//!   decode frames, start calls, collect replies in order, batch writes;
//! - `in_flight` (private): one request from decode to reply;
//! - `buffers` (private): the per-thread pool of read buffers;
//! - `budget` (private): the memory budget shared by every connection;
//! - `rate_limit` (private): at most a few protocol-error and accept-error
//!   lines a second, then one line with the count suppressed;
//! - `config`: [`Config`] and the `RPC_*` environment variables;
//! - `shutdown`: [`shutdown_signal`] and the drain of open connections.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::builtins;
use crate::context::Context;
use crate::events::EventTable;
use crate::events::Hub;
use crate::registry::Registry;
#[cfg(doc)]
use crate::Address;
use crate::{Error, Peer};

mod budget;
mod buffers;
pub mod config;
mod connection;
mod in_flight;
pub mod listener;
mod mux;
mod rate_limit;
pub mod shutdown;
pub mod tls;

pub use config::{env_help, env_markdown, Config, EnvVar, DEFAULT_MAX_MEMORY, ENV_VARS};
#[cfg(unix)]
pub use listener::UnixSocketListener;
pub use listener::{Bound, Listener, Stream, DEFAULT_UNIX_MODE};
pub use shutdown::shutdown_signal;
pub use tls::{TlsIdentity, TlsStream};

use connection::Connection;

/// A server: the registry of methods, the context they borrow, and limits.
///
/// ```no_run
/// # async fn run() -> Result<(), rpc_core::Error> {
/// use rpc_core::server::{shutdown_signal, Bound, Server};
/// let server = Server::new(rpc_core::Context::new())?;
/// let listener = Bound::bind(&"tcp:127.0.0.1:0".parse()?).await?;
/// println!("listening on {}", listener.local_address());
/// server.serve(listener, shutdown_signal()).await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    registry: &'static Registry,
    context: Context,
    config: Config,
}

#[derive(Debug)]
struct Shared {
    registry: &'static Registry,
    context: Context,
    config: Config,
    /// The context's hub, whose events subscribers receive.
    events: Hub,
    /// Set before the stop token is cancelled: connections read this flag on
    /// every turn (the token's own check takes a lock).
    stopping: AtomicBool,
    /// `Config::max_memory`, shared by every connection.
    budget: budget::Budget,
}

impl Server {
    /// A server for every `#[remote]` function in the program, with default
    /// limits. Fails at once, rather than per call, if two functions or two
    /// events share a wire name, if the program links no `#[remote]`
    /// function ([`Error::NoFunctions`]), or if `context` lacks a type that
    /// a linked function borrows ([`Error::MissingContext`]).
    pub fn new(context: Context) -> Result<Self, Error> {
        EventTable::global()?;
        let registry = Registry::global()?;
        if !registry.has_functions() {
            return Err(Error::NoFunctions);
        }
        let server = Self::with_registry(registry, context);
        registry.check(&server.context)?;
        Ok(server)
    }

    /// A server for the methods of `registry`, as given: nothing is checked
    /// (a test may serve a partial table on purpose); call
    /// [`Registry::check`] for the start-up check of [`Server::new`]. A
    /// call whose context type is missing answers status 1.
    ///
    /// Subscribers receive the events of the [`Hub`] in `context`; without
    /// one, a new hub is added (a `#[remote]` function may take it as `&Hub`).
    pub fn with_registry(registry: &'static Registry, mut context: Context) -> Self {
        if context.get::<Hub>().is_none() {
            context.insert(Arc::new(Hub::new()));
        }
        // What `rpc.describe` describes.
        context.insert(Arc::new(builtins::describe::ServedRegistry(registry)));
        Server {
            registry,
            context,
            config: Config::default(),
        }
    }

    /// Replaces the limits.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves `listener` until `shutdown` resolves, then stops accepting,
    /// stops reading, answers every request already read (for at most
    /// [`Config::drain_timeout`]) and returns. A unix socket file is removed
    /// when the listener is dropped on return.
    pub async fn serve<L: Listener>(
        self,
        mut listener: L,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        L::Addr: fmt::Debug,
    {
        let events = match self.context.get::<Hub>() {
            Some(hub) => Hub::clone(&hub),
            None => Hub::new(),
        };
        tune_allocator();
        let shared = Arc::new(Shared {
            registry: self.registry,
            context: self.context,
            budget: budget::Budget::new(self.config.max_memory),
            config: self.config,
            events,
            stopping: AtomicBool::new(false),
        });
        let limit = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut peak = 0;
        match listener.local_addr() {
            Ok(address) => info!(?address, "serving"),
            Err(e) => info!(error = %e, "serving"),
        }
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {
                    // After a crowd, or after usage went high (hogs gone).
                    let crowd = connections.is_empty() && peak >= TRIM_AFTER;
                    if crowd || shared.budget.take_trim() {
                        trim_heap();
                        peak = connections.len();
                    }
                }
                (permit, stream, peer) = accept(&limit, &mut listener) => {
                    let Ok(permit) = permit else { break };
                    let conn = Connection::new(stream, peer, Arc::clone(&shared), stop.clone());
                    connections.spawn(async move {
                        conn.serve::<L>().await;
                        drop(permit);
                    });
                    peak = peak.max(connections.len());
                }
            }
        }
        info!(
            connections = connections.len(),
            "shutting down: draining connections"
        );
        drop(listener);
        shared.stopping.store(true, Ordering::Release);
        stop.cancel();
        shutdown::drain(&mut connections, shared.config.drain_timeout).await;
        info!("stopped");
        Ok(())
    }
}

/// Waits for a free connection slot, then for a client, and names it. Both
/// waits are cancel-safe, so the accept loop may drop this future to reap
/// finished connections (a finished task's memory is freed only when reaped).
async fn accept<L: Listener>(
    limit: &Arc<Semaphore>,
    listener: &mut L,
) -> (Result<OwnedSemaphorePermit, AcquireError>, L::Io, Arc<Peer>) {
    let permit = Arc::clone(limit).acquire_owned().await;
    let (io, addr) = listener.accept().await;
    let peer = Arc::new(listener.peer(&io, &addr));
    (permit, io, peer)
}

/// Connections that must have been open at once before the last one closing
/// trims the heap.
const TRIM_AFTER: usize = 256;

/// Allocations from this size up are mapped on their own and unmapped when
/// freed (glibc's default, 128 KiB, but fixed).
const MMAP_THRESHOLD: usize = 256 * 1024;

/// Fixes glibc's mmap threshold, once per process. By default glibc raises
/// it up to 32 MiB after the first large buffer is freed, after which every
/// large frame, reply and event buffer comes from the heap arenas and stays
/// there, fragmented, when freed; fixed, those buffers go back to the
/// system as they are freed (and the trim threshold stays at its default).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's parameters, under its own locks.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        });
    }
}

/// Returns the heap pages freed by a crowd of closed connections to the
/// system: glibc keeps them otherwise, scattered between live allocations.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory, under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
