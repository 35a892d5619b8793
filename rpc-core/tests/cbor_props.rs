//! Properties of `rpc_core::cbor`'s encoder: for arbitrary nested CBOR values
//! and for types using every serde shape, its bytes are exactly ciborium's
//! (the encoder of earlier releases, so the wire bytes do not change), and
//! what it writes decodes back to the same value.

use std::collections::BTreeMap;

use ciborium::Value;
use proptest::prelude::*;
use rpc_core::wire::cbor;
use serde::{Deserialize, Serialize};

fn ciborium_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("ciborium encodes");
    out
}

fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Down to -2^64, the end of CBOR's negative integers.
        (0..=u64::MAX).prop_map(|n| Value::Integer((-1 - i128::from(n)).try_into().unwrap())),
        (0u64..300).prop_map(Value::from),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<f32>().prop_map(f64::from),
        // Values that fit f16, the shortest width.
        (-2048i32..2048, -14i32..15).prop_map(|(m, e)| f64::from(m) * 2f64.powi(e - 10)),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
    ]
}

/// Any CBOR tree but tags (ciborium writes those through a private
/// convention of its own serializer, which no payload type uses).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        integer(),
        float().prop_map(Value::Float),
        ".{0,30}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..30).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..10).prop_map(Value::Map),
        ]
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Newtype(i32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Choice {
    Plain,
    Wrapped(String),
    Pair(i8, bool),
    Fields { at: u16, note: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shapes {
    unit: (),
    unit_struct: Unit,
    newtype: Newtype,
    choice: Choice,
    choices: Vec<Choice>,
    tuple: (u8, i16, char),
    wide: (i128, u128),
    small: f32,
    large: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    maybe: Option<u32>,
    none: Option<Vec<u8>>,
    map: BTreeMap<String, i64>,
    keys: BTreeMap<u32, bool>,
    text: String,
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Plain),
        ".{0,8}".prop_map(Choice::Wrapped),
        (any::<i8>(), any::<bool>()).prop_map(|(a, b)| Choice::Pair(a, b)),
        (any::<u16>(), proptest::option::of(".{0,8}"))
            .prop_map(|(at, note)| Choice::Fields { at, note }),
    ]
}

prop_compose! {
    fn shapes()(
        newtype in any::<i32>(),
        choice in choice(),
        choices in prop::collection::vec(choice(), 0..4),
        tuple in any::<(u8, i16, char)>(),
        wide in any::<(i128, u128)>(),
        small in any::<f32>().prop_filter("NaN is not equal to itself", |x| !x.is_nan()),
        large in float().prop_filter("NaN is not equal to itself", |x| !x.is_nan()),
        maybe in any::<Option<u32>>(),
        none in any::<Option<Vec<u8>>>(),
        map in prop::collection::btree_map(".{0,6}", any::<i64>(), 0..4),
        keys in prop::collection::btree_map(any::<u32>(), any::<bool>(), 0..4),
        text in ".{0,40}",
    ) -> Shapes {
        Shapes {
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(newtype),
            choice,
            choices,
            tuple,
            wide,
            small,
            large,
            maybe,
            none,
            map,
            keys,
            text,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nested_values_encode_as_ciborium_does(value in value()) {
        prop_assert_eq!(cbor::to_vec(&value).unwrap(), ciborium_bytes(&value));
    }

    #[test]
    fn every_serde_shape_encodes_as_ciborium_does(shapes in shapes()) {
        let bytes = cbor::to_vec(&shapes).unwrap();
        prop_assert_eq!(&bytes, &ciborium_bytes(&shapes));
        prop_assert_eq!(cbor::from_slice::<Shapes>(&bytes).unwrap(), shapes);
    }

    #[test]
    fn floats_round_trip_in_any_width(x in float()) {
        let bytes = cbor::to_vec(&x).unwrap();
        let back: f64 = cbor::from_slice(&bytes).unwrap();
        prop_assert_eq!(back.to_bits(), x.to_bits());
    }
}

#[test]
fn unsized_lengths_are_indefinite_like_ciborium() {
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq([1, 2, 3].iter().filter(|_| true))
        }
    }
    assert_eq!(cbor::to_vec(&Unsized).unwrap(), ciborium_bytes(&Unsized));
    assert_eq!(cbor::to_vec(&Unsized).unwrap(), [0x9f, 1, 2, 3, 0xff]);
}
