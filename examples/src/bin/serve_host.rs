//! `serve_host ADDRESS`: links the timer library and lets it serve itself,
//! through the same C entry point (`my_timer_serve`) any other host calls.
//! `serve_host --describe` prints what it would serve (the reply of
//! `rpc.describe`) as JSON, without serving.

use std::ffi::CString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};

/// Serve the timer library's procs over a CBOR socket until SIGTERM or Ctrl-C.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  serve_host tcp:127.0.0.1:9099\n  serve_host --describe > timer.json\n  serve_host tcp:[::1]:0\n  serve_host unix:/tmp/timer.sock\n  RPC_TLS_CERT=cert.pem RPC_TLS_KEY=key.pem serve_host tls:127.0.0.1:9443\n\nRUST_LOG=debug shows one line per request. SIGHUP re-reads the TLS files."
)]
struct Args {
    /// Where to listen: tcp:HOST:PORT (port 0 picks a free port),
    /// tls:HOST:PORT (needs RPC_TLS_CERT and RPC_TLS_KEY) or unix:PATH.
    #[arg(required_unless_present = "describe")]
    address: Option<String>,
    /// Print the methods, events and CDDL (the reply of `rpc.describe`) as
    /// JSON and exit, without serving.
    #[arg(long, conflicts_with = "address")]
    describe: bool,
}

fn main() -> ExitCode {
    // The limits come from the one table that also parses them.
    let command = Args::command().after_long_help(format!(
        "{}\n\n{}",
        Args::command()
            .get_after_help()
            .map(|help| help.to_string())
            .unwrap_or_default(),
        rpc_core::server::env_help()
    ));
    let args = match Args::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let address = match args.address {
        Some(address) if !args.describe => address,
        _ => return describe(),
    };
    let Ok(address) = CString::new(address) else {
        eprintln!("serve_host: the address must not contain a NUL byte");
        return ExitCode::from(2);
    };
    // SAFETY: `address` is a valid NUL-terminated string for the whole call.
    let status = unsafe { my_timer::my_timer_serve(address.as_ptr()) };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

/// Prints the description of every method and event linked in (the
/// timer's and the built-ins) as JSON.
fn describe() -> ExitCode {
    // Naming the library links it, and its methods and events register.
    let _ = my_timer::VERSION;
    let tables = rpc_core::registry::Registry::global()
        .and_then(|registry| Ok((registry, rpc_core::events::EventTable::global()?)));
    let (registry, events) = match tables {
        Ok(tables) => tables,
        Err(e) => {
            eprintln!("serve_host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let description = rpc_core::builtins::describe::describe(registry, events);
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, &description)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_host: cannot write the description: {e}");
            ExitCode::FAILURE
        }
    }
}
