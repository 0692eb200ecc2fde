//! Sources (connectors that keep a table fed), the files a files source has seen, and the record
//! of every run.

use basin_core::{Name, TableRef};
use sqlx::any::AnyRow;

use super::{Catalog, get};
use crate::error::DbContext;
use crate::{CatalogError, Result};

/// A source: what it reads, the table it feeds, when, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    pub name: String,
    /// `files` (files under a folder or prefix matching a pattern), `postgres` or `kafka`.
    pub kind: String,
    #[serde(serialize_with = "as_text")]
    pub table: TableRef,
    /// What the kind needs (for `files`: `location`, `pattern`, `format`, `max_bad_rows`).
    pub config: serde_json::Value,
    /// Seconds between runs …
    pub every_secs: u64,
    /// … unless a cron expression (UTC) schedules them.
    pub cron: Option<String>,
    /// Tries of a failing input before it is left failed (until someone retries it).
    pub max_attempts: u64,
    /// The principal the source runs as (under its grants).
    pub owner: String,
    pub paused: bool,
    pub created_at: String,
    /// What it has read so far (a PostgreSQL source's `watermark`, a Kafka source's offsets).
    pub state: serde_json::Value,
}

impl Source {
    /// A text setting of its config (`location`, `url`, `watermark`, …).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(|v| v.as_str())
    }
}

/// A file a files source has seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceFile {
    /// Relative to the source's location.
    pub path: String,
    pub size: u64,
    pub modified_ms: i64,
    /// `loaded` or `failed`.
    pub status: String,
    pub attempts: u64,
    pub rows: u64,
    /// The table version its load made (loaded files).
    pub version: i64,
    pub error: String,
    /// When it was last tried (RFC 3339).
    pub at: String,
}

/// One run of a source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceRun {
    pub source: String,
    #[serde(serialize_with = "as_text")]
    pub table: TableRef,
    /// `schedule` or `manual`.
    pub trigger: String,
    pub started_at: String,
    pub duration_ms: u64,
    /// `ok`, `partial` (some inputs failed) or `error`.
    pub outcome: String,
    /// Inputs loaded, and inputs that failed.
    pub files: u64,
    pub failed_files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Age of the oldest input the run loaded, at its end (how far behind the source was).
    pub lag_ms: u64,
    pub error: String,
}

fn as_text<S: serde::Serializer>(t: &TableRef, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn source_from(r: &AnyRow) -> Result<Source> {
    let config: String = get(r, "config")?;
    Ok(Source {
        name: get(r, "name")?,
        kind: get(r, "kind")?,
        table: TableRef::new(
            &get::<String>(r, "hub")?,
            &get::<String>(r, "dataset")?,
            &get::<String>(r, "table_name")?,
        )?,
        config: serde_json::from_str(&config)
            .map_err(|e| CatalogError::BadValue(format!("source config: {e}")))?,
        every_secs: get::<i64>(r, "every_secs")?.max(0) as u64,
        cron: Some(get::<String>(r, "cron")?).filter(|c| !c.is_empty()),
        max_attempts: get::<i64>(r, "max_attempts")?.max(0) as u64,
        owner: get(r, "owner")?,
        paused: get::<i64>(r, "paused")? != 0,
        created_at: get(r, "created_at")?,
        state: serde_json::from_str(&get::<String>(r, "state")?)
            .map_err(|e| CatalogError::BadValue(format!("source state: {e}")))?,
    })
}

impl Catalog {
    /// Records a new source; its name must be free.
    pub async fn create_source(&self, s: &Source) -> Result<()> {
        Name::parse("source", &s.name)?;
        if self.source(&s.name).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "source",
                name: s.name.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO sources (name, kind, hub, dataset, table_name, config, every_secs, cron, max_attempts, owner, paused, created_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&s.name)
        .bind(&s.kind)
        .bind(s.table.hub.as_str())
        .bind(s.table.dataset.as_str())
        .bind(s.table.table.as_str())
        .bind(s.config.to_string())
        .bind(n(s.every_secs))
        .bind(s.cron.as_deref().unwrap_or(""))
        .bind(n(s.max_attempts))
        .bind(&s.owner)
        .bind(i64::from(s.paused))
        .bind(&s.created_at)
        .bind(s.state.to_string())
        .execute(&self.pool)
        .await
        .ctx(|| format!("creating source '{}'", s.name))?;
        Ok(())
    }

    /// Every source, by name.
    pub async fn sources(&self) -> Result<Vec<Source>> {
        let rows = sqlx::query("SELECT * FROM sources ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .ctx(|| "listing sources".into())?;
        rows.iter().map(source_from).collect()
    }

    /// One source.
    pub async fn source(&self, name: &str) -> Result<Option<Source>> {
        let row = sqlx::query("SELECT * FROM sources WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading source '{name}'"))?;
        row.as_ref().map(source_from).transpose()
    }

    /// Pauses or resumes a source.
    pub async fn set_source_paused(&self, name: &str, paused: bool) -> Result<()> {
        sqlx::query("UPDATE sources SET paused = $1 WHERE name = $2")
            .bind(i64::from(paused))
            .bind(name)
            .execute(&self.pool)
            .await
            .ctx(|| format!("pausing source '{name}'"))?;
        Ok(())
    }

    /// Records what a source has read so far.
    pub async fn set_source_state(&self, name: &str, state: &serde_json::Value) -> Result<()> {
        sqlx::query("UPDATE sources SET state = $1 WHERE name = $2")
            .bind(state.to_string())
            .bind(name)
            .execute(&self.pool)
            .await
            .ctx(|| format!("recording the state of source '{name}'"))?;
        Ok(())
    }

    /// Removes a source with the record of its files (its runs stay in the record).
    pub async fn drop_source(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM source_files WHERE source = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .ctx(|| format!("removing the files of source '{name}'"))?;
        sqlx::query("DELETE FROM sources WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .ctx(|| format!("removing source '{name}'"))?;
        Ok(())
    }

    /// The files a source has seen, by path.
    pub async fn source_files(&self, source: &str) -> Result<Vec<SourceFile>> {
        let rows = sqlx::query("SELECT * FROM source_files WHERE source = $1 ORDER BY path")
            .bind(source)
            .fetch_all(&self.pool)
            .await
            .ctx(|| format!("listing the files of source '{source}'"))?;
        rows.iter()
            .map(|r| {
                Ok(SourceFile {
                    path: get(r, "path")?,
                    size: get::<i64>(r, "size")?.max(0) as u64,
                    modified_ms: get(r, "modified_ms")?,
                    status: get(r, "status")?,
                    attempts: get::<i64>(r, "attempts")?.max(0) as u64,
                    rows: get::<i64>(r, "rows")?.max(0) as u64,
                    version: get(r, "version")?,
                    error: get(r, "error")?,
                    at: get(r, "at")?,
                })
            })
            .collect()
    }

    /// Records what became of a file of a source.
    pub async fn record_source_file(&self, source: &str, f: &SourceFile) -> Result<()> {
        sqlx::query(
            "INSERT INTO source_files (source, path, size, modified_ms, status, attempts, rows, version, error, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (source, path) DO UPDATE SET size = excluded.size, modified_ms = excluded.modified_ms,
               status = excluded.status, attempts = excluded.attempts, rows = excluded.rows,
               version = excluded.version, error = excluded.error, at = excluded.at",
        )
        .bind(source)
        .bind(&f.path)
        .bind(n(f.size))
        .bind(f.modified_ms)
        .bind(&f.status)
        .bind(n(f.attempts))
        .bind(n(f.rows))
        .bind(f.version)
        .bind(&f.error)
        .bind(&f.at)
        .execute(&self.pool)
        .await
        .ctx(|| format!("recording file '{}' of source '{source}'", f.path))?;
        Ok(())
    }

    /// Records a run of a source.
    pub async fn record_source_run(&self, r: &SourceRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO source_runs (source, hub, dataset, table_name, trigger, started_at, duration_ms, outcome, files, failed_files, rows, bytes, lag_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&r.source)
        .bind(r.table.hub.as_str())
        .bind(r.table.dataset.as_str())
        .bind(r.table.table.as_str())
        .bind(&r.trigger)
        .bind(&r.started_at)
        .bind(n(r.duration_ms))
        .bind(&r.outcome)
        .bind(n(r.files))
        .bind(n(r.failed_files))
        .bind(n(r.rows))
        .bind(n(r.bytes))
        .bind(n(r.lag_ms))
        .bind(&r.error)
        .execute(&self.pool)
        .await
        .ctx(|| format!("recording a run of source '{}'", r.source))?;
        Ok(())
    }

    /// Runs, newest first: of one source, or of all.
    pub async fn source_runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<SourceRun>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            match source {
                Some(s) => sqlx::query(
                    "SELECT * FROM source_runs WHERE source = $1 ORDER BY started_at DESC LIMIT $2",
                )
                .bind(s)
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
                None => {
                    sqlx::query("SELECT * FROM source_runs ORDER BY started_at DESC LIMIT $1")
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                }
            }
            .ctx(|| "listing source runs".into())?;
        let u = |v: i64| v.max(0) as u64;
        rows.iter()
            .map(|r| {
                Ok(SourceRun {
                    source: get(r, "source")?,
                    table: TableRef::new(
                        &get::<String>(r, "hub")?,
                        &get::<String>(r, "dataset")?,
                        &get::<String>(r, "table_name")?,
                    )?,
                    trigger: get(r, "trigger")?,
                    started_at: get(r, "started_at")?,
                    duration_ms: u(get(r, "duration_ms")?),
                    outcome: get(r, "outcome")?,
                    files: u(get(r, "files")?),
                    failed_files: u(get(r, "failed_files")?),
                    rows: u(get(r, "rows")?),
                    bytes: u(get(r, "bytes")?),
                    lag_ms: u(get(r, "lag_ms")?),
                    error: get(r, "error")?,
                })
            })
            .collect()
    }
}
