//! `typed_events ADDRESS`: subscribes to the timer's two events through the
//! typed client, then calls `echo` and `schedule` on the same connection and
//! prints each event and each reply in the order they arrived: an event
//! before the reply of the call that fired it.
//!
//! Exits 1 if a call fails or an event is missing.

use std::process::ExitCode;

use clap::Parser;
use futures_util::{FutureExt, StreamExt};
use my_timer::{
    EchoFired, EchoRemote, EchoRequest, JobScheduled, JobSpec, RetryPolicy, ScheduleConfig,
    ScheduleRemote,
};
use rpc_core::client::Subscription;
use rpc_core::events::Event;
use rpc_core::{CallError, Client};
use serde::de::DeserializeOwned;

/// Subscribe to the timer's events and call the procs that fire them.
#[derive(Parser)]
#[command(after_help = "Example:\n  typed_events tcp:127.0.0.1:9099")]
struct Args {
    /// The server: tcp:HOST:PORT or unix:PATH.
    address: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args.address).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[typed_events] error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the event already waiting in `events`: it came before the reply
/// just received.
fn print_waiting<E>(events: &mut Subscription<E>) -> Result<(), CallError>
where
    E: Event + DeserializeOwned + std::fmt::Debug,
{
    match events.next().now_or_never() {
        Some(Some(event)) => {
            println!("[typed_events] event {:<16} <- {:?}", E::NAME, event?);
            Ok(())
        }
        _ => Err(CallError::Status(format!(
            "no {} event before the reply",
            E::NAME
        ))),
    }
}

async fn run(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(address).await?;
    let mut echoes = client.subscribe::<EchoFired>().await?;
    let mut jobs = client.subscribe::<JobScheduled>().await?;
    println!(
        "[typed_events] subscribed to {} and {}",
        EchoFired::NAME,
        JobScheduled::NAME
    );

    let reply = client
        .echo(EchoRequest {
            message: "hello, subscriber".into(),
            delay_ms: 5,
        })
        .await?;
    print_waiting(&mut echoes)?;
    println!("[typed_events] reply echo             <- {reply:?}");

    let job = JobSpec {
        name: "nightly".into(),
        payload: vec![],
        priority: 1,
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff_ms: 500,
        retry_on: vec![],
    };
    let every_quarter_hour = ScheduleConfig {
        start_at_ms: 0,
        interval_ms: 15_000,
        jitter: None,
    };
    let reply = client.schedule(job, retry, every_quarter_hour).await?;
    print_waiting(&mut jobs)?;
    println!("[typed_events] reply schedule         <- {reply:?}");
    Ok(())
}
