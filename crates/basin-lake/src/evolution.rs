//! Schema evolution: how a table's schema and incoming data meet.
//!
//! New columns are appended (older rows read NULL), columns missing from the new data are
//! filled with NULL, incoming values narrower than the table's column are cast up, and a table
//! column narrower than the incoming data is widened (which rewrites the table in the same
//! commit). Anything else is refused with an error naming the column and both types.

use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::error::Context;
use crate::types::{sql_name, storable, widens};
use crate::{LakeError, Result};

/// How one write changes the table's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Evolution {
    /// The table's schema after the write; incoming batches are cast to it.
    pub target: SchemaRef,
    /// Columns new to the table.
    pub added: Vec<String>,
    /// Table columns whose type widens, with the old and new SQL type.
    pub widened: Vec<(String, String, String)>,
}

impl Evolution {
    /// Whether the table schema changes at all.
    pub fn changes_schema(&self) -> bool {
        !self.added.is_empty() || !self.widened.is_empty()
    }
}

/// No change to a table whose schema is `table`.
pub fn unchanged(table: &Schema) -> Evolution {
    Evolution {
        target: Arc::new(table.clone()),
        added: Vec::new(),
        widened: Vec::new(),
    }
}

/// Plans how `incoming` data is written into a table whose schema is `table`.
pub fn plan(table: &Schema, incoming: &Schema) -> Result<Evolution> {
    let mut fields: Vec<Field> = Vec::with_capacity(table.fields().len());
    let mut widened = Vec::new();
    for tf in table.fields() {
        let Some(inf) = incoming.fields().iter().find(|f| f.name() == tf.name()) else {
            fields.push(tf.as_ref().clone().with_nullable(true));
            continue;
        };
        let (t, i) = (storable(tf.data_type()), storable(inf.data_type()));
        if widens(&i, &t) {
            fields.push(tf.as_ref().clone());
        } else if widens(&t, &i) {
            widened.push((tf.name().clone(), sql_name(&t), sql_name(&i)));
            fields.push(Field::new(tf.name(), i, true));
        } else {
            return Err(LakeError::IncompatibleType {
                column: tf.name().clone(),
                table_type: sql_name(&t),
                incoming_type: sql_name(inf.data_type()),
            });
        }
    }
    let mut added = Vec::new();
    for inf in incoming.fields() {
        if table.field_with_name(inf.name()).is_err() {
            added.push(inf.name().clone());
            fields.push(Field::new(inf.name(), storable(inf.data_type()), true));
        }
    }
    Ok(Evolution {
        target: Arc::new(Schema::new(fields)),
        added,
        widened,
    })
}

/// `batch` with exactly the columns of `target`: cast where types differ, NULL where missing.
/// Casts are checked: a value that does not fit is an error, never a silent NULL.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast_with_options(c, f.data_type(), &options).ctx(|| {
                format!(
                    "converting column '{}' to {}",
                    f.name(),
                    sql_name(f.data_type())
                )
            }),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(target.clone(), columns)
        .ctx(|| "conforming a batch to the table schema".into())
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;

    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn adds_and_widens() {
        let table = schema(&[("id", DataType::Int32), ("price", DataType::Float64)]);
        let incoming = schema(&[
            ("id", DataType::Int64),
            ("price", DataType::Int64),
            ("note", DataType::Utf8),
        ]);
        let e = plan(&table, &incoming).unwrap();
        assert_eq!(e.added, vec!["note"]);
        assert_eq!(
            e.widened,
            vec![("id".into(), "INT".into(), "BIGINT".into())]
        );
        assert_eq!(e.target.field(1).data_type(), &DataType::Float64);
    }

    #[test]
    fn refuses_incompatible_change() {
        let table = schema(&[("id", DataType::Int64)]);
        let incoming = schema(&[("id", DataType::Utf8)]);
        let msg = plan(&table, &incoming).unwrap_err().to_string();
        assert!(
            msg.contains("'id'") && msg.contains("BIGINT") && msg.contains("VARCHAR"),
            "{msg}"
        );
    }
}
