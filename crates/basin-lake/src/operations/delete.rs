use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::prelude::{Expr, lit};

use crate::error::Context;
use crate::{LakeError, LakeTable, Result};

/// Deletes the rows matching a predicate, or the rows with given keys, in one commit.
pub struct DeleteRows {
    table: LakeTable,
    predicate: Option<Expr>,
    sql_predicate: Option<String>,
    operation: &'static str,
}

impl DeleteRows {
    pub(crate) fn new(table: LakeTable) -> Self {
        DeleteRows {
            table,
            predicate: None,
            sql_predicate: None,
            operation: "delete",
        }
    }

    /// Names the operation in the commit metadata (`delete`, `truncate`).
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Deletes the rows for which the SQL predicate is true (all rows when never called).
    pub fn with_predicate(mut self, predicate: impl Into<String>) -> Self {
        self.sql_predicate = Some(predicate.into());
        self
    }

    /// Deletes the rows whose key columns equal one of `keys` (one value per key column).
    pub fn with_keys(mut self, columns: &[String], keys: Vec<Vec<ScalarValue>>) -> Result<Self> {
        let mut any: Option<Expr> = None;
        for key in keys {
            if key.len() != columns.len() {
                return Err(LakeError::InvalidInput(format!(
                    "a key has {} values but the key has {} columns ({})",
                    key.len(),
                    columns.len(),
                    columns.join(", ")
                )));
            }
            let row = columns
                .iter()
                .zip(key)
                .map(|(c, v)| Expr::Column(Column::from_name(c)).eq(lit(v)))
                .reduce(Expr::and)
                .ok_or_else(|| {
                    LakeError::InvalidInput("a delete by key needs key columns".into())
                })?;
            any = Some(match any {
                Some(e) => e.or(row),
                None => row,
            });
        }
        // No keys: nothing to delete, which `false` says without scanning a file.
        self.predicate = Some(any.unwrap_or(lit(false)));
        Ok(self)
    }

    /// Runs the delete; returns the new version and the number of deleted rows.
    pub async fn execute(self) -> Result<(i64, u64)> {
        let location = self.table.location().to_string();
        let ctx = super::session_for(&self.table);
        let mut builder = self
            .table
            .delta
            .clone()
            .delete()
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(super::commit_properties(self.operation, None));
        if let Some(p) = self.predicate {
            builder = builder.with_predicate(p);
        } else if let Some(p) = self.sql_predicate {
            builder = builder.with_predicate(p);
        }
        let (delta, metrics) = builder
            .await
            .ctx(|| format!("deleting from table at {location}"))?;
        Ok((
            crate::table::version_of(&delta),
            metrics.num_deleted_rows.unwrap_or_default() as u64,
        ))
    }
}
