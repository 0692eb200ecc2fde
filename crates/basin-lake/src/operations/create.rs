use std::sync::Arc;

use arrow::datatypes::Schema;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;

use crate::error::Context;
use crate::types::storable_schema;
use crate::{LakeError, LakeTable, Result};

/// Creates an empty Delta table (version 0) with a schema and partition columns.
pub struct CreateTable {
    location: String,
    schema: Arc<Schema>,
    partition_columns: Vec<String>,
    name: Option<String>,
    description: Option<String>,
}

impl CreateTable {
    /// A table at `location` with `schema` (converted to storable types).
    pub fn new(location: impl Into<String>, schema: &Schema) -> Self {
        CreateTable {
            location: location.into(),
            schema: storable_schema(schema),
            partition_columns: Vec::new(),
            name: None,
            description: None,
        }
    }

    /// Partitions the table's files by these columns.
    pub fn with_partition_columns(mut self, columns: Vec<String>) -> Self {
        self.partition_columns = columns;
        self
    }

    /// Records the table's name in its metadata.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records a description in the table's metadata.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Creates the table; fails if one exists at the location already.
    pub async fn execute(self) -> Result<LakeTable> {
        if self.schema.fields().is_empty() {
            return Err(LakeError::InvalidInput(
                "a table needs at least one column".into(),
            ));
        }
        let url = super::prepare_new_table(&self.location, &self.schema, &self.partition_columns)?;
        let kernel: StructType = self
            .schema
            .as_ref()
            .try_into_kernel()
            .ctx(|| "converting the schema".into())?;
        let mut builder = CreateBuilder::new()
            .with_location(url.to_string())
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(self.partition_columns.clone())
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_configuration(super::NEW_TABLE_PROPERTIES)
            .with_commit_properties(super::commit_properties("create", None));
        if let Some(name) = self.name {
            builder = builder.with_table_name(name);
        }
        if let Some(description) = self.description {
            builder = builder.with_comment(description);
        }
        let delta = builder
            .await
            .ctx(|| format!("creating table at {}", self.location))?;
        Ok(LakeTable::from_delta(delta, &self.location))
    }
}
