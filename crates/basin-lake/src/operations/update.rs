use std::sync::Arc;

use crate::error::Context;
use crate::{LakeError, LakeTable, Result};

/// Sets columns to SQL expressions on the rows matching a predicate, in one commit.
pub struct UpdateRows {
    table: LakeTable,
    predicate: Option<String>,
    set: Vec<(String, String)>,
}

impl UpdateRows {
    pub(crate) fn new(table: LakeTable) -> Self {
        UpdateRows {
            table,
            predicate: None,
            set: Vec::new(),
        }
    }

    /// Updates only the rows for which the SQL predicate is true.
    pub fn with_predicate(mut self, predicate: impl Into<String>) -> Self {
        self.predicate = Some(predicate.into());
        self
    }

    /// Sets `column` to the SQL expression `value`.
    pub fn set(mut self, column: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.push((column.into(), value.into()));
        self
    }

    /// Runs the update; returns the new version and the number of updated rows.
    pub async fn execute(self) -> Result<(i64, u64)> {
        if self.set.is_empty() {
            return Err(LakeError::InvalidInput(
                "an update needs at least one column to set".into(),
            ));
        }
        let schema = self.table.schema()?;
        for (c, _) in &self.set {
            if schema.field_with_name(c).is_err() {
                return Err(LakeError::UnknownColumn {
                    column: c.clone(),
                    context: format!("table at {}", self.table.location()),
                    suggestion: basin_core::closest(
                        c,
                        schema.fields().iter().map(|f| f.name().as_str()),
                    )
                    .map(str::to_string),
                });
            }
        }
        let location = self.table.location().to_string();
        let ctx = super::session_for(&self.table);
        let mut builder = self
            .table
            .delta
            .clone()
            .update()
            .with_session_state(Arc::new(ctx.state()))
            .with_safe_cast(false)
            .with_commit_properties(super::commit_properties("update", None));
        if let Some(p) = self.predicate {
            builder = builder.with_predicate(p);
        }
        for (c, v) in self.set {
            builder = builder.with_update(c, v);
        }
        let (delta, metrics) = builder
            .await
            .ctx(|| format!("updating table at {location}"))?;
        Ok((
            crate::table::version_of(&delta),
            metrics.num_updated_rows as u64,
        ))
    }
}
