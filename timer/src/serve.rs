//! The library serving itself: [`serve`] for Rust hosts and the C ABI
//! [`my_timer_serve`] for every other host. Compiled only with the `serve`
//! feature.

use std::ffi::{c_char, c_int, CStr};
use std::io::IsTerminal;

use rpc_core::server::{shutdown_signal, Config, Listener, Server};
use rpc_core::{Address, Context};

use crate::Timer;

/// The name of the timer a served library uses as its context.
pub const SERVER_TIMER_NAME: &str = "ipc-server";

/// Serves every `#[remote]` proc of the program on `address` until SIGTERM
/// or Ctrl-C, then drains and returns.
///
/// Prints `listening on ADDRESS` (with the real port) once bound. Sets up a
/// `tracing` subscriber driven by `RUST_LOG` unless the host installed one.
/// The server's limits are the defaults of [`Config`], overridden by the
/// `RPC_*` variables of [`Config::from_env`] (`RPC_MAX_CONNECTIONS=64`, say).
pub fn serve(address: &str) -> Result<(), rpc_core::Error> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let address: Address = address.parse()?;
    let config = Config::from_env()?;
    let server =
        Server::new(Context::new().with(Timer::new(SERVER_TIMER_NAME)))?.with_config(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = Listener::bind(&address).await?;
        println!("listening on {}", listener.local_address());
        server.serve(listener, shutdown_signal()).await
    })
}

/// Serves the library on `address` (`tcp:HOST:PORT` or `unix:PATH`) and
/// blocks until SIGTERM or Ctrl-C stops it.
///
/// Returns 0 after a graceful stop; 2 for a null, non-UTF-8 or malformed
/// address or an invalid `RPC_*` limit; 1 when serving fails (the address
/// cannot be bound, say). Every failure prints one line
/// `my_timer_serve: ...` on stderr. A panic never crosses this boundary.
///
/// # Safety
///
/// `address` must be null or point to a NUL-terminated string that stays
/// valid for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn my_timer_serve(address: *const c_char) -> c_int {
    let fail = |code, message: &dyn std::fmt::Display| {
        eprintln!("my_timer_serve: {message}");
        code
    };
    if address.is_null() {
        return fail(2, &"the address is a null pointer");
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string.
    let address = unsafe { CStr::from_ptr(address) };
    let Ok(address) = address.to_str() else {
        return fail(2, &"the address is not valid UTF-8");
    };
    match std::panic::catch_unwind(|| serve(address)) {
        Ok(Ok(())) => 0,
        Ok(Err(
            e @ (rpc_core::Error::InvalidAddress { .. }
            | rpc_core::Error::UnixUnsupported(_)
            | rpc_core::Error::InvalidConfig { .. }),
        )) => fail(2, &e),
        Ok(Err(e)) => fail(1, &e),
        Err(_) => fail(1, &"internal error: the server panicked"),
    }
}
