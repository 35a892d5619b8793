//! CBOR helpers shared by the server and clients: strict decoding with the
//! path of the offending field, and encoding.
//!
//! Decoding uses `cbor4ii` straight from the frame's bytes (twice as fast as
//! ciborium's reader on the timer's payloads, see `BENCHMARKS.md`); encoding
//! uses ciborium. Both are serde data formats, so the types are the same.

use std::convert::Infallible;
use std::fmt;

use cbor4ii::core::utils::SliceReader;
use cbor4ii::serde::Deserializer;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a CBOR item did not decode into the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where in the item, as `req.messages[0].delayMs`; empty at the top level.
    pub path: String,
    /// What was wrong there.
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one CBOR item from `bytes` into `T`.
///
/// Accepts definite and indefinite lengths and keys in any order; unknown
/// map keys are ignored by the serde derive. Trailing bytes are an error.
/// Nesting deeper than 256 levels is refused, so no payload can exhaust
/// the stack.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(rename_all = "camelCase")]
/// struct Req { delay_ms: i64 }
/// // {"delayMs": "soon"}
/// let err = rpc_core::wire::cbor::from_slice::<Req>(b"\xa1\x67delayMs\x64soon").unwrap_err();
/// assert_eq!(err.to_string(), "delayMs: invalid type: text, expected an integer");
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    // cbor4ii reads `()` from `[]`; ciborium (and every other peer) writes
    // null. A top-level null is offered to `T` as a unit first.
    if bytes == [0xf6] {
        let unit = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
        if let Ok(value) = T::deserialize(unit) {
            return Ok(value);
        }
    }
    let mut de = Deserializer::new(SliceReader::new(bytes));
    match T::deserialize(&mut de) {
        Ok(value) => match remaining(de.into_inner()) {
            0 => Ok(value),
            n => Err(DecodeError {
                path: String::new(),
                message: format!("{n} unexpected bytes after the CBOR item"),
            }),
        },
        // Tracking the path costs on every field, so it is paid only on failure.
        Err(_) => Err(from_slice_tracked::<T>(bytes)),
    }
}

/// Decodes `bytes` again, tracking the path, to report where it failed.
#[cold]
fn from_slice_tracked<T: DeserializeOwned>(bytes: &[u8]) -> DecodeError {
    let mut de = Deserializer::new(SliceReader::new(bytes));
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => DecodeError {
            path: String::new(),
            message: "the payload decodes only when its path is tracked".to_owned(),
        },
        Err(e) => {
            let path = e.path().to_string();
            // "." is the top level; "?" a map key that could not be read.
            let path = match path.as_str() {
                "." | "?" => "",
                other => other.strip_suffix(".?").unwrap_or(other),
            };
            DecodeError {
                path: path.to_owned(),
                message: describe(e.into_inner(), bytes.is_empty()),
            }
        }
    }
}

fn remaining(mut reader: SliceReader<'_>) -> usize {
    use cbor4ii::core::dec::{Read, Reference};
    match reader.fill(usize::MAX) {
        Ok(Reference::Long(rest) | Reference::Short(rest)) => rest.len(),
        Err(never) => match never {},
    }
}

fn describe(e: cbor4ii::serde::DecodeError<Infallible>, empty: bool) -> String {
    use cbor4ii::core::error::DecodeError as Core;
    let core = match e {
        cbor4ii::serde::DecodeError::Custom(message) => return humanize(&message),
        cbor4ii::serde::DecodeError::Core(core) => core,
    };
    match core {
        Core::Eof { .. } if empty => "the payload is empty, expected a CBOR item".to_owned(),
        Core::Eof { .. } => "the CBOR item ends early (truncated payload)".to_owned(),
        Core::Mismatch { name, found } => {
            format!(
                "invalid type: {}, expected {}",
                found_name(found),
                expected_name(name)
            )
        }
        Core::Unsupported { found, .. } => {
            format!("malformed CBOR: unexpected initial byte 0x{found:02x}")
        }
        Core::RequireUtf8 { .. } => "invalid UTF-8 in a text string".to_owned(),
        Core::CastOverflow { .. } | Core::ArithmeticOverflow { .. } => {
            "integer out of the 64-bit range".to_owned()
        }
        Core::DepthOverflow { .. } => "CBOR nested too deeply".to_owned(),
        Core::LengthOverflow { .. } | Core::RequireLength { .. } => {
            "a CBOR length is too large".to_owned()
        }
        other => format!("malformed CBOR: {other:?}"),
    }
}

/// The CBOR type an initial byte starts.
fn found_name(initial: u8) -> &'static str {
    match initial {
        0x00..=0x3f => "integer",
        0x40..=0x5f => "bytes",
        0x60..=0x7f => "text",
        0x80..=0x9f => "array",
        0xa0..=0xbf => "map",
        0xc0..=0xdf => "tag",
        0xf4 | 0xf5 => "boolean",
        0xf6 => "null",
        0xf7 => "undefined",
        0xf9..=0xfb => "float",
        0xff => "break",
        _ => "simple value",
    }
}

/// What the decoder wanted, from its internal type name.
fn expected_name(name: &str) -> &str {
    match name {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "int" => {
            "an integer"
        }
        "str" | "string" | "char" => "text",
        "map" => "a map",
        "array" | "seq" | "tuple" => "an array",
        "bool" => "a boolean",
        "f32" | "f64" | "float" => "a float",
        "bytes" => "bytes",
        other => other,
    }
}

/// serde and ciborium speak Rust (`sequence`, `string`); the wire speaks CBOR.
fn humanize(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: string", "invalid type: text"),
        ("invalid type: floating point", "invalid type: float"),
        (", expected integer", ", expected an integer"),
        (", expected string", ", expected text"),
        (", expected array", ", expected an array"),
        (", expected map", ", expected a map"),
        ("expected str or bytes", "expected a text key"),
        ("integer too large", "integer out of the 64-bit range"),
        ("expected bool", "invalid type, expected a boolean"),
    ];
    let mut out = message.to_owned();
    for (rust, cbor) in WORDS {
        if out.contains(rust) {
            out = out.replace(rust, cbor);
        }
    }
    out
}

/// Encodes `value` as one CBOR item: definite lengths, struct fields in
/// declaration order, shortest-form integers.
pub fn to_vec<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, ciborium::ser::Error<std::io::Error>> {
    let mut out = Vec::with_capacity(64);
    ciborium::ser::into_writer(value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Echo {
        message: String,
        delay_ms: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        req: Echo,
        list: Option<Vec<Echo>>,
    }

    fn cbor(v: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn map(entries: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
        ciborium::Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn echo(message: &str, delay: i64) -> ciborium::Value {
        map(vec![("message", message.into()), ("delayMs", delay.into())])
    }

    #[test]
    fn decodes_and_ignores_unknown_keys() {
        let bytes = cbor(&map(vec![("zzz", 1.into()), ("req", echo("hi", -3))]));
        let args: Args = from_slice(&bytes).unwrap();
        assert_eq!(
            args.req,
            Echo {
                message: "hi".into(),
                delay_ms: -3
            }
        );
        assert_eq!(args.list, None);
    }

    #[test]
    fn names_the_wrong_field() {
        let bad = map(vec![("message", "x".into()), ("delayMs", "slow".into())]);
        let err = from_slice::<Args>(&cbor(&map(vec![("req", bad)]))).unwrap_err();
        assert_eq!(err.path, "req.delayMs");
        assert_eq!(err.message, "invalid type: text, expected an integer");

        let list = ciborium::Value::Array(vec![echo("a", 1), map(vec![("message", "b".into())])]);
        let err = from_slice::<Args>(&cbor(&map(vec![("req", echo("a", 1)), ("list", list)])))
            .unwrap_err();
        assert_eq!(err.to_string(), "list[1]: missing field `delayMs`");
    }

    #[test]
    fn top_level_errors_have_no_path() {
        let err = from_slice::<Args>(&[0xa0]).unwrap_err();
        assert_eq!(err.to_string(), "missing field `req`");
        let err = from_slice::<Args>(&[0x80]).unwrap_err();
        assert_eq!(err.path, "");
        assert_eq!(err.message, "invalid type: array, expected a map");
        assert_eq!(
            from_slice::<Args>(&[]).unwrap_err().message,
            "the payload is empty, expected a CBOR item"
        );
        assert!(from_slice::<Args>(&[0xa1])
            .unwrap_err()
            .message
            .contains("truncated"));
    }

    #[test]
    fn indefinite_lengths_are_accepted() {
        // {_ "req": {_ "message": (_ "he", "llo"), "delayMs": 5}}
        let mut bytes = vec![0xbf, 0x63, b'r', b'e', b'q', 0xbf];
        bytes.extend([0x67]);
        bytes.extend(b"message");
        bytes.extend([0x7f, 0x62, b'h', b'e', 0x63, b'l', b'l', b'o', 0xff]);
        bytes.extend([0x67]);
        bytes.extend(b"delayMs");
        bytes.extend([0x05, 0xff, 0xff]);
        let args: Args = from_slice(&bytes).unwrap();
        assert_eq!(
            args.req,
            Echo {
                message: "hello".into(),
                delay_ms: 5
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // {"req": {...}, "x": [[[[...0...]]]]} with a million levels.
        let mut bytes = cbor(&map(vec![("req", echo("m", 1))]));
        bytes[0] = 0xa2;
        bytes.extend([0x61, b'x']);
        bytes.extend(std::iter::repeat_n(0x81, 1_000_000));
        bytes.push(0x00);
        assert_eq!(
            from_slice::<Args>(&bytes).unwrap_err().message,
            "CBOR nested too deeply"
        );
    }

    #[test]
    fn a_null_reply_decodes_as_unit_and_none() {
        from_slice::<()>(&[0xf6]).unwrap();
        assert_eq!(from_slice::<Option<i64>>(&[0xf6]).unwrap(), None);
        assert_eq!(from_slice::<Option<i64>>(&[0x07]).unwrap(), Some(7));
        assert_eq!(
            from_slice::<String>(&[0xf6]).unwrap_err().message,
            "invalid type: null, expected text"
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let err = from_slice::<serde::de::IgnoredAny>(&[0xa0, 0x00]).unwrap_err();
        assert_eq!(err.message, "1 unexpected bytes after the CBOR item");
    }

    #[test]
    fn sixty_four_bit_integers() {
        let bytes = cbor(&map(vec![("req", echo("m", i64::MIN))]));
        assert_eq!(from_slice::<Args>(&bytes).unwrap().req.delay_ms, i64::MIN);
        let too_big = map(vec![
            ("message", "m".into()),
            ("delayMs", ciborium::Value::Integer(u64::MAX.into())),
        ]);
        let err = from_slice::<Args>(&cbor(&map(vec![("req", too_big)]))).unwrap_err();
        assert_eq!(err.path, "req.delayMs");
    }
}
