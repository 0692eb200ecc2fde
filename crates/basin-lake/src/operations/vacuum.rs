//! Vacuum: files that no version within the retention needs are removed from storage, and so is
//! the log before it (after a checkpoint), so that no old copy of a value outlives the
//! retention: neither a file rewritten by compaction or encryption nor the statistics of the log.

use chrono::{Duration as Age, Utc};
use deltalake::checkpoints::{cleanup_expired_logs_for, create_checkpoint};
use deltalake::operations::vacuum::VacuumMode;

use super::optimize::Maintenance;
use crate::error::Context;
use crate::{LakeError, LakeTable, Result};

/// Retention when none is given: time travel reaches back this far.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Below this retention only files the log removed are deleted, not unreferenced ones, which
/// could belong to a write still in progress.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes what the retained versions of a table do not need.
pub struct VacuumTable {
    table: LakeTable,
    retention: std::time::Duration,
}

impl VacuumTable {
    pub(crate) fn new(table: LakeTable) -> Self {
        VacuumTable {
            table,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Versions newer than this stay readable by time travel.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Runs the vacuum.
    pub async fn execute(self) -> Result<Maintenance> {
        let location = self.table.location().to_string();
        let retention = Age::from_std(self.retention).map_err(|_| {
            LakeError::InvalidInput(format!("a retention of {:?} is too long", self.retention))
        })?;
        let files = self.table.file_count()? as u64;
        let mode = if self.retention >= ORPHAN_AGE {
            VacuumMode::Full
        } else {
            VacuumMode::Lite
        };
        let (delta, metrics) = self
            .table
            .delta
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(mode)
            .with_commit_properties(super::commit_properties("vacuum", None))
            .await
            .ctx(|| format!("vacuuming table at {location}"))?;
        // A checkpoint of the current version, then the log before it and before the retention.
        create_checkpoint(&delta, None)
            .await
            .ctx(|| format!("writing a checkpoint of table at {location}"))?;
        let version = delta.version().unwrap_or(0);
        let cutoff = (Utc::now() - retention).timestamp_millis();
        cleanup_expired_logs_for(version, delta.log_store().as_ref(), cutoff, None)
            .await
            .ctx(|| format!("removing the old log of table at {location}"))?;
        Ok(Maintenance {
            version: version as i64,
            files_before: files,
            files_after: files,
            bytes_rewritten: 0,
            files_deleted: metrics.files_deleted.len() as u64,
        })
    }
}
