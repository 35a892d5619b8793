//! `typed_bench ADDRESS`: throughput and latency of one shared connection.
//!
//! `--in-flight` tasks (32 by default) share one [`Client`] and call `echo`
//! through its stub until `--calls` calls are done. With `--slow-every N`,
//! every N-th call is an `echo` with `delayMs` `--slow-ms` (100): the fast
//! calls' p50 and p99 then show whether slow calls hold them up, in the
//! base protocol (`--protocol base`, replies in order) or multiplexed (the
//! default when the server offers it). Prints a summary line, then one JSON
//! object. A measurement, not a test: run it against a release `serve_host`
//! on an otherwise idle machine.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use my_timer::{EchoRemote, EchoRequest};
use rpc_core::client::Protocol;
use rpc_core::{Address, CallError, Client};

/// Measure calls per second and fast-call latency over one shared connection.
#[derive(Parser)]
#[command(
    after_help = "Examples:\n  typed_bench tcp:127.0.0.1:9099 --calls 200000 --in-flight 32\n  \
                        typed_bench tcp:127.0.0.1:9099 --calls 20000 --in-flight 64 --slow-every 100 --protocol base"
)]
struct Args {
    /// The server: tcp:HOST:PORT or unix:PATH.
    address: String,
    /// Calls in all (after a warm-up of 1000).
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// Calls in flight at once, each from its own task.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Make every N-th call a slow echo (0: none).
    #[arg(long, default_value_t = 0)]
    slow_every: usize,
    /// The slow calls' `delayMs`.
    #[arg(long, default_value_t = 100)]
    slow_ms: i64,
    /// Multiplex when the server offers it, or keep the base protocol.
    #[arg(long, value_enum, default_value_t = Mode::Negotiate)]
    protocol: Mode,
}

/// `--protocol`.
#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Ask for multiplexing (rpc.hello).
    Negotiate,
    /// The base protocol: replies in request order.
    Base,
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
    let address: Address = args.address.parse()?;
    let protocol = match args.protocol {
        Mode::Negotiate => Protocol::Negotiate,
        Mode::Base => Protocol::Base,
    };
    let client = Client::connect_with_protocol(&address, protocol).await?;
    calls(&client, 1000, args).await?;
    let start = Instant::now();
    let mut fast = calls(&client, args.calls, args).await?;
    let seconds = start.elapsed().as_secs_f64();
    fast.sort_unstable();
    let percentile = |p: f64| {
        fast.get(((fast.len() as f64 * p) as usize).min(fast.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    let (p50, p99) = (percentile(0.50), percentile(0.99));
    let mode = if client.is_multiplexed() {
        "multiplexed"
    } else {
        "base"
    };
    println!(
        "{} echo calls, {} in flight on 1 connection ({mode}): {:.2} s, {:.0} calls/s, \
         fast calls p50 {p50} µs, p99 {p99} µs",
        args.calls,
        args.in_flight,
        seconds,
        args.calls as f64 / seconds
    );
    println!(
        "{{\"calls\": {}, \"errors\": 0, \"calls_per_s\": {:.0}, \"multiplexed\": {}, \
         \"fast_p50_us\": {p50}, \"fast_p99_us\": {p99}}}",
        args.calls,
        args.calls as f64 / seconds,
        client.is_multiplexed()
    );
    Ok(())
}

/// Makes `total` calls from `args.in_flight` tasks sharing `client`,
/// checking that each reply is the caller's own; the fast calls' latencies.
async fn calls(
    client: &Client,
    total: usize,
    args: &Args,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let next = Arc::new(AtomicUsize::new(0));
    let (slow_every, slow_ms) = (args.slow_every, args.slow_ms);
    let tasks: Vec<_> = (0..args.in_flight.max(1))
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut fast = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, CallError>(fast);
                    }
                    let slow = slow_every > 0 && i % slow_every == slow_every - 1;
                    let message = i.to_string();
                    let started = Instant::now();
                    let reply = client
                        .echo(EchoRequest {
                            message: message.clone(),
                            delay_ms: if slow { slow_ms } else { 0 },
                        })
                        .await?;
                    if !slow {
                        fast.push(started.elapsed());
                    }
                    assert_eq!(reply.echoed, message, "a reply reached the wrong caller");
                }
            })
        })
        .collect();
    let mut fast = Vec::with_capacity(total);
    for task in tasks {
        fast.extend(task.await??);
    }
    Ok(fast)
}
