//! Removes a table's files: its data and its log, so every version is gone.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::error::Context;
use deltalake::DeltaTableError;

use crate::{LakeTable, Result};

/// Deletes every file of a table (data files and the Delta log). There is no commit to undo:
/// the caller removes the table from the catalog first.
pub struct DropTable {
    table: LakeTable,
}

impl DropTable {
    pub(crate) fn new(table: LakeTable) -> Self {
        DropTable { table }
    }

    /// Deletes the files; returns how many were deleted.
    pub async fn execute(self) -> Result<u64> {
        let location = self.table.location().to_string();
        crate::latest::forget(&location);
        let store = self.table.delta.object_store();
        let paths: Vec<_> = store
            .list(None)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(DeltaTableError::from)
            .ctx(|| format!("listing the files of {location}"))?;
        for path in &paths {
            store
                .delete(path)
                .await
                .map_err(DeltaTableError::from)
                .ctx(|| format!("deleting {path} of {location}"))?;
        }
        let url = crate::location_url(&location)?;
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            // Empty directories are left behind by object stores; a missing one is fine.
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(paths.len() as u64)
    }
}
