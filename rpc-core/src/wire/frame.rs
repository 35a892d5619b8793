//! The frame codec: length-prefixed requests and replies, big-endian.
//!
//! ```text
//! request : [u32 method_len][method][u32 payload_len][payload]
//! response: [i32 status    ][u32 body_len ][body]
//! ```
//!
//! Decoders follow tokio-util's `LengthDelimitedCodec`: the header is checked
//! against the frame limit before anything else, `Ok(None)` asks for more
//! bytes, and a whole frame is split off the read buffer without copying.
//! They never reserve what a header announces: the buffer grows only with
//! the bytes that actually arrive.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;

/// The default frame limit: 4 MiB for a request (method name and payload).
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// The default reply ceiling: the largest reply or event body a server
/// sends and a client accepts. 64 KiB above [`DEFAULT_MAX_FRAME`], so that
/// the reply (and the event) of an echo of a maximum request fit.
pub const DEFAULT_MAX_REPLY: usize = DEFAULT_MAX_FRAME + 64 * 1024;

/// Status of a successful reply: the body is one CBOR item.
pub const STATUS_OK: i32 = 0;
/// Status of an error reply: the body is UTF-8 text, never empty.
pub const STATUS_ERROR: i32 = 1;
/// Status of an event frame (`PROTOCOL.md`): not a reply; the body is the
/// CBOR envelope `{"eventType", "payload", ? "dropped"}`.
pub const STATUS_EVENT: i32 = 2;

pub(super) const LEN: usize = 4;

/// One request frame, split into its two parts without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method name as sent (normally UTF-8, not checked here).
    pub method: Bytes,
    /// The CBOR payload, not decoded here.
    pub payload: Bytes,
}

/// One response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status: [`STATUS_OK`], [`STATUS_ERROR`], or another value a peer sent.
    pub status: i32,
    /// The body: CBOR for status 0, UTF-8 text for status 1.
    pub body: Bytes,
}

pub(super) fn be_u32(buf: &[u8], at: usize) -> usize {
    let mut word = [0; LEN];
    word.copy_from_slice(&buf[at..at + LEN]);
    u32::from_be_bytes(word) as usize
}

/// Decodes request frames (server side) and encodes them (client side).
#[derive(Debug, Clone, Copy)]
pub struct RequestCodec {
    max_frame: usize,
}

impl RequestCodec {
    /// A codec refusing requests whose method name plus payload exceed `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The configured limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for RequestCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Where the parts of one whole request frame lie, from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    method_len: usize,
    payload_len: usize,
}

impl Frame {
    /// The whole frame's length, headers included.
    pub fn len(&self) -> usize {
        2 * LEN + self.method_len + self.payload_len
    }

    /// Never true: a frame has at least its two length headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The method name within `buf` (the buffer the frame was found in).
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[LEN..LEN + self.method_len]
    }

    /// The payload within `buf` (the buffer the frame was found in).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = 2 * LEN + self.method_len;
        &buf[start..start + self.payload_len]
    }
}

impl RequestCodec {
    /// Finds the request frame at the start of `src` without consuming it:
    /// `Ok(None)` until it is whole, an error as soon as a header announces
    /// more than the limit. The server reads frames in place with this, so a
    /// request costs no reference counting.
    pub fn frame(&self, src: &[u8]) -> Result<Option<Frame>, Error> {
        if src.len() < LEN {
            return Ok(None);
        }
        let method_len = be_u32(src, 0);
        if method_len > self.max_frame {
            return Err(Error::FrameTooLarge {
                what: "method name",
                len: method_len as u64,
                max: self.max_frame,
            });
        }
        let head = LEN + method_len + LEN;
        if src.len() < head {
            return Ok(None);
        }
        let payload_len = be_u32(src, LEN + method_len);
        if method_len + payload_len > self.max_frame {
            // Name the payload alone only when it alone is too large.
            let (what, len) = if payload_len > self.max_frame {
                ("payload", payload_len)
            } else {
                ("method name plus payload", method_len + payload_len)
            };
            return Err(Error::FrameTooLarge {
                what,
                len: len as u64,
                max: self.max_frame,
            });
        }
        if src.len() < head + payload_len {
            return Ok(None);
        }
        Ok(Some(Frame {
            method_len,
            payload_len,
        }))
    }
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, Error> {
        let Some(found) = self.frame(src)? else {
            return Ok(None);
        };
        let mut frame = src.split_to(found.len()).freeze();
        frame.advance(LEN);
        let method = frame.split_to(found.method_len);
        frame.advance(LEN);
        Ok(Some(Request {
            method,
            payload: frame,
        }))
    }
}

impl<M: AsRef<[u8]>, P: AsRef<[u8]>> Encoder<(M, P)> for RequestCodec {
    type Error = Error;

    fn encode(&mut self, (method, payload): (M, P), dst: &mut BytesMut) -> Result<(), Error> {
        encode_request(method.as_ref(), payload.as_ref(), dst);
        Ok(())
    }
}

/// Appends one request frame to `dst`.
pub fn encode_request(method: &[u8], payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(2 * LEN + method.len() + payload.len());
    dst.put_u32(frame_len(method.len()));
    dst.put_slice(method);
    dst.put_u32(frame_len(payload.len()));
    dst.put_slice(payload);
}

/// Appends one response frame to `dst`.
pub fn encode_response(status: i32, body: &[u8], dst: &mut BytesMut) {
    dst.reserve(2 * LEN + body.len());
    dst.put_i32(status);
    dst.put_u32(frame_len(body.len()));
    dst.put_slice(body);
}

fn frame_len(len: usize) -> u32 {
    // Every body is bounded by the frame limit long before 4 GiB; saturating
    // keeps a broken caller from writing a wrapped length.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes response frames (client side) and encodes them (server side).
#[derive(Debug, Clone, Copy)]
pub struct ResponseCodec {
    max_frame: usize,
}

impl ResponseCodec {
    /// A codec refusing response bodies over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

/// Accepts every body up to [`DEFAULT_MAX_REPLY`]: whatever a server with
/// the default limits sends.
impl Default for ResponseCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REPLY)
    }
}

impl Decoder for ResponseCodec {
    type Item = Response;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, Error> {
        if src.len() < 2 * LEN {
            return Ok(None);
        }
        let body_len = be_u32(src, LEN);
        if body_len > self.max_frame {
            return Err(Error::FrameTooLarge {
                what: "response body",
                len: body_len as u64,
                max: self.max_frame,
            });
        }
        if src.len() < 2 * LEN + body_len {
            return Ok(None);
        }
        let status = src.get_i32();
        src.advance(LEN);
        let body = src.split_to(body_len).freeze();
        Ok(Some(Response { status, body }))
    }
}

impl Encoder<Response> for ResponseCodec {
    type Error = Error;

    fn encode(&mut self, item: Response, dst: &mut BytesMut) -> Result<(), Error> {
        encode_response(item.status, &item.body, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_bytes(method: &[u8], payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_request(method, payload, &mut buf);
        buf
    }

    #[test]
    fn decodes_a_whole_frame_and_leaves_the_rest() {
        let mut buf = request_bytes(b"echo", &[0xa0]);
        buf.extend_from_slice(&[0, 0]);
        let req = RequestCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(&req.method[..], b"echo");
        assert_eq!(&req.payload[..], &[0xa0]);
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn reassembles_a_frame_fed_one_byte_at_a_time() {
        let whole = request_bytes(b"version", &[0xa1, 0x61, 0x61, 0x01]);
        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1, "at byte {i}");
            if let Some(req) = got {
                assert_eq!(&req.method[..], b"version");
                assert_eq!(&req.payload[..], &[0xa1, 0x61, 0x61, 0x01]);
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_an_oversized_method_name_from_the_header_alone() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = RequestCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            Error::FrameTooLarge {
                what: "method name",
                len: 0xffff_ffff,
                max: 1024
            }
        ));
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for the announced length"
        );
    }

    #[test]
    fn refuses_an_oversized_payload_from_the_header_alone() {
        let mut buf = BytesMut::new();
        buf.put_u32(4);
        buf.put_slice(b"echo");
        buf.put_u32(u32::MAX);
        let err = RequestCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            Error::FrameTooLarge {
                what: "payload",
                ..
            }
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn a_name_and_payload_over_the_limit_together_say_so() {
        let mut buf = request_bytes(b"echo", &[0; 8]);
        let err = RequestCodec::new(10).decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method name plus payload of 12 bytes exceeds the frame limit of 10 bytes"
        );
    }

    #[test]
    fn accepts_a_frame_exactly_at_the_limit() {
        let mut buf = request_bytes(b"m", &[0; 9]);
        assert!(RequestCodec::new(10).decode(&mut buf).unwrap().is_some());
        let mut buf = request_bytes(b"m", &[0; 10]);
        assert!(RequestCodec::new(10).decode(&mut buf).is_err());
    }

    #[test]
    fn response_round_trip() {
        let mut codec = ResponseCodec::default();
        let mut buf = BytesMut::new();
        let sent = Response {
            status: STATUS_ERROR,
            body: Bytes::from_static(b"boom"),
        };
        codec.encode(sent.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..], b"\0\0\0\x01\0\0\0\x04boom");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(sent));
        assert!(buf.is_empty());
    }
}
