use arrow::datatypes::{Field, Schema};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;

use crate::error::Context;
use crate::types::storable;
use crate::{LakeError, LakeTable, Result};

/// Adds nullable columns to a table (existing rows read NULL), in one commit.
pub struct AddColumns {
    table: LakeTable,
    fields: Vec<Field>,
}

impl AddColumns {
    pub(crate) fn new(table: LakeTable) -> Self {
        AddColumns {
            table,
            fields: Vec::new(),
        }
    }

    /// Adds a column of this name and type.
    pub fn column(
        mut self,
        name: impl Into<String>,
        data_type: arrow::datatypes::DataType,
    ) -> Self {
        self.fields
            .push(Field::new(name.into(), storable(&data_type), true));
        self
    }

    /// Runs the change; returns the new version.
    pub async fn execute(self) -> Result<i64> {
        let schema = self.table.schema()?;
        for f in &self.fields {
            if schema.field_with_name(f.name()).is_ok() {
                return Err(LakeError::InvalidInput(format!(
                    "column '{}' exists already",
                    f.name()
                )));
            }
        }
        let location = self.table.location().to_string();
        let kernel: StructType = (&Schema::new(self.fields))
            .try_into_kernel()
            .ctx(|| "converting the new columns".into())?;
        let delta = self
            .table
            .delta
            .clone()
            .add_columns()
            .with_fields(kernel.fields().cloned().collect::<Vec<_>>())
            .await
            .ctx(|| format!("adding columns to table at {location}"))?;
        Ok(crate::table::version_of(&delta))
    }
}
