//! The context: the values handlers borrow, one per type.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// The values handlers borrow as their context parameter, one per type.
///
/// A `#[remote]` function taking `timer: &Timer` gets the `Timer` stored here;
/// the server owns the context, nothing is global.
///
/// ```
/// use rpc_core::Context;
/// struct Counter(u32);
/// let ctx = Context::new().with(Counter(7));
/// assert_eq!(ctx.get::<Counter>().unwrap().0, 7);
/// assert!(ctx.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct Context {
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing an earlier value of the same type.
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.insert(Arc::new(value));
        self
    }

    /// Adds a shared value, replacing an earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        let id = TypeId::of::<T>();
        self.values.retain(|(t, _)| *t != id);
        self.values.push((id, value));
    }

    /// Whether a value of type `T` is here.
    pub fn contains<T: Any + Send + Sync>(&self) -> bool {
        let id = TypeId::of::<T>();
        self.values.iter().any(|(t, _)| *t == id)
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let id = TypeId::of::<T>();
        // A handful of entries at most: a scan beats hashing.
        let (_, value) = self.values.iter().find(|(t, _)| *t == id)?;
        Arc::clone(value).downcast::<T>().ok()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("values", &self.values.len())
            .finish()
    }
}
