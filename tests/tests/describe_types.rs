//! The CDDL generator on types the timer does not use: enums (reached only
//! through a field), serde renames, unsigned integers, tuples, maps, byte
//! buffers, a method name that is not a rule name, and events whose payload
//! is or is not `Deserialize`. Values encoded by the runtime's own encoder
//! must validate against the rules generated for their types.

use std::collections::BTreeMap;

use rpc_core::events::EventTable;
use rpc_core::registry::Registry;
use rpc_core::{event, remote};
use serde::{Deserialize, Serialize};

/// A shape with every kind of enum variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// A unit variant: its name.
    Empty,
    /// A newtype variant.
    Circle(f64),
    /// A tuple variant.
    Rect(u32, u32),
    /// A struct variant, with a renamed field.
    Label {
        /// Renamed on the wire.
        #[serde(rename = "txt")]
        text: String,
    },
}

/// A request reaching the enum only through fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Drawing {
    /// Several shapes.
    pub shapes: Vec<Shape>,
    /// An optional one.
    pub main_shape: Option<Shape>,
    /// Unsigned.
    pub layer: u64,
    /// A pair.
    pub origin: (i32, String),
    /// Free attributes.
    pub attributes: BTreeMap<String, bool>,
}

/// The reply of `draw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "DrawingReceipt")]
pub struct Receipt {
    /// How many shapes were drawn.
    pub count: u16,
    /// Raw bytes, as a CBOR array of integers (serde's `Vec<u8>`).
    pub digest: Vec<u8>,
}

/// Draws, under a name no CDDL rule may have.
#[remote(name = "draw it/2")]
pub async fn draw(drawing: Drawing, dry_run: Option<bool>) -> Result<Receipt, String> {
    let _ = dry_run;
    Ok(Receipt {
        count: u16::try_from(drawing.shapes.len()).map_err(|e| e.to_string())?,
        digest: vec![1, 2, 3],
    })
}

/// Takes a shape as its argument and replies one: an enum as the whole
/// reply is traced with every variant.
#[remote]
pub async fn pick(shape: Shape) -> Shape {
    shape
}

/// An event whose payload can be traced.
#[event("drawn")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drawn {
    /// The layer drawn on.
    pub layer: u64,
}

/// An event whose payload is only `Serialize`: described as `any`.
#[event("opaque")]
#[derive(Debug, Clone, Serialize)]
pub struct Opaque {
    /// Anything.
    pub value: i64,
}

fn doc() -> String {
    rpc_core::builtins::describe::cddl(Registry::global().unwrap(), EventTable::global().unwrap())
}

fn validate<T: Serialize>(doc: &str, rule: &str, value: &T) -> Result<(), String> {
    let bytes = rpc_core::wire::cbor::to_vec(value).unwrap();
    let with_root = format!("root = {rule}\n{doc}");
    cddl::validate_cbor_from_slice(&with_root, &bytes, None).map_err(|e| e.to_string())
}

fn drawing(shapes: Vec<Shape>, main_shape: Option<Shape>) -> Drawing {
    Drawing {
        shapes,
        main_shape,
        layer: 7,
        origin: (-1, "o".into()),
        attributes: BTreeMap::from([("bold".into(), true)]),
    }
}

#[test]
fn every_kind_of_type_is_described_with_serde_names() {
    let doc = doc();
    cddl::parser::cddl_from_str(&doc, false).expect("the document parses");
    for expected in [
        // The name's invalid characters are replaced.
        "draw-it-2-args = {\n  \"drawing\": drawing,\n  ? \"dry_run\": bool / null,\n  * tstr => any\n}",
        "draw-it-2-reply = {\n  \"count\": uint,\n  \"digest\": [* uint]\n}",
        // Reached from a payload: open; renamed fields; the enum found
        // through a field, every variant.
        "drawing = {\n  \"SHAPES\": [* shape],\n  ? \"MAIN_SHAPE\": shape / null,\n  \
         \"LAYER\": uint,\n  \"ORIGIN\": [int, tstr],\n  \"ATTRIBUTES\": { * tstr => bool },\n  \
         * tstr => any\n}",
        // An enum as the whole reply: every variant, external tagging.
        "pick-reply = \"Empty\" / { \"Circle\": float } / { \"Rect\": [uint, uint] } / \
         { \"Label\": {\n    \"txt\": tstr\n  } }",
        // An enum reached through a field: serde-reflection sees only some
        // variants, so it is `any` rather than a rule refusing valid values.
        "; Shape: an enum reached through a field, whose variants are not all traced\n\
         shape = any",
        "pick-args = {\n  \"shape\": shape,\n  * tstr => any\n}",
        "drawn-payload = {\n  \"layer\": uint\n}",
        "opaque-payload = any",
    ] {
        assert!(doc.contains(expected), "missing:\n{expected}\nin:\n{doc}");
    }
}

#[test]
fn values_encoded_by_the_runtime_validate_against_their_rules() {
    let doc = doc();
    let all_shapes = vec![
        Shape::Empty,
        Shape::Circle(1.5),
        Shape::Rect(2, 3),
        Shape::Label { text: "x".into() },
    ];
    #[derive(Serialize)]
    struct Args {
        drawing: Drawing,
        dry_run: Option<bool>,
    }
    for args in [
        Args {
            drawing: drawing(all_shapes.clone(), Some(Shape::Rect(1, 1))),
            dry_run: Some(true),
        },
        Args {
            drawing: drawing(vec![], None),
            dry_run: None,
        },
    ] {
        validate(&doc, "draw-it-2-args", &args).unwrap();
    }
    validate(
        &doc,
        "draw-it-2-reply",
        &Receipt {
            count: 4,
            digest: vec![0, 255],
        },
    )
    .unwrap();
    for shape in &all_shapes {
        validate(&doc, "pick-reply", shape).unwrap();
        validate(&doc, "pick-args", &BTreeMap::from([("shape", shape)])).unwrap();
    }
    validate(&doc, "drawn-payload", &Drawn { layer: 1 }).unwrap();
    validate(&doc, "opaque-payload", &Opaque { value: 1 }).unwrap();

    // What serde would refuse, the rules refuse.
    let mut wrong_layer = serde_json::to_value(drawing(vec![], None)).unwrap();
    wrong_layer["LAYER"] = "seven".into();
    let bad = BTreeMap::from([("drawing", wrong_layer)]);
    assert!(validate(&doc, "draw-it-2-args", &bad).is_err());
    assert!(validate(&doc, "pick-reply", &"Square").is_err());
    assert!(validate(&doc, "pick-reply", &BTreeMap::from([("Circle", "round")])).is_err());
    let negative_layer = BTreeMap::from([("layer", -1)]);
    assert!(validate(&doc, "drawn-payload", &negative_layer).is_err());
}
