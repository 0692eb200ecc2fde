//! Basin's metadata store: hubs, datasets, tables and their columns, and the access model.
//!
//! One code path serves SQLite (the embedded default, `<data-dir>/catalog.db` in WAL mode) and
//! PostgreSQL (`postgres://…`, for several nodes), through sqlx's `Any` driver and portable SQL.

pub mod access;
mod error;
mod migrate;
mod model;
mod store;

pub use error::CatalogError;
pub use model::{
    Column, Contract, Dataset, DatasetUpdate, Hub, NewDataset, NewHub, NewTable, Table,
};
pub use store::Catalog;
pub use store::{
    Lease, MAX_DESCRIPTION_CHARS, MaintenancePolicy, MaintenanceRun, Model, ModelRun, Source,
    SourceFile, SourceRun, StreamSettings, UnknownFields,
};

/// Result type of this crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
