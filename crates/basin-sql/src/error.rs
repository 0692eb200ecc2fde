use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

/// Errors of SQL statements.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("SQL syntax error: {0}")]
    Parse(String),
    /// A column or table the statement names does not exist.
    #[error("{kind} '{name}' not found{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    NotFound {
        kind: &'static str,
        name: String,
        suggestion: Option<String>,
    },
    /// The statement is valid SQL that Basin does not run.
    #[error("{0}")]
    Unsupported(String),
    /// The statement is wrong in a way the message explains.
    #[error("{0}")]
    Invalid(String),
    /// The principal may see the object but lacks the privilege for this statement.
    #[error("{0}")]
    Denied(String),
    /// Planning or execution failed.
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Catalog(#[from] basin_catalog::CatalogError),
    #[error(transparent)]
    Lake(#[from] basin_lake::LakeError),
    #[error(transparent)]
    Name(#[from] basin_core::CoreError),
    #[error(transparent)]
    Key(#[from] basin_keys::KeyError),
    /// The write path failed (storage, catalog, keys).
    #[error(transparent)]
    Tables(basin_tables::TablesError),
}

impl From<basin_tables::TablesError> for SqlError {
    fn from(e: basin_tables::TablesError) -> Self {
        use basin_tables::TablesError as T;
        match e {
            T::Denied(m) => SqlError::Denied(m),
            T::Invalid(m) => SqlError::Invalid(m),
            T::NotFound { kind, name } => SqlError::NotFound {
                kind,
                name,
                suggestion: None,
            },
            T::Catalog(e) => SqlError::Catalog(e),
            T::Lake(e) => SqlError::Lake(e),
            T::DataFusion(e) => e.into(),
            other => SqlError::Tables(other),
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        let root = e.find_root();
        if let DataFusionError::SchemaError(schema_error, _) = root
            && let SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = schema_error.as_ref()
        {
            let candidates: Vec<&str> = valid_fields.iter().map(|c| c.name.as_str()).collect();
            return SqlError::NotFound {
                kind: "column",
                name: field.flat_name(),
                suggestion: basin_core::closest(&field.name, candidates).map(str::to_string),
            };
        }
        if let DataFusionError::External(inner) = root {
            return SqlError::Query(inner.to_string());
        }
        SqlError::Query(root.to_string())
    }
}
