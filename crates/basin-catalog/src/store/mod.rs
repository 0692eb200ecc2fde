//! The metadata store: the [`Catalog`] handle, connecting (SQLite or PostgreSQL) and migrating,
//! and the helpers every resource shares. Each resource has its own file, an `impl Catalog`
//! block: `hubs.rs`, `datasets.rs`, `tables.rs` (with their columns); the access model's
//! resources are in `crate::access::store`.

mod backup;
mod datasets;
mod descriptions;
mod hubs;
mod leases;
mod maintenance;
mod models;
mod paths;
mod sources;
mod streams;
mod tables;

pub use descriptions::MAX_DESCRIPTION_CHARS;
pub use leases::Lease;
pub use maintenance::{MaintenancePolicy, MaintenanceRun};
pub use models::{Model, ModelRun};
pub use sources::{Source, SourceFile, SourceRun};
pub use streams::{StreamSettings, UnknownFields};

use std::path::Path;

use basin_core::{Name, closest};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::DbContext;
use crate::{CatalogError, Result, migrate};

/// Handle on the metadata store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    pub(crate) access: crate::access::AccessCache,
    /// Audit rows on their way to the log (written in groups).
    pub(crate) audit_queue: std::sync::Arc<crate::access::AuditQueue>,
    /// The data directory that storage paths inside it are stored relative to (see `paths`).
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// SQLite (a file) rather than PostgreSQL.
    pub(crate) sqlite: bool,
    /// The URL connected to (for `pg_dump`); its `Debug` hides the password.
    pub(crate) url: backup::CatalogUrl,
}

impl Catalog {
    /// Opens (and migrates) the catalog at `url`: `sqlite://path` or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !(sqlite || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(CatalogError::BadValue(format!(
                "unsupported catalog URL '{}': use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                redact(url)
            )));
        }
        // No idle timeout and no maximum lifetime: with either, sqlx 0.9.0 runs a maintenance
        // task whose loop (`for _ in 0..num_idle()`, no await) can read the idle count while a
        // release and an acquire race it below zero, and then spins for ever on a worker thread:
        // a `basin ingest` hung at exit with one core at 100 %.
        let mut options = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None);
        if sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(url)
            .await
            .ctx(|| format!("connecting to {}", redact(url)))?;
        migrate::run(&pool).await?;
        Ok(Catalog {
            pool,
            access: Default::default(),
            audit_queue: Default::default(),
            data_dir: None,
            sqlite,
            url: backup::CatalogUrl(url.to_string()),
        })
    }

    /// Opens (creating if needed) the SQLite catalog file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// The catalog's versions: (metadata, access). The metadata version changes with every
    /// change of the names, descriptions, tags, domains and owners of hubs, datasets, tables and
    /// columns, so that what is built from them (the search index) can be cached between
    /// changes; the access version with every change of what principals may see.
    pub async fn versions(&self) -> Result<(i64, i64)> {
        sqlx::query_as(
            "SELECT c.version, a.version FROM catalog_version c, access_version a WHERE c.id = 1 AND a.id = 1",
        )
        .fetch_one(&self.pool)
        .await
        .ctx(|| "reading the catalog version".into())
    }

    /// Starts a transaction on the catalog.
    pub(crate) async fn begin(&self) -> Result<Tx<'_>> {
        self.pool
            .begin()
            .await
            .ctx(|| "starting a catalog transaction".into())
    }
}

/// Bumps the metadata version (see [`Catalog::versions`]).
pub(crate) async fn metadata_changed<'e, E>(executor: E) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
        .execute(executor)
        .await
        .ctx(|| "updating the catalog version".into())?;
    Ok(())
}

/// A catalog transaction.
pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column)
        .ctx(|| format!("decoding catalog column '{column}'"))
}

/// Tags are `key` or `key=value`, where the key follows the identifier rule.
pub(crate) fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = tag.split_once('=').map_or(tag.as_str(), |(k, _)| k);
        Name::parse("tag", key)?;
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    Ok(out)
}

pub(crate) fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serializes")
}

pub(crate) fn from_json(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s)
        .map_err(|e| CatalogError::BadValue(format!("corrupt list in catalog: {e}")))
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn not_found<'a>(
    kind: &'static str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> CatalogError {
    CatalogError::NotFound {
        kind,
        name: name.to_string(),
        suggestion: closest(name, candidates).map(str::to_string),
    }
}

pub(crate) fn unique_violation(e: sqlx::Error, kind: &'static str, name: &str) -> CatalogError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => CatalogError::AlreadyExists {
            kind,
            name: name.to_string(),
        },
        _ => CatalogError::Database {
            action: format!("creating {kind} '{name}'"),
            source: e,
        },
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
