use deltalake::DeltaTableError;

/// Errors of lake operations.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Incoming data has a column whose type cannot be stored in the table's column.
    #[error(
        "column '{column}' has type {table_type} in the table but {incoming_type} in the new data; only widening (INT to BIGINT, FLOAT to DOUBLE, integers to DOUBLE) is applied automatically: cast the column or give the load a schema"
    )]
    IncompatibleType {
        column: String,
        table_type: String,
        incoming_type: String,
    },
    /// A column named by the caller does not exist.
    #[error("column '{column}' not found in {context}{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    UnknownColumn {
        column: String,
        context: String,
        suggestion: Option<String>,
    },
    /// The input is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The requested version or time does not exist.
    #[error("{0}")]
    NoSuchVersion(String),
    /// Another write committed first and this one cannot be applied on top of it; nothing was
    /// committed, and running the write again is safe.
    #[error(
        "{action} failed: another write to the table committed first and conflicts with this one; nothing was committed, so running it again is safe"
    )]
    Conflict {
        action: String,
        #[source]
        source: DeltaTableError,
    },
    /// A Delta operation failed; nothing was committed.
    #[error("{action} failed: {source}")]
    Delta {
        action: String,
        #[source]
        source: DeltaTableError,
    },
    /// Query planning or execution of the operation's input failed.
    #[error("{action} failed: {source}")]
    DataFusion {
        action: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// An Arrow conversion failed.
    #[error("{action} failed: {source}")]
    Arrow {
        action: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

pub(crate) trait Context<T> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, LakeError>;
}

impl<T> Context<T> for Result<T, DeltaTableError> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, LakeError> {
        self.map_err(|source| {
            let action = action();
            if is_conflict(&source) {
                LakeError::Conflict { action, source }
            } else {
                LakeError::Delta { action, source }
            }
        })
    }
}

/// Whether a commit lost to a concurrent one (delta-rs retried until it gave up, or found the
/// winner's changes overlap its own).
fn is_conflict(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError as T;
    matches!(
        e,
        DeltaTableError::Transaction {
            source: T::CommitConflict(_) | T::MaxCommitAttempts(_) | T::VersionAlreadyExists(_)
        }
    )
}

impl<T> Context<T> for Result<T, datafusion::error::DataFusionError> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, LakeError> {
        self.map_err(|source| LakeError::DataFusion {
            action: action(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, arrow::error::ArrowError> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, LakeError> {
        self.map_err(|source| LakeError::Arrow {
            action: action(),
            source,
        })
    }
}
