//! The traced types of methods and events, for `rpc.describe`.
//!
//! Types are traced with `serde-reflection`, which drives each type's own
//! `Deserialize` implementation: the keys are exactly the ones serde reads
//! (`rename_all`, `rename` and the rest honoured), with no second derive to
//! keep in step. A type serde-reflection cannot trace (one that inspects its
//! input with `deserialize_any`, say) is described as `any`, with a comment
//! saying why. [`crate::cddl`] turns them into text.
//!
//! # Layout
//!
//! - [`Types`]: the payload and reply types of one method; `#[remote]`
//!   records [`Types::of`] in every registered method;
//! - [`Shape`]: one traced type, such as an event's payload;
//! - [`PayloadProbe`]: how `#[event]` picks [`Shape::of`] or [`Shape::any`].

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_reflection::{ContainerFormat, Format, Samples, Tracer, TracerConfig};

/// The payload and reply types of one method, traced for its description.
#[derive(Debug, Clone)]
pub struct Types {
    pub(crate) args: Shape,
    pub(crate) reply: Shape,
}

impl Types {
    /// The types of a method whose payload decodes into `A` and whose status
    /// 0 reply decodes into `R`. `#[remote]` records
    /// `Types::of::<ArgsStruct, Reply>` for every function.
    pub fn of<A: DeserializeOwned, R: DeserializeOwned>() -> Types {
        Types {
            args: Shape::of::<A>(),
            reply: Shape::of::<R>(),
        }
    }

    /// A method described as taking any map and replying anything.
    pub fn untyped() -> Types {
        Types {
            args: Shape::any(),
            reply: Shape::any(),
        }
    }
}

/// One traced type, as the CDDL describes it: an event's payload, say
/// (`#[event]` records [`Shape::of`] the payload type when it is
/// `Deserialize`, [`Shape::any`] otherwise).
#[derive(Debug, Clone)]
pub struct Shape(pub(crate) Traced);

impl Shape {
    /// The shape of `T`, traced through its `Deserialize` implementation.
    pub fn of<T: DeserializeOwned>() -> Shape {
        Shape(Traced::trace::<T>())
    }

    /// Any CBOR item.
    pub fn any() -> Shape {
        Shape(Traced::Any)
    }
}

/// A traced type: its format and the named containers (structs, enums) it
/// reaches, by serde name.
#[derive(Debug, Clone)]
pub(crate) enum Traced {
    Found {
        root: Format,
        containers: BTreeMap<String, ContainerFormat>,
        /// Enums whose variants could not all be traced: described as `any`.
        partial: BTreeSet<String>,
    },
    Any,
    Failed(String),
}

impl Traced {
    fn trace<T: DeserializeOwned>() -> Traced {
        // serde-reflection finds every variant of the traced type itself
        // when it is an enum, but sees only some variants of an enum reached
        // through a field (exploration stops at formats already known): the
        // first run names those, the second keeps what it found of the rest.
        let samples = Samples::new();
        let trace = || {
            let mut tracer = Tracer::new(TracerConfig::default());
            let (root, _) = tracer.trace_type::<T>(&samples)?;
            Ok::<_, serde_reflection::Error>((root, tracer))
        };
        let partial = match trace() {
            Ok((root, tracer)) => match tracer.registry() {
                Ok(containers) => {
                    return Traced::Found {
                        root,
                        containers,
                        partial: BTreeSet::new(),
                    }
                }
                Err(serde_reflection::Error::MissingVariants(names)) => names,
                Err(e) => return Traced::Failed(e.to_string()),
            },
            Err(e) => return Traced::Failed(e.to_string()),
        };
        match trace() {
            Ok((root, tracer)) => Traced::Found {
                root,
                containers: tracer.registry_unchecked(),
                partial: partial.into_iter().collect(),
            },
            Err(e) => Traced::Failed(e.to_string()),
        }
    }
}

/// How `#[event]` describes its payload type `T`: traced when `T` is
/// `Deserialize`, `any` otherwise. The generated code calls
/// `(&PayloadProbe::<T>::new()).shape()` with both traits in scope; the
/// first impl applies only when its bound holds, else method lookup goes on
/// to the second, on `&PayloadProbe<T>` (autoref specialisation).
pub struct PayloadProbe<T>(std::marker::PhantomData<T>);

impl<T> PayloadProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        PayloadProbe(std::marker::PhantomData)
    }
}

/// The payload type is `Deserialize`: trace it.
pub trait TracedPayload {
    /// The payload's shape.
    fn shape(&self) -> Shape;
}

impl<T: serde::de::DeserializeOwned> TracedPayload for PayloadProbe<T> {
    fn shape(&self) -> Shape {
        Shape::of::<T>()
    }
}

/// The payload type is not `Deserialize`: describe it as `any`.
pub trait UntracedPayload {
    /// The payload's shape.
    fn shape(&self) -> Shape;
}

impl<T> UntracedPayload for &PayloadProbe<T> {
    fn shape(&self) -> Shape {
        Shape::any()
    }
}
