//! JSON on the command line, CBOR on the wire.
//!
//! JSON arguments are read straight into a CBOR value (integers stay
//! integers, `1.0` stays a float, map keys keep their order) and encoded.
//! A CBOR reply prints as JSON following RFC 8949 section 6.1: byte strings
//! become base64url text without padding, tags are dropped for their
//! content, non-finite floats become `null`, and a map key that is not text
//! becomes the text of its JSON form (`1`, `true`, ...).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ciborium::Value;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Encodes a JSON text as one CBOR item, or says why it is not JSON.
pub(crate) fn json_to_cbor(json: &str) -> Result<Vec<u8>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes exactly one CBOR item.
pub(crate) fn decode(cbor: &[u8]) -> Result<Value, String> {
    let mut rest = cbor;
    let value: Value = ciborium::de::from_reader(&mut rest).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// A CBOR value written as JSON.
pub(crate) struct Json<'a>(pub(crate) &'a Value);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Integer(int) => {
                let int = i128::from(*int);
                match (i64::try_from(int), u64::try_from(int)) {
                    (Ok(int), _) => serializer.serialize_i64(int),
                    (_, Ok(int)) => serializer.serialize_u64(int),
                    _ => serializer.serialize_i128(int),
                }
            }
            Value::Bytes(bytes) => serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes)),
            Value::Float(float) => serializer.serialize_f64(*float),
            Value::Text(text) => serializer.serialize_str(text),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Tag(_, content) => Json(content).serialize(serializer),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Json(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    match key {
                        Value::Text(text) => map.serialize_key(text)?,
                        other => map.serialize_key(&to_line(other))?,
                    }
                    map.serialize_value(&Json(value))?;
                }
                map.end()
            }
            // Null, undefined and simple values have no JSON of their own.
            _ => serializer.serialize_unit(),
        }
    }
}

/// `value` as JSON on one line.
pub(crate) fn to_line(value: &Value) -> String {
    // Writing into a String fails only for a map key that is not a string,
    // and `Json` writes every key as a string.
    serde_json::to_string(&Json(value)).unwrap_or_else(|e| format!("\"<{e}>\""))
}

/// `value` as indented JSON.
pub(crate) fn to_pretty(value: &Value) -> String {
    serde_json::to_string_pretty(&Json(value)).unwrap_or_else(|e| format!("\"<{e}>\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(json: &str) -> String {
        to_line(&decode(&json_to_cbor(json).unwrap()).unwrap())
    }

    #[test]
    fn integers_stay_integers_and_key_order_is_kept() {
        assert_eq!(
            round_trip(r#"{"z": 1, "a": -2, "big": 18446744073709551615, "f": 1.0, "n": null}"#),
            r#"{"z":1,"a":-2,"big":18446744073709551615,"f":1.0,"n":null}"#
        );
        let cbor = json_to_cbor(r#"{"delayMs": 5}"#).unwrap();
        // a1 67 "delayMs" 05: a map of one text key and the integer 5.
        assert_eq!(cbor[0], 0xa1);
        assert_eq!(cbor.last(), Some(&0x05));
    }

    #[test]
    fn bad_json_is_refused_with_its_position() {
        let err = json_to_cbor(r#"{"req": "#).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(json_to_cbor("{} x").is_err());
    }

    #[test]
    fn cbor_only_values_print_as_rfc_8949_says() {
        let value = Value::Map(vec![
            (
                Value::Text("b".into()),
                Value::Bytes(vec![0xfb, 0xff, 0x01]),
            ),
            (Value::Integer(7.into()), Value::Tag(1, Box::new(5.into()))),
            (Value::Text("nan".into()), Value::Float(f64::NAN)),
            (
                Value::Text("min".into()),
                Value::Integer(ciborium::value::Integer::try_from(-(1i128 << 64)).unwrap()),
            ),
        ]);
        assert_eq!(
            to_line(&value),
            r#"{"b":"-_8B","7":5,"nan":null,"min":-18446744073709551616}"#
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        assert!(decode(&[0x01, 0x02]).is_err());
        assert!(decode(&[]).is_err());
    }
}
