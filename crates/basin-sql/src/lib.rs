//! Basin's SQL engine.
//!
//! Each statement is parsed with Basin's dialect (DataFusion SQL plus `VERSION AS OF` /
//! `TIMESTAMP AS OF`), its table names are resolved against the catalog (only the tables it
//! names are opened, so planning stays fast with many tables), time travel is resolved before
//! DataFusion plans, and DML (`INSERT`, `INSERT OVERWRITE`, `UPDATE`, `DELETE`, `MERGE INTO`,
//! `CREATE TABLE [AS SELECT]`, `ALTER TABLE … ADD COLUMN`) is checked against the principal's
//! policy and handed to the write path, basin-tables.

pub mod access;
mod assign;
mod browse;
mod checked;
pub mod column_lineage;
mod dialect;
mod dml;
mod engine;
mod error;
pub mod export;
mod governance;
mod governed;
pub mod lineage;
mod pending;
mod principal_sql;
mod resolve;
mod sample;
mod system;

pub use browse::set_description;
pub use engine::{Engine, QueryOutput};
pub use error::{Position, SqlError};
pub use governance::{
    PolicyExpression, check, check_policy_expression, expand_grant, grant_statement,
};
pub use principal_sql::OPERATOR;
pub use resolve::name_parts;

/// The SQL name of an Arrow type, as result schemas and `system.columns` show it.
pub use basin_lake::types::sql_name as sql_type_name;

/// The columns `table_changes(…)` adds to a table's own: which change, in which version, when.
pub use basin_lake::CHANGE_COLUMNS;

/// Parses `sql` within the bounds every statement Basin runs is parsed in (time and depth: see
/// docs/sql.md, "Limits on a statement's shape"), for SQL that DataFusion then plans directly.
pub fn check_syntax(sql: &str) -> Result<()> {
    engine::parse(sql).map(drop)
}

/// Result type of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
