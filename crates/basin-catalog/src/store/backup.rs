//! A consistent copy of the catalog, taken while it is in use, and its restore: SQLite's
//! `VACUUM INTO`, or PostgreSQL's `pg_dump` / `pg_restore`.

use std::path::{Path, PathBuf};

use crate::error::DbContext;
use crate::model::Table;
use crate::{Catalog, CatalogError, Result};

/// A catalog URL, shown without its password.
#[derive(Clone)]
pub(crate) struct CatalogUrl(pub(crate) String);

impl std::fmt::Debug for CatalogUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::redact(&self.0))
    }
}

/// Environment variable naming the directory of PostgreSQL's client tools (`pg_dump`,
/// `pg_restore`); by default they are looked for on `PATH`, then under `/usr/lib/postgresql`.
pub const PG_BIN_ENV: &str = "BASIN_PG_BIN";

impl Catalog {
    /// Whether the catalog is a SQLite file (else PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Writes a consistent copy of the catalog to the new file `path`, while writers go on, and
    /// returns the tables it holds. SQLite: `VACUUM INTO` (one read transaction). PostgreSQL:
    /// `pg_dump --format=custom` of a snapshot exported from a repeatable-read transaction in
    /// which the tables are listed too, so both are the catalog at one point.
    pub async fn backup_into(&self, path: &Path) -> Result<Vec<Table>> {
        let target = path.to_str().ok_or_else(|| {
            CatalogError::BadValue(format!("backup path {} is not UTF-8", path.display()))
        })?;
        if self.sqlite {
            sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(&self.pool)
                .await
                .ctx(|| format!("copying the catalog to {}", path.display()))?;
            let copy = Catalog::open_sqlite(path).await?;
            let copy = match &self.data_dir {
                Some(dir) => copy.with_data_dir(dir),
                None => copy,
            };
            let tables = copy.tables(None, None).await;
            copy.pool.close().await;
            return tables;
        }
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .ctx(|| "starting the backup's snapshot".into())?;
        let (snapshot,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await
            .ctx(|| "exporting the backup's snapshot".into())?;
        let tables = self.tables_in(&mut tx).await?;
        let snapshot_arg = format!("--snapshot={snapshot}");
        let file_arg = format!("--file={target}");
        pg_tool(
            "pg_dump",
            &self.url.0,
            &[
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                &snapshot_arg,
                &file_arg,
            ],
        )
        .await?;
        tx.rollback()
            .await
            .ctx(|| "ending the backup's snapshot".into())?;
        Ok(tables)
    }

    /// Restores a `pg_dump` of a catalog (see [`Catalog::backup_into`]) into the PostgreSQL
    /// database at `url`, which must be empty; in one transaction (all or nothing).
    pub async fn restore_postgres(url: &str, dump: &Path) -> Result<()> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url)
            .await
            .ctx(|| format!("connecting to {}", super::redact(url)))?;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&pool)
        .await
        .ctx(|| "looking at the target catalog database".into())?;
        pool.close().await;
        if n > 0 {
            return Err(CatalogError::BadValue(format!(
                "the catalog database {} is not empty ({n} tables): restore into a new, empty database",
                super::redact(url)
            )));
        }
        let dump = dump.to_str().ok_or_else(|| {
            CatalogError::BadValue(format!("dump path {} is not UTF-8", dump.display()))
        })?;
        pg_tool(
            "pg_restore",
            url,
            &[
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                dump,
            ],
        )
        .await
    }

    /// Undoes [`Catalog::restore_postgres`] after a later step of a restore failed: the
    /// database was empty before, so its schema `public` is emptied again.
    pub async fn clear_restored_postgres(url: &str) -> Result<()> {
        let pool = sqlx::AnyPool::connect(url)
            .await
            .ctx(|| format!("connecting to {}", super::redact(url)))?;
        for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
            sqlx::query(sql)
                .execute(&pool)
                .await
                .ctx(|| "emptying the restored catalog".into())?;
        }
        pool.close().await;
        Ok(())
    }

    /// Closes the catalog's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs a PostgreSQL client tool on the database at `url` (its password in `PGPASSWORD`, not on
/// the command line).
async fn pg_tool(tool: &str, url: &str, args: &[&str]) -> Result<()> {
    let bin = pg_bin(tool)?;
    let mut parsed =
        url::Url::parse(url).map_err(|e| CatalogError::BadValue(format!("catalog URL: {e}")))?;
    let password = parsed.password().map(str::to_string);
    let _ = parsed.set_password(None);
    let mut command = tokio::process::Command::new(&bin);
    command.arg(format!("--dbname={parsed}")).args(args);
    if let Some(p) = password {
        command.env("PGPASSWORD", p);
    }
    let out = command
        .output()
        .await
        .map_err(|e| CatalogError::BadValue(format!("cannot run {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(CatalogError::BadValue(format!(
            "{tool} failed on {}: {}",
            super::redact(url),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `tool` from `BASIN_PG_BIN`, `PATH`, or the newest `/usr/lib/postgresql/*/bin`.
fn pg_bin(tool: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        let path = PathBuf::from(dir).join(tool);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(CatalogError::BadValue(format!(
                "{tool} not found in {} ({PG_BIN_ENV})",
                path.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    on_path
        .into_iter()
        .chain(versions.into_iter().rev())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CatalogError::BadValue(format!(
                "{tool} not found: a PostgreSQL catalog is backed up and restored with PostgreSQL's client tools; install them (the server's major version or newer) or set {PG_BIN_ENV} to their directory"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_copy_is_a_catalog_with_the_same_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let live = Catalog::open_sqlite(&tmp.path().join("catalog.db"))
            .await
            .unwrap();
        live.ensure_admin("admin").await.unwrap();
        let copy_path = tmp.path().join("copy.db");
        live.backup_into(&copy_path).await.unwrap();
        let copy = Catalog::open_sqlite(&copy_path).await.unwrap();
        assert!(copy.user("admin").await.unwrap().is_some());
        // An existing file is not overwritten.
        assert!(live.backup_into(&copy_path).await.is_err());
    }

    #[test]
    fn the_url_is_shown_without_its_password() {
        let url = CatalogUrl("postgres://basin:s3cret@db:5432/basin".into());
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
