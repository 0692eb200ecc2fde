//! [`Tables::drop`]: a table removed with everything that names it.

use basin_catalog::access::Privilege;
use basin_core::TableRef;
use basin_lake::LakeTable;

use crate::{Actor, Committed, Result, Tables, TablesError, WriteNeeds};

impl Tables {
    /// Drops a table for `actor`, who needs MANAGE on it (a table it cannot see answers "not
    /// found"): the catalog entry goes first, with its columns, tags, grants, row filters and
    /// masks, then every file of every version. There is no undo. Audited as `drop`. `view`
    /// says what the caller means to drop (`DROP VIEW` or `DROP TABLE`).
    pub async fn drop(&self, actor: &Actor, t: &TableRef, view: bool) -> Result<Committed> {
        let operation = if view { "drop view" } else { "drop table" };
        let result = self.drop_unrecorded(actor, t, view, operation).await;
        self.record(actor, "drop", t, operation, &result).await;
        result
    }

    async fn drop_unrecorded(
        &self,
        actor: &Actor,
        t: &TableRef,
        view: bool,
        operation: &'static str,
    ) -> Result<Committed> {
        let entry = self.entry(t).await?;
        let needs = WriteNeeds {
            operation,
            privilege: Privilege::Manage,
            full_view: false,
            rows_unchecked: false,
            administer: false,
            columns: Vec::new(),
        };
        self.decide(actor, &entry, &needs).await?;
        match (entry.is_view(), view) {
            (true, false) => Err(TablesError::Invalid(format!(
                "'{t}' is a view; drop it with DROP VIEW"
            )))?,
            (false, true) => Err(TablesError::Invalid(format!(
                "'{t}' is a table, not a view; drop it with DROP TABLE"
            )))?,
            _ => {}
        }
        // A table whose files are gone or unreadable can still be dropped from the catalog.
        let lake = LakeTable::open(&entry.location).await.ok();
        self.catalog.drop_table(t).await?;
        self.discard_stream(t);
        let version = lake.as_ref().map_or(-1, LakeTable::version);
        if let Some(lake) = lake {
            lake.drop_files().execute().await?;
        }
        Ok(Committed {
            version,
            ..Default::default()
        })
    }
}
