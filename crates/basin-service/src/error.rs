use basin_catalog::CatalogError;
use basin_ingest::IngestError;
use basin_keys::KeyError;
use basin_sql::SqlError;
use basin_tables::TablesError;

/// Errors of the service layer: what a surface turns into a status code or an exit code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The principal may not do this; the message says what it needs.
    #[error("{0}")]
    Denied(String),
    /// Missing, or hidden from the principal (the two answer the same).
    #[error("{0}")]
    NotFound(String),
    /// The request is not acceptable as given; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A running query was cancelled; the message says by whom.
    #[error("{0}")]
    Cancelled(String),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Lake(#[from] basin_lake::LakeError),
    #[error(transparent)]
    Name(#[from] basin_core::CoreError),
}

impl From<basin_pipelines::PipelineError> for ServiceError {
    fn from(e: basin_pipelines::PipelineError) -> Self {
        use basin_pipelines::PipelineError as P;
        match e {
            P::Sql(e) => ServiceError::Sql(e),
            P::Catalog(e) => ServiceError::Catalog(e),
            P::Tables(e) => ServiceError::Tables(e),
            P::Name(e) => ServiceError::Name(e),
            e @ (P::Project { .. } | P::Cycle(_) | P::Run(_)) => {
                ServiceError::Invalid(e.to_string())
            }
        }
    }
}
