//! Models: the hub as code. A project folder declares datasets and models (a SELECT that
//! builds a table, with quality checks); [`plan`] compares it with the catalog, the service
//! applies the plan, and [`run_model`] builds a model's table as its owner: the query's rows are
//! staged, checked, and committed through the one write path only when no `error` check fails
//! (write–audit–publish).

mod checks;
mod dag;
pub mod incremental;
mod plan;
mod project;
mod run;

pub use checks::{Check, CheckKind, CheckOutcome, Severity};
pub use dag::order;
pub use plan::{Change, Plan, plan};
pub use project::{DatasetSpec, Materialized, ModelSpec, PROJECT_FILE, Project, Trigger};
pub use run::{RunOutcome, run_model};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A project file is malformed: the file, the line where there is one, and what is wrong.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Project {
        file: String,
        line: Option<usize>,
        message: String,
    },
    /// The models depend on each other in a circle.
    #[error("the models depend on each other in a cycle: {0}; break it")]
    Cycle(String),
    #[error(transparent)]
    Sql(#[from] basin_sql::SqlError),
    #[error(transparent)]
    Catalog(#[from] basin_catalog::CatalogError),
    #[error(transparent)]
    Tables(#[from] basin_tables::TablesError),
    #[error(transparent)]
    Name(#[from] basin_core::CoreError),
    /// Staging or checking a model's result failed.
    #[error("{0}")]
    Run(String),
}

/// Result type of this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
