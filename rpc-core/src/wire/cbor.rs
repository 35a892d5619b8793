//! CBOR, the only code that touches the CBOR crates: strict decoding with the
//! path of the offending field and errors kept as values, and encoding.
//!
//! One crate, cbor4ii, in both directions: decoding is our serde
//! `Deserializer` over cbor4ii's item decoders, straight from the frame's
//! bytes (twice as fast as ciborium's reader on the timer's payloads, see
//! `BENCHMARKS.md`), with [`DecodeError`] as the error the visitors see, so a
//! type error stays a value (`found`, `expected`) and the path is added as
//! the error unwinds, in the same pass. Encoding is a small serde
//! `Serializer` that writes today's bytes: definite lengths for structs,
//! struct fields in declared order, shortest-form integers, `()`/`None` as
//! null, floats in the shortest of f16/f32/f64 that keeps the value. Those
//! are ciborium's choices (the property tests compare byte for byte with
//! ciborium, kept as a dev-dependency); cbor4ii's own serializer writes `()`
//! as `[]` and every f64 in 8 bytes, so it is not used.
//!
//! Measured against the cbor4ii-decode/ciborium-encode pair it replaces
//! (criterion, `benches/codec.rs`, a shared 2-core machine, so ±15% noise):
//! decoding the timer's `complex` arguments 1.46 → 1.54 µs (no significant
//! change), a failing decode with its path 3.09 → 2.02 µs (no second pass),
//! encoding them 546 → 504 ns, the `complex` reply 110 → 119 ns.

use std::borrow::Cow;
use std::fmt;

use cbor4ii::core::dec::{self, Decode};
use cbor4ii::core::error::DecodeError as Core;
use cbor4ii::core::types;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

/// Why a CBOR item did not decode into the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where in the item, as `req.messages[0].delayMs`; empty at the top level.
    pub path: String,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

/// What was wrong with a CBOR item, as a value; its `Display` is the text
/// peers see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The payload has no bytes at all.
    Empty,
    /// The item ends before it is complete.
    Truncated,
    /// The item is followed by this many bytes.
    TrailingBytes(usize),
    /// An item of one CBOR type where another was wanted.
    InvalidType {
        /// The CBOR type found, as `text` or `integer \`5\``.
        found: String,
        /// What was wanted, as `an integer` or `struct Echo`.
        expected: String,
    },
    /// The right type but a value out of the accepted set.
    InvalidValue {
        /// The value found.
        found: String,
        /// What was wanted.
        expected: String,
    },
    /// An array or map of the wrong length.
    InvalidLength {
        /// The length found.
        len: usize,
        /// What was wanted.
        expected: String,
    },
    /// An enum variant name the type does not have.
    UnknownVariant {
        /// The name found.
        variant: String,
        /// The names the type has.
        expected: &'static [&'static str],
    },
    /// A map key the type refuses (`deny_unknown_fields`).
    UnknownField {
        /// The key found.
        field: String,
        /// The keys the type has.
        expected: &'static [&'static str],
    },
    /// A required map key is absent.
    MissingField(&'static str),
    /// A map key appears twice.
    DuplicateField(&'static str),
    /// An initial byte that starts no CBOR item here.
    Malformed(u8),
    /// A text string that is not UTF-8.
    InvalidUtf8,
    /// An integer beyond the 64-bit range of the target.
    IntegerOverflow,
    /// Nesting deeper than the limit.
    TooDeep,
    /// A length beyond what can be held.
    LengthTooLarge,
    /// Any other failure, in the type's own words.
    Custom(String),
}

impl DecodeError {
    /// The text of the failure without the path.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }

    #[cold]
    fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            path: String::new(),
            kind,
        }
    }

    /// The error, inside the value of map key `key`.
    #[cold]
    fn under_key(mut self, key: &str) -> Self {
        let sep = if self.path.is_empty() || self.path.starts_with('[') {
            ""
        } else {
            "."
        };
        self.path = format!("{key}{sep}{}", self.path);
        self
    }

    /// The error, inside element `index` of an array.
    #[cold]
    fn under_index(mut self, index: usize) -> Self {
        let sep = if self.path.is_empty() || self.path.starts_with('[') {
            ""
        } else {
            "."
        };
        self.path = format!("[{index}]{sep}{}", self.path);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

impl std::error::Error for DecodeError {}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind as K;
        match self {
            K::Empty => f.write_str("the payload is empty, expected a CBOR item"),
            K::Truncated => f.write_str("the CBOR item ends early (truncated payload)"),
            K::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the CBOR item"),
            K::InvalidType { found, expected } => {
                write!(f, "invalid type: {found}, expected {expected}")
            }
            K::InvalidValue { found, expected } => {
                write!(f, "invalid value: {found}, expected {expected}")
            }
            K::InvalidLength { len, expected } => {
                write!(f, "invalid length {len}, expected {expected}")
            }
            K::UnknownVariant { variant, expected } => {
                write!(f, "unknown variant `{variant}`, ")?;
                one_of(f, expected, "there are no variants")
            }
            K::UnknownField { field, expected } => {
                write!(f, "unknown field `{field}`, ")?;
                one_of(f, expected, "there are no fields")
            }
            K::MissingField(field) => write!(f, "missing field `{field}`"),
            K::DuplicateField(field) => write!(f, "duplicate field `{field}`"),
            K::Malformed(byte) => write!(f, "malformed CBOR: unexpected initial byte 0x{byte:02x}"),
            K::InvalidUtf8 => f.write_str("invalid UTF-8 in a text string"),
            K::IntegerOverflow => f.write_str("integer out of the 64-bit range"),
            K::TooDeep => f.write_str("CBOR nested too deeply"),
            K::LengthTooLarge => f.write_str("a CBOR length is too large"),
            K::Custom(message) => f.write_str(message),
        }
    }
}

/// serde's wording for the names a type accepts.
fn one_of(f: &mut fmt::Formatter<'_>, names: &[&str], none: &str) -> fmt::Result {
    match names {
        [] => f.write_str(none),
        [one] => write!(f, "expected `{one}`"),
        [a, b] => write!(f, "expected `{a}` or `{b}`"),
        [first, rest @ ..] => {
            write!(f, "expected one of `{first}`")?;
            rest.iter().try_for_each(|name| write!(f, ", `{name}`"))
        }
    }
}

impl de::Error for DecodeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::new(DecodeErrorKind::Custom(msg.to_string()))
    }

    #[cold]
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DecodeError::new(DecodeErrorKind::InvalidType {
            found: unexpected_name(unexp),
            expected: expected_text(exp),
        })
    }

    #[cold]
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DecodeError::new(DecodeErrorKind::InvalidValue {
            found: unexpected_name(unexp),
            expected: expected_text(exp),
        })
    }

    #[cold]
    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        DecodeError::new(DecodeErrorKind::InvalidLength {
            len,
            expected: expected_text(exp),
        })
    }

    #[cold]
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(DecodeErrorKind::UnknownVariant {
            variant: variant.to_owned(),
            expected,
        })
    }

    #[cold]
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(DecodeErrorKind::UnknownField {
            field: field.to_owned(),
            expected,
        })
    }

    #[cold]
    fn missing_field(field: &'static str) -> Self {
        DecodeError::new(DecodeErrorKind::MissingField(field))
    }

    #[cold]
    fn duplicate_field(field: &'static str) -> Self {
        DecodeError::new(DecodeErrorKind::DuplicateField(field))
    }
}

impl From<Core<std::convert::Infallible>> for DecodeError {
    #[cold]
    fn from(core: Core<std::convert::Infallible>) -> Self {
        use DecodeErrorKind as K;
        DecodeError::new(match core {
            Core::Eof { .. } => K::Truncated,
            Core::Mismatch { name, found } => K::InvalidType {
                found: found_name(found).to_owned(),
                expected: expected_name(name).to_owned(),
            },
            Core::Unsupported { found, .. } => K::Malformed(found),
            Core::RequireUtf8 { .. } => K::InvalidUtf8,
            Core::CastOverflow { .. } | Core::ArithmeticOverflow { .. } => K::IntegerOverflow,
            Core::DepthOverflow { .. } => K::TooDeep,
            Core::LengthOverflow { .. } | Core::RequireLength { .. } => K::LengthTooLarge,
            other => K::Custom(format!("malformed CBOR: {other:?}")),
        })
    }
}

/// A value serde found, named as CBOR names it.
fn unexpected_name(unexp: de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match unexp {
        U::Bool(b) => format!("boolean `{b}`"),
        U::Unsigned(n) => format!("integer `{n}`"),
        U::Signed(n) => format!("integer `{n}`"),
        U::Float(x) => format!("float `{x}`"),
        U::Char(c) => format!("text {:?}", c.to_string()),
        U::Str(s) => format!("text {s:?}"),
        U::Bytes(_) => "bytes".to_owned(),
        U::Unit | U::Option => "null".to_owned(),
        U::Seq => "array".to_owned(),
        U::Map => "map".to_owned(),
        U::Enum | U::UnitVariant | U::NewtypeVariant | U::TupleVariant | U::StructVariant => {
            "enum variant".to_owned()
        }
        U::NewtypeStruct => "newtype struct".to_owned(),
        U::Other(other) => other.to_owned(),
    }
}

/// What a visitor wanted, with serde's primitive names (`i64`, `a string`)
/// said in CBOR's words; a type's own phrase (`struct Echo`) is kept.
fn expected_text(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "a string" | "a borrowed string" | "a character" | "a char" => "text".to_owned(),
        "a sequence" | "a tuple" => "an array".to_owned(),
        "a byte array" | "a borrowed byte array" => "bytes".to_owned(),
        "unit" => "null".to_owned(),
        other => expected_name(other).to_owned(),
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

/// What the decoder wanted, from cbor4ii's or serde's name of the type.
fn expected_name(name: &str) -> &str {
    match name {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "int" => {
            "an integer"
        }
        "str" | "string" | "char" => "text",
        "map" => "a map",
        "array" | "seq" | "tuple" => "an array",
        "bool" | "a boolean" => "a boolean",
        "f32" | "f64" | "float" => "a float",
        "unit" => "null",
        "bytes" => "bytes",
        other => other,
    }
}

/// Decodes exactly one CBOR item from `bytes` into `T`.
///
/// Accepts definite and indefinite lengths and keys in any order; unknown
/// map keys are ignored by the serde derive. Trailing bytes are an error.
/// Nesting deeper than 256 levels is refused, so no payload can exhaust
/// the stack. `()` is read from null (what peers write) or `[]`.
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
    let mut reader = Reader {
        rest: bytes,
        depth: MAX_DEPTH,
    };
    match T::deserialize(&mut reader) {
        Ok(value) if reader.rest.is_empty() => Ok(value),
        Ok(_) => Err(DecodeError::new(DecodeErrorKind::TrailingBytes(
            reader.rest.len(),
        ))),
        Err(e) if bytes.is_empty() && e.kind == DecodeErrorKind::Truncated => {
            Err(DecodeError::new(DecodeErrorKind::Empty))
        }
        Err(e) => Err(e),
    }
}

/// How many nested arrays, maps and options a payload may open.
const MAX_DEPTH: usize = 256;

/// The bytes not yet decoded, and how much deeper the item may nest; it is
/// both cbor4ii's reader and our serde `Deserializer`.
struct Reader<'de> {
    rest: &'de [u8],
    depth: usize,
}

impl<'de> dec::Read<'de> for Reader<'de> {
    type Error = std::convert::Infallible;

    #[inline]
    fn fill<'b>(&'b mut self, want: usize) -> Result<dec::Reference<'de, 'b>, Self::Error> {
        let len = want.min(self.rest.len());
        Ok(dec::Reference::Long(&self.rest[..len]))
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n.min(self.rest.len())..];
    }

    #[inline]
    fn step_in(&mut self) -> bool {
        match self.depth.checked_sub(1) {
            Some(depth) => {
                self.depth = depth;
                true
            }
            None => false,
        }
    }

    #[inline]
    fn step_out(&mut self) {
        self.depth += 1;
    }
}

impl<'de> Reader<'de> {
    #[inline]
    fn decode<T: Decode<'de>>(&mut self) -> Result<T, DecodeError> {
        Ok(T::decode(self)?)
    }

    #[inline]
    fn peek(&self) -> Result<u8, DecodeError> {
        match self.rest.first() {
            Some(&byte) => Ok(byte),
            None => Err(DecodeError::new(DecodeErrorKind::Truncated)),
        }
    }

    /// Runs `f` one level deeper, refusing to pass the depth limit.
    #[inline]
    fn nested<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, DecodeError>,
    ) -> Result<R, DecodeError> {
        if !dec::Read::step_in(self) {
            return Err(DecodeError::new(DecodeErrorKind::TooDeep));
        }
        let out = f(self);
        dec::Read::step_out(self);
        out
    }

    /// An indefinite-length container ends here (and the break is consumed).
    #[inline]
    fn at_break(&mut self) -> Result<bool, DecodeError> {
        Ok(dec::is_break(self)?)
    }
}

/// The text of the map key that starts `at`, for a path; `?` if it is not
/// text or an integer.
#[cold]
fn key_name(at: &[u8]) -> String {
    let mut reader = Reader {
        rest: at,
        depth: MAX_DEPTH,
    };
    match at.first().map(|&b| dec::if_major(b)) {
        Some(3) => match reader.decode::<Cow<'_, str>>() {
            Ok(key) => key.into_owned(),
            Err(_) => "?".to_owned(),
        },
        Some(0 | 1) => match reader.decode::<i128>() {
            Ok(key) => key.to_string(),
            Err(_) => "?".to_owned(),
        },
        _ => "?".to_owned(),
    }
}

macro_rules! deserialize_decoded {
    ($($t:ty, $name:ident, $visit:ident;)*) => {
        $(
            #[inline]
            fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
                let value = self.decode::<$t>()?;
                visitor.$visit(value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.nested(|de| {
            let byte = de.peek()?;
            match dec::if_major(byte) {
                0 => de.deserialize_u64(visitor),
                1 => {
                    let v = de.decode::<i128>()?;
                    match i64::try_from(v) {
                        Ok(v) => visitor.visit_i64(v),
                        Err(_) => visitor.visit_i128(v),
                    }
                }
                2 => de.deserialize_byte_buf(visitor),
                3 => de.deserialize_string(visitor),
                4 => de.deserialize_seq(visitor),
                5 => de.deserialize_map(visitor),
                6 => match byte {
                    0xc2 => de.deserialize_u128(visitor),
                    0xc3 => de.deserialize_i128(visitor),
                    _ => Err(DecodeError::new(DecodeErrorKind::Malformed(byte))),
                },
                _ => match byte {
                    0xf4 | 0xf5 => {
                        de.rest = &de.rest[1..];
                        visitor.visit_bool(byte == 0xf5)
                    }
                    0xf6 | 0xf7 => {
                        de.rest = &de.rest[1..];
                        visitor.visit_none()
                    }
                    0xfa => de.deserialize_f32(visitor),
                    0xf9 | 0xfb => de.deserialize_f64(visitor),
                    _ => Err(DecodeError::new(DecodeErrorKind::Malformed(byte))),
                },
            }
        })
    }

    deserialize_decoded! {
        bool, deserialize_bool, visit_bool;
        i8, deserialize_i8, visit_i8;
        i16, deserialize_i16, visit_i16;
        i32, deserialize_i32, visit_i32;
        i64, deserialize_i64, visit_i64;
        i128, deserialize_i128, visit_i128;
        u8, deserialize_u8, visit_u8;
        u16, deserialize_u16, visit_u16;
        u32, deserialize_u32, visit_u32;
        u64, deserialize_u64, visit_u64;
        u128, deserialize_u128, visit_u128;
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek()? {
            0xf9 => visitor.visit_f32(half::f16::from_bits(self.decode::<types::F16>()?.0).into()),
            _ => visitor.visit_f32(self.decode::<f32>()?),
        }
    }

    /// Any float width: encoders (ours too) write a float in the shortest
    /// width that keeps it.
    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek()? {
            0xf9 => visitor.visit_f64(half::f16::from_bits(self.decode::<types::F16>()?.0).into()),
            0xfa => visitor.visit_f64(self.decode::<f32>()?.into()),
            _ => visitor.visit_f64(self.decode::<f64>()?),
        }
    }

    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.decode::<types::Bytes<Cow<'de, [u8]>>>()?.0 {
            Cow::Borrowed(buf) => visitor.visit_borrowed_bytes(buf),
            Cow::Owned(buf) => visitor.visit_byte_buf(buf),
        }
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.decode::<Cow<'de, str>>()? {
            Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
            Cow::Owned(text) => visitor.visit_string(text),
        }
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek()? {
            0xf6 | 0xf7 => {
                self.rest = &self.rest[1..];
                visitor.visit_none()
            }
            _ => self.nested(|de| visitor.visit_some(de)),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek()? {
            0xf6 | 0x80 => {
                self.rest = &self.rest[1..];
                visitor.visit_unit()
            }
            found => Err(Core::Mismatch {
                name: &"unit",
                found,
            }
            .into()),
        }
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.nested(|de| {
            let len = types::Array::len(de)?;
            visitor.visit_seq(Items { de, len, index: 0 })
        })
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|de| match types::Array::len(de)? {
            Some(found) if found == len => visitor.visit_seq(Items {
                de,
                len: Some(len),
                index: 0,
            }),
            _ => Err(DecodeError::new(DecodeErrorKind::LengthTooLarge)),
        })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.nested(|de| {
            let len = types::Map::len(de)?;
            let key = de.rest;
            visitor.visit_map(Entries { de, len, key })
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_map(visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|de| {
            let byte = de.peek()?;
            match dec::if_major(byte) {
                3 => {}
                // A map of one entry: {variant: content}.
                5 if byte == 0xa1 => de.rest = &de.rest[1..],
                _ => {
                    return Err(Core::Mismatch {
                        name: &"enum",
                        found: byte,
                    }
                    .into())
                }
            }
            let key = de.rest;
            visitor.visit_enum(Variant { de, key })
        })
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.decode::<dec::IgnoredAny>()?;
        visitor.visit_unit()
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of an array; an error inside one gets its index.
struct Items<'a, 'de> {
    de: &'a mut Reader<'de>,
    len: Option<usize>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match &mut self.len {
            Some(0) => return Ok(None),
            Some(len) => *len -= 1,
            None if self.de.at_break()? => return Ok(None),
            None => {}
        }
        let index = self.index;
        self.index += 1;
        match seed.deserialize(&mut *self.de) {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(e.under_index(index)),
        }
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.len
    }
}

/// The entries of a map; an error inside a value gets its key, read again
/// from `key` (where the last key starts) only when there is an error.
struct Entries<'a, 'de> {
    de: &'a mut Reader<'de>,
    len: Option<usize>,
    key: &'de [u8],
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match &mut self.len {
            Some(0) => return Ok(None),
            Some(len) => *len -= 1,
            None if self.de.at_break()? => return Ok(None),
            None => {}
        }
        self.key = self.de.rest;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.under_key(&key_name(self.key)))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.len
    }
}

/// An enum: a variant name, alone or as the key of a one-entry map; an error
/// in the content gets the variant's name.
struct Variant<'a, 'de> {
    de: &'a mut Reader<'de>,
    key: &'de [u8],
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = DecodeError;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.under_key(&key_name(self.key)))
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(&mut *self.de, len, visitor)
            .map_err(|e| e.under_key(&key_name(self.key)))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
            .map_err(|e| e.under_key(&key_name(self.key)))
    }
}

/// Why a value could not be encoded: its `Serialize` impl refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

/// Encodes `value` as one CBOR item: definite lengths, struct fields in
/// declaration order, shortest-form integers.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    append(value, &mut out)?;
    Ok(out)
}

/// Encodes `value` as one CBOR item at the end of `out`.
pub fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    value.serialize(&mut Encoder(out))
}

/// Writes CBOR items at the end of a buffer.
struct Encoder<'v>(&'v mut Vec<u8>);

impl Encoder<'_> {
    /// An item's head: major type and argument, in the shortest form.
    #[inline]
    fn head(&mut self, major: u8, n: u64) {
        let major = major << 5;
        match n {
            0..=23 => self.0.push(major | n as u8),
            24..=0xff => self.0.extend_from_slice(&[major | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(major | 25);
                self.0.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(major | 26);
                self.0.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(major | 27);
                self.0.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    /// A length, or the indefinite-length marker.
    #[inline]
    fn len(&mut self, major: u8, len: Option<usize>) {
        match len {
            Some(len) => self.head(major, len as u64),
            None => self.0.push((major << 5) | 31),
        }
    }

    /// A 128-bit integer: plain when it fits 64 bits, else a bignum tag.
    fn big(&mut self, negative: bool, raw: u128) {
        let (major, tag) = if negative { (1, 3) } else { (0, 2) };
        if let Ok(small) = u64::try_from(raw) {
            return self.head(major, small);
        }
        let bytes = raw.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        self.head(6, tag);
        self.head(2, (bytes.len() - skip) as u64);
        self.0.extend_from_slice(&bytes[skip..]);
    }
}

impl<'a> ser::Serializer for &'a mut Encoder<'_> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Collection<'a>;
    type SerializeTuple = Collection<'a>;
    type SerializeTupleStruct = Collection<'a>;
    type SerializeTupleVariant = Collection<'a>;
    type SerializeMap = Collection<'a>;
    type SerializeStruct = Collection<'a>;
    type SerializeStructVariant = Collection<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.0.push(if v { 0xf5 } else { 0xf4 });
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        if v < 0 {
            self.head(1, !(v as u64));
        } else {
            self.head(0, v as u64);
        }
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        if v < 0 {
            self.big(true, !(v as u128));
        } else {
            self.big(false, v as u128);
        }
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.head(0, v);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        self.big(false, v);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.serialize_f64(v.into())
    }

    /// The shortest of f16, f32 and f64 that gives back the same bits.
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        let half = half::f16::from_f64(v);
        let single = v as f32;
        if f64::from(half).to_bits() == v.to_bits() {
            self.0.push(0xf9);
            self.0.extend_from_slice(&half.to_be_bytes());
        } else if f64::from(single).to_bits() == v.to_bits() {
            self.0.push(0xfa);
            self.0.extend_from_slice(&single.to_be_bytes());
        } else {
            self.0.push(0xfb);
            self.0.extend_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.head(3, v.len() as u64);
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.head(2, v.len() as u64);
        self.0.extend_from_slice(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.0.push(0xf6);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.serialize_none()
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.head(5, 1);
        self.serialize_str(variant)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Collection<'a>, EncodeError> {
        self.len(4, len);
        Ok(Collection {
            out: self.0,
            indefinite: len.is_none(),
        })
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Collection<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Collection<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Collection<'a>, EncodeError> {
        self.head(5, 1);
        self.serialize_str(variant)?;
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Collection<'a>, EncodeError> {
        self.len(5, len);
        Ok(Collection {
            out: self.0,
            indefinite: len.is_none(),
        })
    }

    #[inline]
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Collection<'a>, EncodeError> {
        self.serialize_map(Some(len))
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Collection<'a>, EncodeError> {
        self.head(5, 1);
        self.serialize_str(variant)?;
        self.serialize_map(Some(len))
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The items of an array or map being written; an indefinite length ends
/// with a break.
struct Collection<'a> {
    out: &'a mut Vec<u8>,
    indefinite: bool,
}

impl Collection<'_> {
    #[inline]
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut Encoder(self.out))
    }

    #[inline]
    fn finish(self) -> Result<(), EncodeError> {
        if self.indefinite {
            self.out.push(0xff);
        }
        Ok(())
    }
}

macro_rules! collection {
    ($($trait:ident :: $method:ident;)*) => {
        $(
            impl ser::$trait for Collection<'_> {
                type Ok = ();
                type Error = EncodeError;

                #[inline]
                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                    self.item(value)
                }

                #[inline]
                fn end(self) -> Result<(), EncodeError> {
                    self.finish()
                }
            }
        )*
    };
}

collection! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl ser::SerializeMap for Collection<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.item(key)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.item(value)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Collection<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.item(key)?;
        self.item(value)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Collection<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.item(key)?;
        self.item(value)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
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
        assert_eq!(err.message(), "invalid type: text, expected an integer");

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
        assert_eq!(err.message(), "invalid type: array, expected a map");
        assert_eq!(
            from_slice::<Args>(&[]).unwrap_err().message(),
            "the payload is empty, expected a CBOR item"
        );
        assert!(from_slice::<Args>(&[0xa1])
            .unwrap_err()
            .message()
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
            from_slice::<Args>(&bytes).unwrap_err().message(),
            "CBOR nested too deeply"
        );
    }

    #[test]
    fn a_null_reply_decodes_as_unit_and_none() {
        from_slice::<()>(&[0xf6]).unwrap();
        assert_eq!(from_slice::<Option<i64>>(&[0xf6]).unwrap(), None);
        assert_eq!(from_slice::<Option<i64>>(&[0x07]).unwrap(), Some(7));
        assert_eq!(
            from_slice::<String>(&[0xf6]).unwrap_err().message(),
            "invalid type: null, expected text"
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let err = from_slice::<serde::de::IgnoredAny>(&[0xa0, 0x00]).unwrap_err();
        assert_eq!(err.message(), "1 unexpected bytes after the CBOR item");
    }

    #[test]
    fn visitor_errors_are_values() {
        let list = ciborium::Value::Array(vec![map(vec![("message", "b".into())])]);
        let err = from_slice::<Args>(&cbor(&map(vec![("req", echo("a", 1)), ("list", list)])))
            .unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::MissingField("delayMs"));
        // A char from a longer text: serde's visitor reports it, in CBOR words.
        let err = from_slice::<char>(&cbor(&"ab".into())).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::InvalidValue {
                found: "text \"ab\"".into(),
                expected: "text".into()
            }
        );
        #[derive(Debug, PartialEq, Deserialize)]
        enum Mode {
            Fast,
            Slow(i64),
        }
        let err = from_slice::<Vec<Mode>>(&cbor(&ciborium::Value::Array(vec![
            "Fast".into(),
            "Lazy".into(),
        ])))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[1]: unknown variant `Lazy`, expected `Fast` or `Slow`"
        );
        let err = from_slice::<Mode>(&cbor(&map(vec![("Slow", "x".into())]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Slow: invalid type: text, expected an integer"
        );
        assert_eq!(from_slice::<Mode>(b"\x64Fast"), Ok(Mode::Fast));
        assert_eq!(from_slice::<Mode>(b"\xa1\x64Slow\x05"), Ok(Mode::Slow(5)));
    }

    #[test]
    fn integer_keys_name_the_path() {
        let bytes = cbor(&ciborium::Value::Map(vec![(7.into(), "x".into())]));
        let err = from_slice::<std::collections::BTreeMap<u8, u8>>(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "7: invalid type: text, expected an integer"
        );
    }

    #[test]
    fn unit_reads_null_and_the_empty_array() {
        from_slice::<()>(&[0x80]).unwrap();
        assert_eq!(
            from_slice::<Vec<()>>(&[0x82, 0xf6, 0x80]).unwrap(),
            [(), ()]
        );
        assert_eq!(
            from_slice::<()>(&[0x01]).unwrap_err().message(),
            "invalid type: integer, expected null"
        );
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
