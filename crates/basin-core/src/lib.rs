//! Basin's shared vocabulary: validated names, table references, layers, errors and units.
//!
//! Everything here is plain data, cheap to build and free of I/O, so that every other crate can
//! depend on it.

mod error;
mod layer;
mod names;
mod suggest;
mod units;

pub use error::CoreError;
pub use layer::Layer;
pub use names::{DEFAULT_HUB, DatasetRef, Name, TableRef, is_reserved_dataset};
pub use suggest::closest;
pub use units::human_bytes;
