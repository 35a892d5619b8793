//! The multiplexed framing a connection switches to after `rpc.hello`
//! enables `"multiplex"` (`PROTOCOL.md`), big-endian:
//!
//! ```text
//! request : [u32 id][u32 timeout_ms][u32 method_len][method][u32 payload_len][payload]
//! response: [u32 id][i32 status    ][u32 body_len  ][body]
//! ```
//!
//! The limits are the base framing's: method name plus payload, or a reply
//! body, at most the frame limit, checked from the headers alone.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::frame::{
    be_u32, encode_request, encode_response, Frame, RequestCodec, DEFAULT_MAX_REPLY, LEN,
};
use crate::Error;

/// The built-in method that negotiates protocol features.
pub const HELLO: &str = "rpc.hello";
/// The built-in method that drops a multiplexed call in flight.
pub const CANCEL: &str = "rpc.cancel";
/// The feature that switches a connection to the multiplexed framing.
pub const MULTIPLEX: &str = "multiplex";
/// The call id of event frames in the multiplexed framing: no call has it.
pub const EVENT_ID: u32 = 0;

/// The id and deadline words before a multiplexed request's base frame.
const PREFIX: usize = 2 * LEN;

/// Where the parts of one whole multiplexed request lie, from the start of
/// a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxFrame {
    id: u32,
    timeout_ms: u32,
    /// The base request frame after the two words.
    frame: Frame,
}

impl MuxFrame {
    /// The whole frame's length, headers included.
    pub fn len(&self) -> usize {
        PREFIX + self.frame.len()
    }

    /// Never true: a frame has at least its four headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The call id the client chose (0 is refused by the server, not here).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The call's deadline in milliseconds; 0 means none.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// The method name within `buf` (the buffer the frame was found in).
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.frame.method(&buf[PREFIX..])
    }

    /// The payload within `buf` (the buffer the frame was found in).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.frame.payload(&buf[PREFIX..])
    }
}

impl RequestCodec {
    /// Finds the multiplexed request at the start of `src` without
    /// consuming it: `Ok(None)` until it is whole, an error as soon as a
    /// header announces more than the limit.
    pub fn mux_frame(&self, src: &[u8]) -> Result<Option<MuxFrame>, Error> {
        if src.len() < PREFIX {
            return Ok(None);
        }
        // After the two words, the base frame with its limits.
        Ok(self.frame(&src[PREFIX..])?.map(|frame| MuxFrame {
            id: be_u32(src, 0) as u32,
            timeout_ms: be_u32(src, LEN) as u32,
            frame,
        }))
    }
}

/// Appends one multiplexed request frame to `dst`.
pub fn encode_mux_request(
    id: u32,
    timeout_ms: u32,
    method: &[u8],
    payload: &[u8],
    dst: &mut BytesMut,
) {
    dst.reserve(PREFIX);
    dst.put_u32(id);
    dst.put_u32(timeout_ms);
    encode_request(method, payload, dst);
}

/// Appends one multiplexed response frame to `dst`.
pub fn encode_mux_response(id: u32, status: i32, body: &[u8], dst: &mut BytesMut) {
    dst.reserve(LEN);
    dst.put_u32(id);
    encode_response(status, body, dst);
}

/// One multiplexed response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxResponse {
    /// The call it answers; [`EVENT_ID`] for an event frame.
    pub id: u32,
    /// The status, as in the base framing.
    pub status: i32,
    /// The body, as in the base framing.
    pub body: Bytes,
}

/// Decodes multiplexed response frames (client side).
#[derive(Debug, Clone, Copy)]
pub struct MuxResponseCodec {
    max_frame: usize,
}

impl MuxResponseCodec {
    /// A codec refusing response bodies over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl Default for MuxResponseCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REPLY)
    }
}

impl Decoder for MuxResponseCodec {
    type Item = MuxResponse;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MuxResponse>, Error> {
        if src.len() < 3 * LEN {
            return Ok(None);
        }
        let body_len = be_u32(src, 2 * LEN);
        if body_len > self.max_frame {
            return Err(Error::FrameTooLarge {
                what: "response body",
                len: body_len as u64,
                max: self.max_frame,
            });
        }
        if src.len() < 3 * LEN + body_len {
            return Ok(None);
        }
        let id = src.get_u32();
        let status = src.get_i32();
        src.advance(LEN);
        let body = src.split_to(body_len).freeze();
        Ok(Some(MuxResponse { id, status, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_found_in_place_with_its_id_and_deadline() {
        let mut buf = BytesMut::new();
        encode_mux_request(7, 250, b"echo", &[0xa0], &mut buf);
        assert_eq!(
            &buf[..],
            b"\0\0\0\x07\0\0\0\xfa\0\0\0\x04echo\0\0\0\x01\xa0"
        );
        buf.put_u8(0xff);
        let frame = RequestCodec::default().mux_frame(&buf).unwrap().unwrap();
        assert_eq!((frame.id(), frame.timeout_ms()), (7, 250));
        assert_eq!(frame.method(&buf), b"echo");
        assert_eq!(frame.payload(&buf), &[0xa0]);
        assert_eq!(frame.len(), buf.len() - 1);
    }

    #[test]
    fn a_request_fed_one_byte_at_a_time_is_whole_only_at_its_last_byte() {
        let mut whole = BytesMut::new();
        encode_mux_request(1, 0, b"version", &[0xa0], &mut whole);
        let codec = RequestCodec::default();
        for end in 0..whole.len() {
            assert_eq!(codec.mux_frame(&whole[..end]).unwrap(), None, "at {end}");
        }
        assert!(codec.mux_frame(&whole).unwrap().is_some());
    }

    #[test]
    fn oversized_headers_are_refused_before_their_bytes_arrive() {
        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_u32(0);
        buf.put_u32(u32::MAX);
        let err = RequestCodec::new(1024).mux_frame(&buf).unwrap_err();
        assert!(matches!(
            err,
            Error::FrameTooLarge {
                what: "method name",
                ..
            }
        ));

        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_u32(0);
        buf.put_u32(1);
        buf.put_u8(b'm');
        buf.put_u32(1024);
        let err = RequestCodec::new(1024).mux_frame(&buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method name plus payload of 1025 bytes exceeds the frame limit of 1024 bytes"
        );
    }

    #[test]
    fn a_response_round_trips_with_its_id() {
        let mut buf = BytesMut::new();
        encode_mux_response(9, 1, b"boom", &mut buf);
        assert_eq!(&buf[..], b"\0\0\0\x09\0\0\0\x01\0\0\0\x04boom");
        let got = MuxResponseCodec::default().decode(&mut buf).unwrap();
        assert_eq!(
            got,
            Some(MuxResponse {
                id: 9,
                status: 1,
                body: Bytes::from_static(b"boom")
            })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_response_body_over_the_limit_is_refused_from_its_header() {
        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_i32(0);
        buf.put_u32(2048);
        let err = MuxResponseCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            Error::FrameTooLarge {
                what: "response body",
                ..
            }
        ));
    }
}
