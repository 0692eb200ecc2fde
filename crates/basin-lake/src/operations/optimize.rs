//! Compaction: the table's small files bin-packed into files of about a target size, optionally
//! Z-ordered by columns, as one commit that changes no row (time travel still reads the old
//! files until a vacuum removes them).

use std::num::NonZeroU64;

use deltalake::operations::optimize::OptimizeType;

use crate::error::Context;
use crate::{LakeError, LakeTable, Result};

/// Target size of a compacted file when none is given: large enough for fast scans, small
/// enough to prune.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 << 20;

/// What a maintenance operation did to a table's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// The table's version after it (the current one when nothing changed).
    pub version: i64,
    /// Data files of the current version before and after.
    pub files_before: u64,
    pub files_after: u64,
    /// Bytes read and written again (compaction).
    pub bytes_rewritten: u64,
    /// Files removed from storage (vacuum).
    pub files_deleted: u64,
}

/// Compacts a table's files.
pub struct OptimizeTable {
    table: LakeTable,
    target_size: u64,
    zorder: Vec<String>,
}

impl OptimizeTable {
    pub(crate) fn new(table: LakeTable) -> Self {
        OptimizeTable {
            table,
            target_size: DEFAULT_TARGET_FILE_BYTES,
            zorder: Vec::new(),
        }
    }

    /// Files are packed up to about this many bytes.
    pub fn with_target_size(mut self, bytes: u64) -> Self {
        self.target_size = bytes;
        self
    }

    /// Rewrites every file, ordered along a Z-order curve of these columns, so that filters on
    /// them skip files.
    pub fn with_zorder(mut self, columns: Vec<String>) -> Self {
        self.zorder = columns;
        self
    }

    /// Runs the compaction (no commit when there is nothing to compact).
    pub async fn execute(self) -> Result<Maintenance> {
        let location = self.table.location().to_string();
        let target = NonZeroU64::new(self.target_size).ok_or_else(|| {
            LakeError::InvalidInput("the target file size must be more than 0 bytes".into())
        })?;
        let schema = self.table.schema()?;
        let partitions = self.table.partition_columns()?;
        for c in &self.zorder {
            if schema.field_with_name(c).is_err() {
                return Err(LakeError::UnknownColumn {
                    column: c.clone(),
                    context: format!("table at {location} (Z-order columns)"),
                    suggestion: basin_core::closest(
                        c,
                        schema.fields().iter().map(|f| f.name().as_str()),
                    )
                    .map(str::to_string),
                });
            }
            if partitions.contains(c) {
                return Err(LakeError::InvalidInput(format!(
                    "column '{c}' is a partition column: files are already split by it; Z-order by other columns"
                )));
            }
        }
        let files_before = self.table.file_count()? as u64;
        let mut op = self
            .table
            .delta
            .clone()
            .optimize()
            .with_target_size(target)
            .with_commit_properties(super::commit_properties("optimize", None));
        if !self.zorder.is_empty() {
            op = op.with_type(OptimizeType::ZOrder(self.zorder.clone()));
        }
        let (delta, metrics) = op
            .await
            .ctx(|| format!("compacting the files of table at {location}"))?;
        let after = LakeTable::from_delta(delta, &location);
        Ok(Maintenance {
            version: after.version(),
            files_before,
            files_after: after.file_count()? as u64,
            bytes_rewritten: metrics.files_removed.total_size.max(0) as u64,
            files_deleted: 0,
        })
    }
}
