//! `wire-baseline ADDRESS [--threads N]`: the cheapest tokio server for the
//! framing, the bound the real server is measured against. It decodes no
//! CBOR: `version` gets its fixed reply, `echo` gets
//! `{"echoed": M, "timerName": "ipc-server"}` with M copied from the
//! payload as raw bytes, anything else `unknown method: NAME`. Every whole
//! frame in a read is answered with one write.

use std::io;

use clap::Parser;
use rpc_bench::{push_echo_reply_body, push_reply, split_text, Addr, MAX_FRAME, VERSION_REPLY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

/// The command line.
#[derive(Parser)]
#[command(about = "The cheapest tokio server for the framing (no CBOR decoding)")]
struct Args {
    /// tcp:HOST:PORT or unix:PATH
    address: String,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let addr = Addr::parse(&args.address)?;
    rpc_bench::runtime(args.threads)
        .map_err(|e| e.to_string())?
        .block_on(serve(addr))
        .map_err(|e| format!("wire-baseline: {e}"))
}

async fn serve(addr: Addr) -> io::Result<()> {
    match addr {
        Addr::Tcp(hostport) => {
            let listener = TcpListener::bind(&hostport).await?;
            println!("listening on tcp:{}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(connection(stream));
            }
        }
        Addr::Tls(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the baseline serves tcp: and unix: only",
        )),
        Addr::Unix(path) => {
            // A stale socket file from an earlier run would make bind fail.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            println!("listening on unix:{}", path.display());
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(connection(stream));
            }
        }
    }
}

/// Serves one connection until it closes or sends an oversized frame.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut filled) = (0, 0);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let needed = loop {
            match frame(&buf[start..filled]) {
                Frame::Whole {
                    method,
                    payload,
                    len,
                } => {
                    answer(method, payload, &mut out);
                    start += len;
                }
                Frame::Partial { len } => break len,
                Frame::TooLarge => return,
            }
        };
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        // Keep the partial frame at the front, with room for all of it.
        buf.copy_within(start..filled, 0);
        filled -= start;
        start = 0;
        if needed > buf.len() || filled == buf.len() {
            buf.resize(needed.max(buf.len() * 2), 0);
        }
    }
}

/// What the front of the read buffer holds.
enum Frame<'a> {
    /// A whole request of `len` bytes.
    Whole {
        method: &'a [u8],
        payload: &'a [u8],
        len: usize,
    },
    /// Not yet a whole request; `len` is its size when known (else 0).
    Partial { len: usize },
    /// A header announcing more than `MAX_FRAME`.
    TooLarge,
}

fn frame(buf: &[u8]) -> Frame<'_> {
    let u32_at = |at: usize| {
        buf.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
    };
    let Some(method_len) = u32_at(0) else {
        return Frame::Partial { len: 0 };
    };
    if method_len > MAX_FRAME {
        return Frame::TooLarge;
    }
    let Some(payload_len) = u32_at(4 + method_len) else {
        return Frame::Partial { len: 0 };
    };
    if method_len + payload_len > MAX_FRAME {
        return Frame::TooLarge;
    }
    let len = 8 + method_len + payload_len;
    if buf.len() < len {
        return Frame::Partial { len };
    }
    Frame::Whole {
        method: &buf[4..4 + method_len],
        payload: &buf[8 + method_len..len],
        len,
    }
}

/// Appends the reply to one request.
fn answer(method: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    match method {
        b"version" => push_reply(0, VERSION_REPLY, out),
        b"echo" => {
            // The message is the text after the key "message" (loadgen's layout).
            let message = payload
                .windows(8)
                .position(|w| w == b"\x67message")
                .and_then(|at| split_text(&payload[at + 8..]))
                .map_or(&b"\x60"[..], |(item, _)| item);
            let at = out.len();
            push_reply(0, &[], out);
            push_echo_reply_body(message, out);
            let body_len = (out.len() - at - 8) as u32;
            out[at + 4..at + 8].copy_from_slice(&body_len.to_be_bytes());
        }
        _ => {
            let text = format!("unknown method: {}", String::from_utf8_lossy(method));
            push_reply(1, text.as_bytes(), out);
        }
    }
}
