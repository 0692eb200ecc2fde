use basin_catalog::CatalogError;
use basin_keys::KeyError;
use basin_lake::LakeError;

/// Errors of the write path.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// The principal may not make this write; the message says which privilege or view it needs.
    #[error("{0}")]
    Denied(String),
    /// The table or dataset is missing, or hidden from the principal (the two answer the same).
    #[error("{kind} '{name}' not found")]
    NotFound { kind: &'static str, name: String },
    /// Another write to the table committed first and this one cannot be applied on top of it.
    #[error(
        "the write to '{table}' conflicts with another write that committed first; nothing was committed, so running it again is safe"
    )]
    Conflict { table: String },
    /// The write did not get its turn on the table in time (other writes of this process held
    /// it): nothing was committed.
    #[error(
        "table '{table}' is busy: this write waited {waited}s for its turn behind other writes to it; nothing was committed, so retrying in a moment is safe"
    )]
    Busy { table: String, waited: u64 },
    /// A Delta table lies at the new table's location without a catalog entry, written moments
    /// ago: another request is creating the table, or one was cut short (by a catalog outage)
    /// and its files are cleared by the next attempt once they are old enough. Nothing was done.
    #[error(
        "table '{table}' is being created by another request, or a creation cut short moments ago left its files; nothing was done, so retrying in {retry_after}s is safe"
    )]
    Creating { table: String, retry_after: u64 },
    /// This node's buffer of streamed records is full: nothing was taken; retrying after
    /// `retry_after` seconds is safe.
    #[error(
        "the stream buffer of this server is full ({limit} bytes) while '{table}' and other tables commit what they hold; nothing was taken, so retrying in {retry_after}s is safe"
    )]
    Full {
        table: String,
        limit: usize,
        retry_after: u64,
    },
    /// A request with the same `Idempotency-Key` is being taken: its answer will tell.
    #[error(
        "a request with this Idempotency-Key is still being taken into '{table}'; retry it in a moment to get its answer"
    )]
    InProgress { table: String },
    /// The write is not acceptable as asked.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl TablesError {
    /// The error as the user of `table` should read it: a lost commit race names the table,
    /// not its storage location.
    pub(crate) fn about(self, table: &basin_core::TableRef) -> Self {
        match self {
            TablesError::Lake(LakeError::Conflict { .. }) => TablesError::Conflict {
                table: table.to_string(),
            },
            other => other,
        }
    }
}
