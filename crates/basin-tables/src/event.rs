use serde::Serialize;

/// What every commit announces, once it has landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitEvent {
    /// `hub.dataset.table`.
    pub table: String,
    /// The table version the commit made.
    pub version: i64,
    /// `insert`, `update`, `delete`, `merge`, `upsert`, `ingest`, `restore`, …
    pub operation: String,
    /// Rows written, changed or removed.
    pub rows: u64,
    /// The principal the write was made for (`operator` for the trusted operator).
    pub principal: String,
}
