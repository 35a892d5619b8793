//! `client ADDRESS`: the reference exchange, written against the wire
//! contract alone (tokio and ciborium, nothing of this project), as a client
//! in any other language would be.
//!
//! Sends `version` with `{}` and `echo` with
//! `{"req": {"message": "hello over the wire", "delayMs": 5}}`, prints the
//! three `[client]` lines, and exits 1 if a reply is not what the contract says.

use std::process::ExitCode;

use ciborium::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MESSAGE: &str = "hello over the wire";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address] = args.as_slice() else {
        eprintln!("usage: client ADDRESS   (tcp:HOST:PORT or unix:PATH)");
        return ExitCode::from(2);
    };
    match run(address).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[client] error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn run(address: &str) -> Result<()> {
    if let Some(host_port) = address.strip_prefix("tcp:") {
        let stream = tokio::net::TcpStream::connect(host_port).await?;
        stream.set_nodelay(true)?;
        return exchange(stream).await;
    }
    #[cfg(unix)]
    if let Some(path) = address.strip_prefix("unix:") {
        return exchange(tokio::net::UnixStream::connect(path).await?).await;
    }
    Err(format!("unsupported address {address:?}").into())
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<()> {
    let version = call(&mut stream, "version", &Value::Map(vec![])).await?;
    let version = version.as_text().ok_or("version: the reply is not text")?;
    println!("[client] version = {version}");

    let req = Value::Map(vec![
        ("message".into(), MESSAGE.into()),
        ("delayMs".into(), 5.into()),
    ]);
    let echo = call(&mut stream, "echo", &Value::Map(vec![("req".into(), req)])).await?;
    let echoed = field(&echo, "echoed")?;
    let timer = field(&echo, "timerName")?;
    println!("[client] echo.echoed= {echoed}");
    println!("[client] echo.timer = {timer}");

    if version != "nim-timer v0.1.0" || echoed != MESSAGE || timer != "ipc-server" {
        return Err("a reply differs from the contract".into());
    }
    Ok(())
}

/// Sends one request frame and reads its reply: the CBOR item of a status 0
/// reply, or the error text of any other status.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    payload: &Value,
) -> Result<Value> {
    let mut body = Vec::new();
    ciborium::ser::into_writer(payload, &mut body)?;
    let mut frame = Vec::with_capacity(8 + method.len() + body.len());
    frame.extend_from_slice(&u32::try_from(method.len())?.to_be_bytes());
    frame.extend_from_slice(method.as_bytes());
    frame.extend_from_slice(&u32::try_from(body.len())?.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;

    let status = stream.read_i32().await?;
    let len = stream.read_u32().await? as usize;
    let mut reply = vec![0; len];
    stream.read_exact(&mut reply).await?;
    if status != 0 {
        return Err(format!(
            "{method}: status {status}: {}",
            String::from_utf8_lossy(&reply)
        )
        .into());
    }
    Ok(ciborium::de::from_reader(reply.as_slice())?)
}

/// The text value of `key` in a definite-length CBOR map.
fn field<'a>(map: &'a Value, key: &str) -> Result<&'a str> {
    let entries = map.as_map().ok_or("the reply is not a map")?;
    entries
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .and_then(|(_, v)| v.as_text())
        .ok_or_else(|| format!("the reply has no text field {key:?}").into())
}
