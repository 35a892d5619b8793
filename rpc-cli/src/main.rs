//! # rpc
//!
//! The command line of an rpc-core server, for people (what grpcurl is to
//! gRPC): `rpc call` sends a method JSON arguments as a CBOR map and prints
//! the reply as JSON, `rpc describe` lists what the server serves and its
//! CDDL (the built-in `rpc.describe`), `rpc listen` prints the server's
//! events as JSON lines (the built-in `rpc.subscribe`).
//!
//! # Layout
//!
//! - `main`: the commands, their connection and their exit status (0 done;
//!   1 the server answered an error, its text on stderr; 2 bad arguments,
//!   bad JSON, no connection, no reply in time);
//! - `json`: JSON arguments to CBOR and CBOR replies to JSON.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use bytes::BytesMut;
use ciborium::Value;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use rpc_core::builtins::describe::Description;
use rpc_core::client::{connect_stream, ClientOptions};
use rpc_core::wire::DESCRIBE;
use rpc_core::wire::{encode_request, ResponseCodec, STATUS_ERROR, STATUS_OK};
use rpc_core::{Address, CallError, Client};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

mod json;

/// The built-in method `listen` calls (the events extension of the protocol).
const SUBSCRIBE: &str = "rpc.subscribe";
/// The status of an event frame: not a reply.
const STATUS_EVENT: i32 = 2;

const AFTER_HELP: &str = "\
Examples:
  rpc call tcp:127.0.0.1:9099 version
  rpc call tcp:127.0.0.1:9099 echo '{\"req\": {\"message\": \"hi\", \"delayMs\": 10}}'
  rpc call unix:/tmp/timer.sock complex '{\"req\": {\"messages\": [], \"tags\": [\"a\"]}}'
  rpc describe tcp:127.0.0.1:9099
  rpc listen tcp:127.0.0.1:9099 on_echo_fired
  RUST_LOG=debug rpc --timeout 2 call tcp:127.0.0.1:9099 version
  rpc --ca ca.pem call tls:127.0.0.1:9443 version
  rpc --ca ca.pem --cert me.pem --key me.key describe tls:rpc.internal:9443

Replies print as JSON (RFC 8949 section 6.1): integers as integers, byte
strings as base64url text without padding, tags as their content.

Exit status: 0 done; 1 the server answered an error (its text on stderr);
2 bad arguments or JSON, no connection, or no reply within the timeout.";

/// Call, describe or listen to an rpc-core server over TCP, TLS or a unix socket.
#[derive(Parser)]
#[command(name = "rpc", version, after_help = AFTER_HELP)]
struct Cli {
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, global = true, default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    timeout: Duration,
    /// tls: the CA certificates (PEM) the server's certificate must chain
    /// to; without it, the system's root certificates.
    #[arg(long, global = true, env = "RPC_TLS_CA", value_name = "PEM")]
    ca: Option<PathBuf>,
    /// tls: a client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(
        long,
        global = true,
        env = "RPC_TLS_CLIENT_CERT",
        value_name = "PEM",
        requires = "key"
    )]
    cert: Option<PathBuf>,
    /// tls: the private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        env = "RPC_TLS_CLIENT_KEY",
        value_name = "PEM",
        requires = "cert"
    )]
    key: Option<PathBuf>,
    /// tls: the name the server's certificate must be valid for, when it is
    /// not the address's host.
    #[arg(long, global = true, env = "RPC_TLS_SERVER_NAME", value_name = "NAME")]
    server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Call METHOD with JSON arguments and print the reply as JSON.
    Call {
        /// The server: tcp:HOST:PORT, tls:HOST:PORT or unix:PATH.
        address: String,
        /// The method's name, such as `echo`.
        method: String,
        /// The arguments: a JSON object whose keys are the parameter names.
        #[arg(default_value = "{}")]
        json: String,
    },
    /// List the methods with their parameters and the events, then the CDDL.
    Describe {
        /// The server: tcp:HOST:PORT, tls:HOST:PORT or unix:PATH.
        address: String,
    },
    /// Subscribe to EVENTs (every event if none is named) and print each as
    /// a JSON line until interrupted.
    Listen {
        /// The server: tcp:HOST:PORT, tls:HOST:PORT or unix:PATH.
        address: String,
        /// Event names, such as `on_echo_fired`.
        events: Vec<String>,
    },
}

/// How to reach the server: the reply timeout and the connection's options.
struct Target {
    timeout: Duration,
    options: ClientOptions,
}

/// Why a command failed, and so its exit status.
enum Failure {
    /// The server answered status 1 (or another non-success): exit 1.
    Refused(String),
    /// Nothing to ask or no one to ask: exit 2.
    Fatal(String),
}

use Failure::{Fatal, Refused};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(Fatal(format!("cannot start the runtime: {e}"))),
    };
    let mut options = ClientOptions::default().connect_timeout(cli.timeout);
    options.ca = cli.ca;
    options.cert = cli.cert;
    options.key = cli.key;
    options.server_name = cli.server_name;
    let to = Target {
        timeout: cli.timeout,
        options,
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Call {
                address,
                method,
                json,
            } => call(&address, &method, &json, &to).await,
            Command::Describe { address } => describe(&address, &to).await,
            Command::Listen { address, events } => listen(&address, &events, &to).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(failure),
    }
}

fn fail(failure: Failure) -> ExitCode {
    match failure {
        Refused(text) => {
            eprintln!("{text}");
            ExitCode::from(1)
        }
        Fatal(text) => {
            eprintln!("rpc: {text}");
            ExitCode::from(2)
        }
    }
}

/// `--timeout`: positive seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err("the timeout must be positive".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

async fn call(address: &str, method: &str, json: &str, to: &Target) -> Result<(), Failure> {
    let payload = json::json_to_cbor(json)
        .map_err(|e| Fatal(format!("the arguments are not valid JSON: {e}")))?;
    let client = connect(address, to).await?;
    let body = client
        .call_raw(method, payload)
        .await
        .map_err(|e| call_failure(method, e))?;
    let reply = json::decode(&body)
        .map_err(|e| Fatal(format!("{method}: the reply is not one CBOR item: {e}")))?;
    print(&json::to_pretty(&reply))
}

async fn describe(address: &str, to: &Target) -> Result<(), Failure> {
    let client = connect(address, to).await?;
    let body = client
        .call_raw(DESCRIBE, vec![0xa0])
        .await
        .map_err(|e| call_failure(DESCRIBE, e))?;
    let description: Description = rpc_core::wire::cbor::from_slice(&body)
        .map_err(|e| Fatal(format!("{DESCRIBE}: unexpected reply: {e}")))?;
    let mut out = String::from("methods:\n");
    for method in &description.methods {
        out.push_str(&format!(
            "  {}({})\n",
            method.name,
            method.params.join(", ")
        ));
    }
    if description.events.is_empty() {
        out.push_str("events: none\n");
    } else {
        out.push_str("events:\n");
        for event in &description.events {
            out.push_str(&format!("  {event}\n"));
        }
    }
    out.push('\n');
    out.push_str(description.cddl.trim_end());
    print(&out)
}

async fn listen(address: &str, events: &[String], to: &Target) -> Result<(), Failure> {
    let address: Address = address.parse().map_err(|e| Fatal(format!("{e}")))?;
    let timeout = to.timeout;
    let (read, mut write) = open(&address, &to.options).await?;
    let names = events.iter().map(|e| Value::Text(e.clone())).collect();
    let payload = Value::Map(vec![(Value::Text("events".into()), Value::Array(names))]);
    let mut payload_bytes = Vec::new();
    ciborium::ser::into_writer(&payload, &mut payload_bytes)
        .map_err(|e| Fatal(format!("cannot encode the subscription: {e}")))?;
    let mut frame = BytesMut::new();
    encode_request(SUBSCRIBE.as_bytes(), &payload_bytes, &mut frame);
    write
        .write_all(&frame)
        .await
        .map_err(|e| Fatal(format!("cannot send to {address}: {e}")))?;

    let mut frames = FramedRead::new(read, ResponseCodec::default());
    // Only the subscription's reply has a deadline; events may take forever.
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut subscribed = false;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let frame = tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = &mut deadline, if !subscribed => {
                return Err(Fatal(format!("no reply to {SUBSCRIBE} within {}", show(timeout))));
            }
            frame = frames.next() => frame,
        };
        let response = match frame {
            Some(Ok(response)) => response,
            Some(Err(e)) => return Err(Fatal(format!("{address}: {e}"))),
            None => return Err(Fatal(format!("{address} closed the connection"))),
        };
        match response.status {
            STATUS_EVENT => {
                let event = json::decode(&response.body)
                    .map_err(|e| Fatal(format!("an event is not one CBOR item: {e}")))?;
                print(&json::to_line(&event))?;
            }
            STATUS_OK if !subscribed => {
                subscribed = true;
                let reply = json::decode(&response.body)
                    .map_err(|e| Fatal(format!("{SUBSCRIBE}: unexpected reply: {e}")))?;
                eprintln!("rpc: {SUBSCRIBE}: {}", json::to_line(&reply));
            }
            STATUS_ERROR => {
                return Err(Refused(
                    String::from_utf8_lossy(&response.body).into_owned(),
                ));
            }
            status => {
                return Err(Refused(format!(
                    "rpc: unexpected frame status {status} ({} body bytes)",
                    response.body.len()
                )))
            }
        }
    }
}

/// A pipelined client of `address`, giving up after the timeout.
async fn connect(address: &str, to: &Target) -> Result<Client, Failure> {
    let address: Address = address.parse().map_err(|e| Fatal(format!("{e}")))?;
    match Client::connect_to_with(&address, &to.options).await {
        Ok(client) => Ok(client.with_timeout(to.timeout)),
        Err(e) => Err(Fatal(e.to_string())),
    }
}

type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;

/// A raw connection for `listen`, whose frames are not all replies.
async fn open(
    address: &Address,
    options: &ClientOptions,
) -> Result<(ReadHalf, WriteHalf), Failure> {
    let stream = connect_stream(address, options)
        .await
        .map_err(|e| Fatal(e.to_string()))?;
    let (read, write) = tokio::io::split(stream);
    Ok((Box::pin(read), Box::pin(write)))
}

fn call_failure(method: &str, error: CallError) -> Failure {
    match error {
        CallError::Status(text) => Refused(text),
        CallError::UnexpectedStatus { status, body } => Refused(format!(
            "rpc: {method}: unexpected reply status {status} ({} body bytes)",
            body.len()
        )),
        CallError::Closed => Fatal(format!(
            "{method}: the connection closed before the reply arrived"
        )),
        CallError::Timeout(timeout) => {
            Fatal(format!("no reply to {method} within {}", show(timeout)))
        }
        other => Fatal(format!("{method}: {other}")),
    }
}

fn show(timeout: Duration) -> String {
    format!("{} s", timeout.as_secs_f64())
}

/// Prints `text` and a newline; a closed stdout (`| head`) ends quietly.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fatal(format!("cannot write the output: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("inf").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["rpc", "--timeout", "2", "call", "tcp:h:1", "echo"]);
        assert_eq!(cli.timeout, Duration::from_secs(2));
        let Command::Call { json, .. } = cli.command else {
            panic!("not a call")
        };
        assert_eq!(json, "{}");
    }

    use clap::CommandFactory as _;
}
