//! `typed_bench ADDRESS`: throughput of one shared, pipelined connection.
//!
//! `--in-flight` tasks (32 by default) share one [`Client`] and call `echo`
//! (no delay) through its stub until `--calls` calls are done; prints the
//! calls per second. A measurement, not a test: run it against a release
//! `serve_host` on an otherwise idle machine.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use my_timer::{EchoRemote, EchoRequest};
use rpc_core::{CallError, Client};

/// Measure calls per second over one shared connection.
#[derive(Parser)]
#[command(after_help = "Example:\n  typed_bench tcp:127.0.0.1:9099 --calls 200000 --in-flight 32")]
struct Args {
    /// The server: tcp:HOST:PORT or unix:PATH.
    address: String,
    /// Calls in all (after a warm-up of 1000).
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// Calls in flight at once, each from its own task.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("typed_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(&args.address).await?;
    calls(&client, 1000, args.in_flight).await?;
    let start = Instant::now();
    calls(&client, args.calls, args.in_flight).await?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} echo calls, {} in flight on 1 connection: {:.2} s, {:.0} calls/s",
        args.calls,
        args.in_flight,
        seconds,
        args.calls as f64 / seconds
    );
    Ok(())
}

/// Makes `total` calls from `in_flight` tasks sharing `client`, checking
/// that each reply is the caller's own.
async fn calls(
    client: &Client,
    total: usize,
    in_flight: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..in_flight.max(1))
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, CallError>(());
                    }
                    let message = i.to_string();
                    let reply = client
                        .echo(EchoRequest {
                            message: message.clone(),
                            delay_ms: 0,
                        })
                        .await?;
                    assert_eq!(reply.echoed, message, "a reply reached the wrong caller");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
