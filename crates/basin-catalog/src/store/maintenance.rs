//! Table maintenance: each table's policy (compaction and vacuum by the server's maintainer) and
//! the record of every run.

use basin_core::{Name, TableRef};

use super::{Catalog, from_json, get, to_json};
use crate::error::DbContext;
use crate::{CatalogError, Result};

/// How the maintainer looks after one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaintenancePolicy {
    /// Whether the maintainer compacts and vacuums the table by itself.
    pub auto: bool,
    /// Compact once the table has at least this many small files (under half the target size).
    pub min_files: u64,
    /// Size compacted files are packed to.
    pub target_file_bytes: u64,
    /// Versions newer than this stay readable by time travel; older files are vacuumed.
    pub retention_hours: u64,
    /// Columns compaction Z-orders the files by (none: bin-packing only).
    pub zorder: Vec<String>,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        MaintenancePolicy {
            auto: true,
            min_files: 16,
            target_file_bytes: 128 << 20,
            retention_hours: 7 * 24,
            zorder: Vec::new(),
        }
    }
}

impl MaintenancePolicy {
    /// How long versions stay readable before a vacuum may remove their files.
    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retention_hours.saturating_mul(3600))
    }
}

/// One compaction or vacuum of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRun {
    pub table: TableRef,
    /// `optimize` or `vacuum`.
    pub operation: String,
    /// `manual` (a user's command) or `auto` (the maintainer).
    pub trigger: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    /// `ok` or `error`.
    pub outcome: String,
    /// The table's version after it.
    pub version: i64,
    pub files_before: u64,
    pub files_after: u64,
    pub bytes_rewritten: u64,
    pub files_deleted: u64,
    /// Why it failed (empty when it did not).
    pub error: String,
}

/// A policy from its stored row.
fn policy(
    auto: i64,
    min_files: i64,
    target_file_bytes: i64,
    retention_hours: i64,
    zorder: &str,
) -> Result<MaintenancePolicy> {
    Ok(MaintenancePolicy {
        auto: auto != 0,
        min_files: min_files.max(0) as u64,
        target_file_bytes: target_file_bytes.max(0) as u64,
        retention_hours: retention_hours.max(0) as u64,
        zorder: from_json(zorder)?,
    })
}

impl Catalog {
    /// The maintenance policy of a table (the defaults until one is set).
    pub async fn maintenance_policy(&self, t: &TableRef) -> Result<MaintenancePolicy> {
        let row: Option<(i64, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT auto, min_files, target_file_bytes, retention_hours, zorder FROM table_maintenance WHERE hub = $1 AND dataset = $2 AND table_name = $3",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .fetch_optional(&self.pool)
        .await
        .ctx(|| format!("reading the maintenance policy of '{t}'"))?;
        match row {
            None => Ok(MaintenancePolicy::default()),
            Some((auto, min_files, target, retention, zorder)) => {
                policy(auto, min_files, target, retention, &zorder)
            }
        }
    }

    /// The policies set so far, by table (the other tables have the defaults).
    pub async fn maintenance_policies(
        &self,
    ) -> Result<std::collections::HashMap<TableRef, MaintenancePolicy>> {
        let rows: Vec<(String, String, String, i64, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT hub, dataset, table_name, auto, min_files, target_file_bytes, retention_hours, zorder FROM table_maintenance",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "reading the maintenance policies".into())?;
        rows.into_iter()
            .map(|(h, d, t, auto, min_files, target, retention, zorder)| {
                let p = policy(auto, min_files, target, retention, &zorder)?;
                Ok((TableRef::new(&h, &d, &t)?, p))
            })
            .collect()
    }

    /// Sets the maintenance policy of a table.
    pub async fn set_maintenance_policy(&self, t: &TableRef, p: &MaintenancePolicy) -> Result<()> {
        self.require_table(t).await?;
        for c in &p.zorder {
            Name::parse("column", c)?;
        }
        let big = |what: &str, v: u64| {
            i64::try_from(v).map_err(|_| CatalogError::BadValue(format!("{what} {v} is too large")))
        };
        if p.min_files < 2 || p.target_file_bytes < (1 << 20) {
            return Err(CatalogError::BadValue(
                "a maintenance policy needs min_files of at least 2 and a target file size of at least 1 MiB".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO table_maintenance (hub, dataset, table_name, auto, min_files, target_file_bytes, retention_hours, zorder)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (hub, dataset, table_name) DO UPDATE SET auto = excluded.auto, min_files = excluded.min_files,
               target_file_bytes = excluded.target_file_bytes, retention_hours = excluded.retention_hours, zorder = excluded.zorder",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .bind(i64::from(p.auto))
        .bind(big("min_files", p.min_files)?)
        .bind(big("target_file_bytes", p.target_file_bytes)?)
        .bind(big("retention_hours", p.retention_hours)?)
        .bind(to_json(&p.zorder))
        .execute(&self.pool)
        .await
        .ctx(|| format!("setting the maintenance policy of '{t}'"))?;
        Ok(())
    }

    /// Records a maintenance run.
    pub async fn record_maintenance_run(&self, r: &MaintenanceRun) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO maintenance_runs (hub, dataset, table_name, operation, trigger, started_at, duration_ms, outcome, version, files_before, files_after, bytes_rewritten, files_deleted, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(r.table.hub.as_str())
        .bind(r.table.dataset.as_str())
        .bind(r.table.table.as_str())
        .bind(&r.operation)
        .bind(&r.trigger)
        .bind(&r.started_at)
        .bind(n(r.duration_ms))
        .bind(&r.outcome)
        .bind(r.version)
        .bind(n(r.files_before))
        .bind(n(r.files_after))
        .bind(n(r.bytes_rewritten))
        .bind(n(r.files_deleted))
        .bind(&r.error)
        .execute(&self.pool)
        .await
        .ctx(|| format!("recording the {} of '{}'", r.operation, r.table))?;
        Ok(())
    }

    /// When each table last had a successful run of `operation` (RFC 3339).
    pub async fn last_maintenance_runs(
        &self,
        operation: &str,
    ) -> Result<std::collections::HashMap<TableRef, String>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT hub, dataset, table_name, MAX(started_at) FROM maintenance_runs WHERE operation = $1 AND outcome = 'ok' GROUP BY hub, dataset, table_name",
        )
        .bind(operation)
        .fetch_all(&self.pool)
        .await
        .ctx(|| format!("reading the last {operation} runs"))?;
        rows.into_iter()
            .map(|(h, d, t, at)| Ok((TableRef::new(&h, &d, &t)?, at)))
            .collect()
    }

    /// Maintenance runs, newest first: of one table, or of every table.
    pub async fn maintenance_runs(
        &self,
        table: Option<&TableRef>,
        limit: usize,
    ) -> Result<Vec<MaintenanceRun>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match table {
            Some(t) => sqlx::query(
                "SELECT * FROM maintenance_runs WHERE hub = $1 AND dataset = $2 AND table_name = $3 ORDER BY started_at DESC LIMIT $4",
            )
            .bind(t.hub.as_str())
            .bind(t.dataset.as_str())
            .bind(t.table.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query("SELECT * FROM maintenance_runs ORDER BY started_at DESC LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
        }
        .ctx(|| "listing maintenance runs".into())?;
        let n = |v: i64| v.max(0) as u64;
        rows.iter()
            .map(|r| {
                Ok(MaintenanceRun {
                    table: TableRef::new(
                        &get::<String>(r, "hub")?,
                        &get::<String>(r, "dataset")?,
                        &get::<String>(r, "table_name")?,
                    )?,
                    operation: get(r, "operation")?,
                    trigger: get(r, "trigger")?,
                    started_at: get(r, "started_at")?,
                    duration_ms: n(get(r, "duration_ms")?),
                    outcome: get(r, "outcome")?,
                    version: get(r, "version")?,
                    files_before: n(get(r, "files_before")?),
                    files_after: n(get(r, "files_after")?),
                    bytes_rewritten: n(get(r, "bytes_rewritten")?),
                    files_deleted: n(get(r, "files_deleted")?),
                    error: get(r, "error")?,
                })
            })
            .collect()
    }
}
