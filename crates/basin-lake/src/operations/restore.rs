use crate::error::Context;
use crate::{LakeError, LakeTable, Result};

/// Makes an earlier version the table's current content again, as a new commit (the versions in
/// between stay in the history).
pub struct RestoreTable {
    table: LakeTable,
    version: i64,
}

impl RestoreTable {
    pub(crate) fn new(table: LakeTable, version: i64) -> Self {
        RestoreTable { table, version }
    }

    /// Runs the restore; returns the new version.
    pub async fn execute(self) -> Result<i64> {
        let current = self.table.version();
        if self.version < 0 || self.version >= current {
            return Err(LakeError::NoSuchVersion(format!(
                "cannot restore table at {} to version {}: pick a version from 0 to {} (the current version is {current})",
                self.table.location(),
                self.version,
                current - 1
            )));
        }
        let location = self.table.location().to_string();
        let (delta, _) = self
            .table
            .delta
            .clone()
            .restore()
            .with_version_to_restore(self.version as u64)
            .with_commit_properties(super::commit_properties("restore", None))
            .await
            .ctx(|| format!("restoring table at {location} to version {}", self.version))?;
        Ok(crate::table::version_of(&delta))
    }
}
