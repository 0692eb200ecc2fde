//! Compaction: the table's small files bin-packed into files of about a target size, optionally
//! Z-ordered by columns, as one commit that changes no row (time travel still reads the old
//! files until a vacuum removes them).

use std::collections::HashMap;
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
        // Z-order rewrites each partition as one bin, split into files of the target size.
        let bin_size = if self.zorder.is_empty() {
            NonZeroU64::new(balanced_bin_size(&self.table, target.get())?).unwrap_or(target)
        } else {
            target
        };
        let mut op = self
            .table
            .delta
            .clone()
            .optimize()
            .with_target_size(bin_size)
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

/// The size to fill compaction bins to, at most `target`. delta-rs fills each bin up to the
/// target in file order and compacts one bin per core, so 157 MB of small files with a 128 MB
/// target made a 134 MB bin and a 23 MB one: one core worked while the other waited. Instead the
/// candidates (files up to the target) of each partition are split into as few bins as the
/// target allows, of equal size; the largest partition's bin size is used for all.
fn balanced_bin_size(table: &LakeTable, target: u64) -> Result<u64> {
    let state = table
        .delta
        .snapshot()
        .ctx(|| format!("reading the files of {}", table.location()))?;
    // Per partition: candidate bytes and the largest candidate.
    let mut partitions: HashMap<Vec<(String, Option<String>)>, (u64, u64)> = HashMap::new();
    for file in state.log_data().iter() {
        let size = file.size().max(0) as u64;
        if size > target {
            continue;
        }
        let mut key: Vec<_> = file.partition_values_map().into_iter().collect();
        key.sort();
        let (bytes, largest) = partitions.entry(key).or_default();
        *bytes += size;
        *largest = (*largest).max(size);
    }
    Ok(partitions
        .into_values()
        .map(|(bytes, largest)| {
            let bins = bytes.div_ceil(target).max(1);
            // One file of slack: a greedy fill then never spills into an extra, tiny bin.
            (bytes.div_ceil(bins) + largest).min(target)
        })
        .max()
        .unwrap_or(target))
}
