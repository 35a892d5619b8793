//! `typed_client ADDRESS`: calls the four timer procs through the stubs
//! `#[remote]` generates, all at once over one pipelined connection, and
//! prints what came back, the two refused jobs included.
//!
//! Exits 1 if a call fails in a way the contract does not foresee.

use std::process::ExitCode;

use clap::Parser;
use my_timer::{
    ComplexRemote, ComplexRequest, EchoRemote, EchoRequest, JobSpec, RetryPolicy, ScheduleConfig,
    ScheduleRemote, VersionRemote,
};
use rpc_core::{CallError, Client};

/// Call the timer's procs through typed stubs.
#[derive(Parser)]
#[command(after_help = "Example:\n  typed_client tcp:127.0.0.1:9099")]
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
            eprintln!("[typed_client] error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn job(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        payload: vec!["--full".into()],
        priority: 5,
    }
}

fn retry(max_attempts: i64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff_ms: 500,
        retry_on: vec!["timeout".into()],
    }
}

fn every_quarter_hour() -> ScheduleConfig {
    ScheduleConfig {
        start_at_ms: 1_000_000,
        interval_ms: 15_000,
        jitter: Some(250),
    }
}

/// The error text of a call the server refused (status 1).
fn refused<T: std::fmt::Debug>(result: Result<T, CallError>) -> Result<String, CallError> {
    match result {
        Err(CallError::Status(text)) => Ok(text),
        Err(e) => Err(e),
        Ok(reply) => Ok(format!("unexpectedly accepted: {reply:?}")),
    }
}

async fn run(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(address).await?;
    let echo = EchoRequest {
        message: "hello through a stub".into(),
        delay_ms: 5,
    };
    let complex = ComplexRequest {
        messages: vec![echo.clone(), echo.clone()],
        tags: vec!["typed".into()],
        note: Some("no hand-written CBOR".into()),
        retries: None,
    };
    // All six requests are written before the first reply is read.
    let (version, echo, complex, scheduled, empty_name, no_attempts) = tokio::join!(
        client.version(),
        client.echo(echo),
        client.complex(complex),
        client.schedule(job("nightly"), retry(3), every_quarter_hour()),
        client.schedule(job(""), retry(3), every_quarter_hour()),
        client.schedule(job("nightly"), retry(0), every_quarter_hour()),
    );
    println!("[typed_client] version  -> {:?}", version?);
    println!("[typed_client] echo     -> {:?}", echo?);
    println!("[typed_client] complex  -> {:?}", complex?);
    println!("[typed_client] schedule -> {:?}", scheduled?);
    println!(
        "[typed_client] schedule (empty name)    -> refused: {}",
        refused(empty_name)?
    );
    println!(
        "[typed_client] schedule (maxAttempts 0) -> refused: {}",
        refused(no_attempts)?
    );
    Ok(())
}
