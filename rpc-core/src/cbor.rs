//! CBOR helpers shared by the server and clients: strict decoding with the
//! path of the offending field, and encoding.

use std::cell::RefCell;
use std::fmt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer};
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

thread_local! {
    // ciborium keeps its deserializer private, so the path tracked around the
    // target type is handed back to `from_slice` on the same thread.
    static FAILED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Tracked<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tracked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_path_to_error::deserialize(deserializer)
            .map(Tracked)
            .map_err(|e| {
                let path = e.path().to_string();
                FAILED_AT.with(|at| *at.borrow_mut() = Some(path));
                e.into_inner()
            })
    }
}

/// Decodes exactly one CBOR item from `bytes` into `T`.
///
/// Accepts definite and indefinite lengths and keys in any order; unknown
/// map keys are ignored by the serde derive. Trailing bytes are an error.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(rename_all = "camelCase")]
/// struct Req { delay_ms: i64 }
/// // {"delayMs": "soon"}
/// let err = rpc_core::cbor::from_slice::<Req>(b"\xa1\x67delayMs\x64soon").unwrap_err();
/// assert_eq!(err.to_string(), "delayMs: invalid type: text, expected an integer");
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut rest = bytes;
    // ciborium's default scratch is 4 KiB zeroed per call; texts longer than
    // this one are decoded in chunks instead.
    let mut scratch = [0u8; 256];
    match ciborium::de::from_reader_with_buffer::<T, _>(&mut rest, &mut scratch) {
        Ok(value) if rest.is_empty() => Ok(value),
        Ok(_) => Err(DecodeError {
            path: String::new(),
            message: format!("{} unexpected bytes after the CBOR item", rest.len()),
        }),
        // Tracking the path costs on every field, so it is paid only on failure.
        Err(_) => Err(from_slice_tracked::<T>(bytes)),
    }
}

/// Decodes `bytes` again, tracking the path, to report where it failed.
#[cold]
fn from_slice_tracked<T: DeserializeOwned>(bytes: &[u8]) -> DecodeError {
    FAILED_AT.with(|at| at.borrow_mut().take());
    let e = match ciborium::de::from_reader::<Tracked<T>, _>(bytes) {
        Ok(_) => {
            return DecodeError {
                path: String::new(),
                message: "the payload decodes only when its path is tracked".to_owned(),
            }
        }
        Err(e) => e,
    };
    let path = FAILED_AT
        .with(|at| at.borrow_mut().take())
        .unwrap_or_default();
    // "." is the top level; "?" a map key that could not be read.
    let path = match path.as_str() {
        "." | "?" => "",
        other => other.strip_suffix(".?").unwrap_or(other),
    };
    DecodeError {
        path: path.to_owned(),
        message: describe(e, bytes.len()),
    }
}

fn describe(e: ciborium::de::Error<std::io::Error>, len: usize) -> String {
    use ciborium::de::Error;
    match e {
        Error::Io(_) if len == 0 => "the payload is empty, expected a CBOR item".to_owned(),
        Error::Io(_) => "the CBOR item ends early (truncated payload)".to_owned(),
        Error::Syntax(offset) => format!("malformed CBOR at byte {offset}"),
        Error::Semantic(_, message) => humanize(&message),
        Error::RecursionLimitExceeded => "CBOR nested too deeply".to_owned(),
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
