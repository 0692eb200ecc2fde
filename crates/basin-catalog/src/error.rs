use basin_core::CoreError;

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A name or other plain input is invalid.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The object does not exist (the suggestion is the closest existing name, if any).
    #[error("{kind} '{name}' not found{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    NotFound {
        kind: &'static str,
        name: String,
        suggestion: Option<String>,
    },
    /// The object exists already.
    #[error("{kind} '{name}' already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The object still holds others (a hub its datasets, a dataset its tables); the message
    /// names them and says what to do.
    #[error("{0}")]
    NotEmpty(String),
    /// A value is not acceptable for a field.
    #[error("{0}")]
    BadValue(String),
    /// The catalog database could not be reached or answered with an error.
    #[error("catalog database error while {action}: {source}")]
    Database {
        action: String,
        #[source]
        source: sqlx::Error,
    },
}

pub(crate) trait DbContext<T> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, CatalogError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, CatalogError> {
        self.map_err(|source| CatalogError::Database {
            action: action(),
            source,
        })
    }
}
