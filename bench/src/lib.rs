//! What `loadgen` and `wire-baseline` share: addresses, the frame layout and
//! the few CBOR items of the benchmark, written by hand so that the harness
//! measures the server and not a codec of its own.

use std::path::PathBuf;

/// Where a server listens: `tcp:HOST:PORT`, `tls:HOST:PORT` or `unix:PATH`.
#[derive(Debug, Clone)]
pub enum Addr {
    /// `HOST:PORT`, as given to `TcpStream::connect`.
    Tcp(String),
    /// `HOST:PORT` of a TLS server (loadgen only).
    Tls(String),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Parses `tcp:HOST:PORT`, `tls:HOST:PORT` or `unix:PATH`.
    pub fn parse(text: &str) -> Result<Addr, String> {
        if let Some(rest) = text.strip_prefix("tcp:") {
            Ok(Addr::Tcp(rest.to_owned()))
        } else if let Some(rest) = text.strip_prefix("tls:") {
            Ok(Addr::Tls(rest.to_owned()))
        } else if let Some(rest) = text.strip_prefix("unix:") {
            Ok(Addr::Unix(PathBuf::from(rest)))
        } else {
            Err(format!(
                "{text:?}: expected tcp:HOST:PORT, tls:HOST:PORT or unix:PATH"
            ))
        }
    }
}

/// The largest frame either binary accepts (the server's default limit).
pub const MAX_FRAME: usize = 4 << 20;

/// `version`'s reply body: the CBOR text `"nim-timer v0.1.0"`.
pub const VERSION_REPLY: &[u8] = b"\x70nim-timer v0.1.0";

/// The runtime of a benchmark binary: one thread (current-thread) unless
/// `threads` asks for more.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Appends a CBOR text header for `len` bytes (major type 3, shortest form).
pub fn text_header(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=23 => out.push(0x60 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x78, len as u8]),
        0x100..=0xffff => {
            out.push(0x79);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x7a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// Splits a definite CBOR text item (header and bytes) off the front of
/// `buf`: `(item, rest)`, or `None` if `buf` does not start with one.
pub fn split_text(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *buf.first()?;
    if first >> 5 != 3 {
        return None;
    }
    let (head, len): (usize, usize) = match first & 0x1f {
        n @ 0..=23 => (1, n as usize),
        24 => (2, *buf.get(1)? as usize),
        25 => (
            3,
            u16::from_be_bytes(buf.get(1..3)?.try_into().ok()?) as usize,
        ),
        26 => (
            5,
            u32::from_be_bytes(buf.get(1..5)?.try_into().ok()?) as usize,
        ),
        _ => return None,
    };
    let end = head.checked_add(len)?;
    (buf.len() >= end).then(|| buf.split_at(end))
}

/// Appends one request frame: `[u32 len][method][u32 len][payload]`.
pub fn push_request(method: &str, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(method.len() as u32).to_be_bytes());
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends one reply frame: `[i32 status][u32 len][body]`.
pub fn push_reply(status: i32, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// `echo`'s payload `{"req": {"message": M, "delayMs": 0}}` and the CBOR
/// text item of M, for a message of `len` bytes of `x`.
pub fn echo_payload(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut message = Vec::with_capacity(len + 5);
    text_header(len, &mut message);
    message.resize(message.len() + len, b'x');
    let mut payload = b"\xa1\x63req\xa2\x67message".to_vec();
    payload.extend_from_slice(&message);
    payload.extend_from_slice(b"\x67delayMs\x00");
    (payload, message)
}

/// Appends `echo`'s reply `{"echoed": M, "timerName": "ipc-server"}`, M
/// given as its CBOR text item.
pub fn push_echo_reply_body(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"\xa2\x66echoed");
    out.extend_from_slice(message);
    out.extend_from_slice(b"\x69timerName\x6aipc-server");
}

/// The message of an echo reply body (as its CBOR text item), if the body
/// is `{"echoed": text, ...}` with `echoed` first, as the contract encodes it.
pub fn echoed(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(b"\xa2\x66echoed")?;
    split_text(rest).map(|(item, _)| item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_items_round_trip_at_every_header_size() {
        for len in [0, 23, 24, 255, 256, 65535, 65536] {
            let mut item = Vec::new();
            text_header(len, &mut item);
            item.resize(item.len() + len, b'x');
            item.push(0xff);
            let (text, rest) = split_text(&item).unwrap();
            assert_eq!(text.len(), item.len() - 1);
            assert_eq!(rest, [0xff]);
        }
        assert!(split_text(b"\x65abc").is_none());
        assert!(split_text(b"\xa0").is_none());
    }

    #[test]
    fn the_echo_reply_carries_the_message_back() {
        let (_, message) = echo_payload(300);
        let mut body = Vec::new();
        push_echo_reply_body(&message, &mut body);
        assert_eq!(echoed(&body), Some(&message[..]));
        assert_eq!(echoed(VERSION_REPLY), None);
    }

    #[test]
    fn the_echo_payload_is_the_contract_s_map() {
        let (payload, _) = echo_payload(2);
        assert_eq!(payload, b"\xa1\x63req\xa2\x67message\x62xx\x67delayMs\x00");
    }
}
