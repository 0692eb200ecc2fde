//! A consistent copy of the catalog, taken while it is in use.

use std::path::Path;

use crate::error::DbContext;
use crate::{Catalog, CatalogError, Result};

impl Catalog {
    /// Whether the catalog is a SQLite file (else PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Writes a consistent copy of a SQLite catalog to `path` (a new file) with `VACUUM INTO`:
    /// one read transaction, so the copy is the catalog at one point, while writers go on.
    /// A PostgreSQL catalog is refused (back it up with `pg_dump`).
    pub async fn backup_into(&self, path: &Path) -> Result<()> {
        if !self.sqlite {
            return Err(CatalogError::BadValue(
                "the catalog is on PostgreSQL: basin backup copies SQLite catalogs only; back it up with pg_dump and the tables with basin backup of a SQLite hub, or copy the storage yourself".into(),
            ));
        }
        let target = path.to_str().ok_or_else(|| {
            CatalogError::BadValue(format!("backup path {} is not UTF-8", path.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .ctx(|| format!("copying the catalog to {}", path.display()))?;
        Ok(())
    }

    /// Closes the catalog's connections (a copy opened to read it, before its file is moved).
    pub async fn close(&self) {
        self.pool.close().await;
    }
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
}
