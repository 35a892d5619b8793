//! The library serving itself: [`serve`] for Rust hosts and the C ABI
//! [`my_timer_serve`] for every other host. Compiled only with the `serve`
//! feature.

use std::ffi::{c_char, c_int, CStr};
use std::io::{IsTerminal, Write};

use rpc_core::server::{shutdown_signal, Bound, Config, Server};
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
/// `RPC_*` variables of [`Config::from_env`] (`RPC_MAX_CONNECTIONS=64`, say;
/// `RPC_TLS_CERT` and `RPC_TLS_KEY` for a `tls:` address).
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
    // The server delivers the events of the hub in its context: the timer's.
    let timer = Timer::new(SERVER_TIMER_NAME);
    let context = Context::new().with(timer.events().clone()).with(timer);
    let server = Server::new(context)?.with_config(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = Bound::bind_with(&address, server.config()).await?;
        // Before announcing the address: a SIGTERM sent as soon as a client
        // reads that line must already find the handler.
        let shutdown = shutdown_signal();
        // Written, not printed: a closed stdout is an error, not a panic.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_address())?;
        stdout.flush()?;
        drop(stdout);
        server.serve(listener, shutdown).await
    })
}

/// Serves the library on `address` (`tcp:HOST:PORT`, `tls:HOST:PORT` or
/// `unix:PATH`) and blocks until SIGTERM or Ctrl-C stops it. A `tls:`
/// address takes its certificate from `RPC_TLS_CERT` and `RPC_TLS_KEY`
/// (and mutual TLS from `RPC_TLS_CLIENT_CA`); SIGHUP re-reads them.
///
/// Returns 0 after a graceful stop; 2 for a null, non-UTF-8 or malformed
/// address (or a unix one where there are no unix sockets, or whose path
/// holds something other than a socket: a regular file, a symbolic link, a
/// directory), an invalid `RPC_*` limit, or a `tls:` address without a
/// usable certificate, key or client CA file (the message names the file);
/// 1 when serving fails (the address cannot be bound, another server listens
/// on the unix path, say).
/// Every failure prints one line `my_timer_serve: ...` on stderr. A panic
/// never crosses this boundary.
///
/// # Safety
///
/// `address` must be null or point to a NUL-terminated string that stays
/// valid for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn my_timer_serve(address: *const c_char) -> c_int {
    // Everything, the failure report included, runs under `catch_unwind`:
    // unwinding into a C caller is undefined behaviour.
    let outcome = std::panic::catch_unwind(|| {
        if address.is_null() {
            return Err((2, "the address is a null pointer".to_owned()));
        }
        // SAFETY: non-null, and the caller promises a NUL-terminated string.
        let address = unsafe { CStr::from_ptr(address) };
        let address = address
            .to_str()
            .map_err(|_| (2, "the address is not valid UTF-8".to_owned()))?;
        serve(address).map_err(|e| (exit_code(&e), e.to_string()))
    });
    let (code, message) = match outcome {
        Ok(Ok(())) => return 0,
        Ok(Err(failure)) => failure,
        Err(_) => (1, "internal error: the server panicked".to_owned()),
    };
    let _ = std::panic::catch_unwind(|| {
        // One line, even for a unix path with a newline in it; a failed
        // write to stderr has nowhere to be reported.
        let line = message.replace(['\n', '\r'], " ");
        let _ = writeln!(std::io::stderr(), "my_timer_serve: {line}");
    });
    code
}

/// 2 for what the caller got wrong before anything was bound (the address,
/// the limits, the TLS files), 1 for a server that could not run.
fn exit_code(error: &rpc_core::Error) -> c_int {
    match error {
        rpc_core::Error::InvalidAddress { .. }
        | rpc_core::Error::UnixUnsupported(_)
        | rpc_core::Error::UnixPathTaken { .. }
        | rpc_core::Error::InvalidConfig { .. }
        | rpc_core::Error::Tls(_) => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_c(address: &[u8]) -> c_int {
        let address = std::ffi::CString::new(address).unwrap();
        // SAFETY: a valid NUL-terminated string for the whole call.
        unsafe { my_timer_serve(address.as_ptr()) }
    }

    #[test]
    fn bad_addresses_are_status_2() {
        // SAFETY: null is allowed.
        assert_eq!(unsafe { my_timer_serve(std::ptr::null()) }, 2);
        assert_eq!(serve_c(b"tcp:127.0.0.1:\xff"), 2);
        assert_eq!(serve_c(b"tcp:nohost"), 2);
        assert_eq!(serve_c(b""), 2);
    }

    #[test]
    fn a_bind_failure_is_status_1() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("tcp:{}", taken.local_addr().unwrap());
        assert_eq!(serve_c(address.as_bytes()), 1);
    }
}
