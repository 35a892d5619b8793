//! Properties of the frame codec: encode then decode gives every frame back,
//! however the bytes are chunked, and no byte stream panics a decoder or
//! makes it reserve what a header announces.

use bytes::BytesMut;
use proptest::prelude::*;
use rpc_core::wire::{
    encode_request, encode_response, Request, RequestCodec, Response, ResponseCodec,
};
use rpc_core::Error;
use tokio_util::codec::Decoder;

/// Splits `bytes` at the given cut points (taken modulo its length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| c % (bytes.len() + 1))
        .chain([0, bytes.len()])
        .collect();
    at.sort_unstable();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Feeds `pieces` to `decoder` one after the other, decoding after each,
/// and checks that a decode call never grows the buffer. Returns the items
/// and the error that stopped it, if any.
fn feed<D: Decoder<Error = Error>>(
    decoder: &mut D,
    pieces: &[Vec<u8>],
) -> (Vec<D::Item>, Option<Error>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let (len, capacity) = (buf.len(), buf.capacity());
            let result = decoder.decode(&mut buf);
            assert!(buf.capacity() <= capacity, "the decoder reserved memory");
            match result {
                Ok(Some(item)) => items.push(item),
                Ok(None) => {
                    assert_eq!(buf.len(), len, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return (items, Some(e), buf),
            }
        }
    }
    (items, None, buf)
}

fn requests() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        0..8,
    )
}

/// Pure noise, or whole frames followed by noise.
fn streams() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (requests(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(frames, noise)| {
            let mut wire = BytesMut::new();
            for (method, payload) in &frames {
                encode_request(method, payload, &mut wire);
            }
            wire.extend_from_slice(&noise);
            wire.to_vec()
        }),
    ]
}

proptest! {
    // Integration tests have no lib.rs beside them to persist failures to;
    // a failure prints its minimal input instead.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip_in_any_chunking(
        frames in requests(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for (method, payload) in &frames {
            encode_request(method, payload, &mut wire);
        }
        let (got, err, rest) = feed(&mut RequestCodec::default(), &chunks(&wire, &cuts));
        prop_assert!(err.is_none());
        prop_assert!(rest.is_empty());
        let want: Vec<Request> = frames
            .iter()
            .map(|(m, p)| Request { method: m.clone().into(), payload: p.clone().into() })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn responses_round_trip_in_any_chunking(
        frames in prop::collection::vec(
            (any::<i32>(), prop::collection::vec(any::<u8>(), 0..300)),
            0..8,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for (status, body) in &frames {
            encode_response(*status, body, &mut wire);
        }
        let (got, err, rest) = feed(&mut ResponseCodec::default(), &chunks(&wire, &cuts));
        prop_assert!(err.is_none());
        prop_assert!(rest.is_empty());
        let want: Vec<Response> = frames
            .iter()
            .map(|(s, b)| Response { status: *s, body: b.clone().into() })
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Any bytes, any chunking, any limit: no panic, no reservation (checked
    /// in `feed`), frames only within the limit, and an error only for a
    /// header over it.
    #[test]
    fn any_byte_stream_is_safe_for_the_request_decoder(
        bytes in streams(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max_frame in prop_oneof![Just(0usize), 0usize..64, Just(4 << 20)],
    ) {
        let (got, err, rest) = feed(&mut RequestCodec::new(max_frame), &chunks(&bytes, &cuts));
        for request in &got {
            prop_assert!(request.method.len() + request.payload.len() <= max_frame);
        }
        if let Some(Error::FrameTooLarge { len, max, .. }) = err {
            prop_assert_eq!(max, max_frame);
            prop_assert!(len > max_frame as u64);
        } else {
            prop_assert!(err.is_none(), "unexpected error {:?}", err);
            // Every byte is in a frame or still buffered.
            let used: usize = got.iter().map(|r| 8 + r.method.len() + r.payload.len()).sum();
            prop_assert_eq!(used + rest.len(), bytes.len());
        }
    }

    #[test]
    fn any_byte_stream_is_safe_for_the_response_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max_frame in prop_oneof![Just(0usize), 0usize..64, Just(4 << 20)],
    ) {
        let (got, err, _) = feed(&mut ResponseCodec::new(max_frame), &chunks(&bytes, &cuts));
        for response in &got {
            prop_assert!(response.body.len() <= max_frame);
        }
        if let Some(err) = err {
            let too_large = matches!(err, Error::FrameTooLarge { .. });
            prop_assert!(too_large, "unexpected error {:?}", err);
        }
    }

    /// A header alone, announcing any length: refused or waited for, never
    /// reserved.
    #[test]
    fn a_header_alone_reserves_nothing(
        method_len in any::<u32>(),
        payload_len in any::<u32>(),
        max_frame in prop_oneof![0usize..1024, Just(4 << 20)],
    ) {
        let mut header = method_len.to_be_bytes().to_vec();
        header.extend(std::iter::repeat_n(b'm', (method_len as usize).min(64)));
        header.extend(payload_len.to_be_bytes());
        let mut buf = BytesMut::from(&header[..]);
        let capacity = buf.capacity();
        let result = RequestCodec::new(max_frame).decode(&mut buf);
        prop_assert!(buf.capacity() <= capacity);
        let (method, payload, max) = (u64::from(method_len), u64::from(payload_len), max_frame as u64);
        // Only the first 64 bytes of a method name are sent.
        let expected = if method > max {
            "refused"
        } else if method > 64 {
            "waiting"
        } else if method + payload > max {
            "refused"
        } else if payload == 0 {
            "decoded"
        } else {
            "waiting"
        };
        let got = match result {
            Ok(Some(_)) => "decoded",
            Ok(None) => "waiting",
            Err(_) => "refused",
        };
        prop_assert_eq!(got, expected);
    }
}
