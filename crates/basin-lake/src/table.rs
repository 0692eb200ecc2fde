use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;
use serde::Serialize;

use crate::error::Context;
use crate::operations::{
    add_columns::AddColumns, delete::DeleteRows, drop::DropTable, merge::MergeTable,
    restore::RestoreTable, update::UpdateRows, write::WriteTable,
};
use crate::{LakeError, Result, location_url};

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    /// A version number (the first commit is version 0).
    Version(i64),
    /// The latest version committed at or before this time.
    Timestamp(DateTime<Utc>),
}

/// The columns [`LakeTable::changes`] adds to a table's own.
pub const CHANGE_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

/// One entry of a table's history.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub version: i64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    /// Operation parameters and Basin's own commit metadata (such as `basin.load_id`), as JSON.
    pub parameters: String,
}

/// A Delta table, opened at one version.
#[derive(Debug, Clone)]
pub struct LakeTable {
    pub(crate) delta: DeltaTable,
    location: String,
}

/// The version a loaded Delta table is at (-1 before its first commit).
pub(crate) fn version_of(delta: &DeltaTable) -> i64 {
    delta.version().map_or(-1, |v| v as i64)
}

/// Commit-metadata key under which a load's id is recorded.
pub(crate) const LOAD_ID_KEY: &str = "basin.load_id";

/// Commit-metadata key of a commit's mark (see [`crate::operations::marked`]).
pub(crate) const MARK_KEY: &str = "basin.commit_mark";

/// Application id of the Delta `txn` action that makes a load idempotent.
pub(crate) fn load_app_id(load_id: &str) -> String {
    format!("basin-load:{load_id}")
}

impl LakeTable {
    /// Opens the latest version of the table at `location`.
    pub async fn open(location: &str) -> Result<Self> {
        if let Some(delta) = crate::latest::refreshed(location).await {
            return Ok(LakeTable::from_delta(delta, location));
        }
        let table = Self::open_with(location, None).await?;
        crate::latest::remember(location, &table.delta).await;
        Ok(table)
    }

    /// Opens the table at `location` as it was at `at`.
    pub async fn open_at(location: &str, at: TimeTravel) -> Result<Self> {
        if let TimeTravel::Version(v) = at {
            // Checked first: asked for a version far beyond the newest, delta-rs searches for
            // minutes (found by the `sql` fuzz target).
            let newest = Self::open(location).await?.version();
            if v > newest {
                return Err(LakeError::NoSuchVersion(format!(
                    "table at {location} has no version {v}: its newest version is {newest}"
                )));
            }
        }
        Self::open_with(location, Some(at)).await
    }

    async fn open_with(location: &str, at: Option<TimeTravel>) -> Result<Self> {
        let url = location_url(location)?;
        let mut builder =
            DeltaTableBuilder::from_url(url).ctx(|| format!("opening table at {location}"))?;
        builder = match at {
            None => builder,
            Some(TimeTravel::Version(v)) => {
                builder.with_version(u64::try_from(v).map_err(|_| {
                    LakeError::NoSuchVersion(format!(
                        "table at {location} has no version {v}: versions start at 0"
                    ))
                })?)
            }
            Some(TimeTravel::Timestamp(ts)) => builder.with_timestamp(ts),
        };
        let delta = builder.load().await.map_err(|e| match at {
            Some(TimeTravel::Version(v)) => LakeError::NoSuchVersion(format!(
                "table at {location} has no version {v}: {e}; see its history for the versions that exist"
            )),
            Some(TimeTravel::Timestamp(ts)) => LakeError::NoSuchVersion(format!(
                "table at {location} has no version at or before {}: {e}; see its history for commit times",
                ts.to_rfc3339()
            )),
            None => LakeError::Delta { action: format!("opening table at {location}"), source: e },
        })?;
        Ok(LakeTable {
            delta,
            location: location.to_string(),
        })
    }

    pub(crate) fn from_delta(delta: DeltaTable, location: &str) -> Self {
        LakeTable {
            delta,
            location: location.to_string(),
        }
    }

    /// Where the table lives.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The version this handle reads.
    pub fn version(&self) -> i64 {
        version_of(&self.delta)
    }

    /// The Delta table's id: a table dropped and created again under the same name has a new one.
    pub fn table_id(&self) -> Result<String> {
        let snapshot = self
            .delta
            .snapshot()
            .ctx(|| format!("reading {}", self.location))?;
        Ok(snapshot.metadata().id().to_string())
    }

    /// The table's schema at this version.
    pub fn schema(&self) -> Result<SchemaRef> {
        Ok(self
            .delta
            .snapshot()
            .ctx(|| format!("reading the schema of {}", self.location))?
            .snapshot()
            .arrow_schema())
    }

    /// The table's partition columns.
    pub fn partition_columns(&self) -> Result<Vec<String>> {
        Ok(self
            .delta
            .snapshot()
            .ctx(|| format!("reading the metadata of {}", self.location))?
            .metadata()
            .partition_columns()
            .to_vec())
    }

    /// Number of data files at this version.
    pub fn file_count(&self) -> Result<usize> {
        Ok(self
            .delta
            .get_file_uris()
            .ctx(|| format!("listing the files of {}", self.location))?
            .count())
    }

    /// Number of data files at this version smaller than `bytes` (what compaction would pack).
    pub fn small_file_count(&self, bytes: u64) -> Result<usize> {
        let state = self
            .delta
            .snapshot()
            .ctx(|| format!("reading the files of {}", self.location))?;
        Ok(state
            .log_data()
            .iter()
            .filter(|f| (f.size().max(0) as u64) < bytes)
            .count())
    }

    /// Bytes of the data files at this version, and their rows when every file's statistics
    /// count them (`None` otherwise).
    pub fn size(&self) -> Result<(u64, Option<u64>)> {
        let state = self
            .delta
            .snapshot()
            .ctx(|| format!("reading the files of {}", self.location))?;
        let (mut bytes, mut rows) = (0u64, Some(0u64));
        for file in state.log_data().iter() {
            bytes += file.size().max(0) as u64;
            rows = rows.zip(file.num_records()).map(|(r, n)| r + n as u64);
        }
        Ok((bytes, rows))
    }

    /// A DataFusion table provider that reads this version.
    pub async fn provider(&self) -> Result<Arc<dyn TableProvider>> {
        let scan = crate::scan::LakeScan::try_new(&self.delta, self.schema()?).map_err(|e| {
            LakeError::DataFusion {
                action: format!("reading table at {}", self.location),
                source: e,
            }
        })?;
        if let Some(scan) = scan {
            return Ok(Arc::new(scan));
        }
        self.delta
            .table_provider()
            .await
            .map_err(|e| LakeError::DataFusion {
                action: format!("reading table at {}", self.location),
                source: e,
            })
    }

    /// Commits, newest first (all of them when `limit` is `None`).
    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<Commit>> {
        let latest = self
            .delta
            .get_latest_version()
            .await
            .ctx(|| format!("reading the history of {}", self.location))?;
        let infos: Vec<_> = self
            .delta
            .history(limit)
            .try_collect()
            .await
            .ctx(|| format!("reading the history of {}", self.location))?;
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| {
                let mut params = serde_json::Map::new();
                for (k, v) in info.operation_parameters.unwrap_or_default() {
                    params.insert(k, v);
                }
                for (k, v) in info.info {
                    if k.starts_with("basin.") {
                        params.insert(k, v);
                    }
                }
                Commit {
                    version: latest as i64 - i as i64,
                    timestamp: info.timestamp.and_then(DateTime::from_timestamp_millis),
                    operation: info.operation.unwrap_or_default(),
                    parameters: serde_json::Value::Object(params).to_string(),
                }
            })
            .collect())
    }

    /// The commit after version `since` marked `mark` (see [`crate::operations::marked`]), if the
    /// table at `location` has one: its version and its `operationMetrics`.
    pub async fn find_marked(
        location: &str,
        mark: &str,
        since: i64,
    ) -> Result<Option<(i64, serde_json::Value)>> {
        let table = LakeTable::open(location).await?;
        let newer = table.version() - since;
        if newer <= 0 {
            return Ok(None);
        }
        let infos: Vec<_> = table
            .delta
            .history(Some(newer as usize))
            .try_collect()
            .await
            .ctx(|| format!("reading the history of {location}"))?;
        // Newest first.
        Ok(infos.into_iter().enumerate().find_map(|(i, mut info)| {
            (info.info.get(MARK_KEY).and_then(|v| v.as_str()) == Some(mark)).then(|| {
                let metrics = info.info.remove("operationMetrics").unwrap_or_default();
                (table.version() - i as i64, metrics)
            })
        }))
    }

    /// Whether the load `load_id` has already been committed to this table.
    pub async fn has_load(&self, load_id: &str) -> Result<bool> {
        Ok(self
            .transaction_version(&load_app_id(load_id))
            .await?
            .is_some())
    }

    /// The version of the last Delta `txn` action of `app_id` in this version of the table
    /// (see [`crate::WriteTable::with_transaction`]); it reads the log, so it is for recovery
    /// and checks, not for every query.
    pub async fn transaction_version(&self, app_id: &str) -> Result<Option<i64>> {
        let state = self
            .delta
            .snapshot()
            .ctx(|| format!("reading {}", self.location))?;
        state
            .transaction_version(self.delta.log_store().as_ref(), app_id)
            .await
            .ctx(|| format!("looking up transaction '{app_id}' in {}", self.location))
    }

    /// The rows changed by versions `from..=to` (Delta change data feed): the table's columns
    /// plus `_change_type` (`insert`, `delete`, `update_preimage`, `update_postimage`),
    /// `_commit_version` and `_commit_timestamp`. A version that recorded no changed rows
    /// (written before the feed was on, or by a rewrite) shows its removed files' rows as
    /// deletes and its added files' rows as inserts; compactions (no data change) show nothing.
    pub async fn changes(&self, from: i64, to: i64) -> Result<Arc<dyn TableProvider>> {
        if from > to || from < 1 || to > self.version() {
            return Err(LakeError::InvalidInput(format!(
                "changes of versions {from} to {to} of {}: they must be a range within 1 to {}",
                self.location,
                self.version()
            )));
        }
        let builder = self
            .delta
            .clone()
            .scan_cdf()
            .with_starting_version(from as u64)
            .with_ending_version(to as u64);
        let provider = deltalake::delta_datafusion::DeltaCdfTableProvider::try_new(builder)
            .ctx(|| format!("reading the changes of {}", self.location))?;
        Ok(Arc::new(crate::changes::Changes(Arc::new(provider))))
    }

    /// Starts a write (append by default) of `input` into this table.
    pub fn write(&self, input: datafusion::execution::SendableRecordBatchStream) -> WriteTable {
        WriteTable::new(self.clone(), input)
    }

    /// Starts a merge of `source` into this table on `predicate` (SQL, with the aliases
    /// `target` and `source`).
    pub fn merge(
        &self,
        source: datafusion::prelude::DataFrame,
        predicate: impl Into<String>,
    ) -> MergeTable {
        MergeTable::new(self.clone(), source, predicate.into())
    }

    /// Starts removing every file of the table (every version): `DROP TABLE`.
    pub fn drop_files(self) -> DropTable {
        DropTable::new(self)
    }

    /// Starts a delete.
    pub fn delete(&self) -> DeleteRows {
        DeleteRows::new(self.clone())
    }

    /// Starts an update.
    pub fn update(&self) -> UpdateRows {
        UpdateRows::new(self.clone())
    }

    /// Starts adding columns.
    pub fn add_columns(&self) -> AddColumns {
        AddColumns::new(self.clone())
    }

    /// Starts a restore to an earlier version.
    pub fn restore(&self, version: i64) -> RestoreTable {
        RestoreTable::new(self.clone(), version)
    }

    /// Starts a compaction of the table's files.
    pub fn optimize(&self) -> crate::OptimizeTable {
        crate::OptimizeTable::new(self.clone())
    }

    /// Starts a vacuum of the files and log no retained version needs.
    pub fn vacuum(&self) -> crate::VacuumTable {
        crate::VacuumTable::new(self.clone())
    }
}
