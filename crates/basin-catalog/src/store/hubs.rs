//! Hubs: isolation units, each with its own storage root.

use sqlx::any::AnyRow;

use super::{get, not_found, now, unique_violation};
use crate::error::DbContext;
use crate::model::*;
use crate::{Catalog, CatalogError, Result};

impl Catalog {
    /// Registers a hub.
    pub async fn create_hub(&self, hub: NewHub) -> Result<Hub> {
        if self.hub(hub.name.as_str()).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "hub",
                name: hub.name.to_string(),
            });
        }
        let created = Hub {
            name: hub.name.to_string(),
            storage_root: self.stored_location(&hub.storage_root),
            description: hub.description,
            created_at: now(),
        };
        sqlx::query("INSERT INTO hubs (name, storage_root, description, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&created.name)
            .bind(&created.storage_root)
            .bind(&created.description)
            .bind(&created.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "hub", &created.name))?;
        super::metadata_changed(&self.pool).await?;
        self.require_hub(&created.name).await
    }

    /// The hub called `name`, if any.
    pub async fn hub(&self, name: &str) -> Result<Option<Hub>> {
        let row = sqlx::query(
            "SELECT name, storage_root, description, created_at FROM hubs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .ctx(|| format!("reading hub '{name}'"))?;
        row.map(|r| self.hub_from_row(&r)).transpose()
    }

    /// The hub called `name`, or a not-found error suggesting the closest name.
    pub async fn require_hub(&self, name: &str) -> Result<Hub> {
        match self.hub(name).await? {
            Some(h) => Ok(h),
            None => {
                let hubs = self.hubs().await?;
                Err(not_found("hub", name, hubs.iter().map(|h| h.name.as_str())))
            }
        }
    }

    /// Points a hub at `new_root`, and each of its tables under the old root at the same place
    /// under the new one, in one transaction (once their files are there). Returns the hub.
    pub async fn move_hub_root(&self, name: &str, new_root: &str) -> Result<Hub> {
        let hub = self.require_hub(name).await?;
        let (old_root, new_root) = (
            hub.storage_root.trim_end_matches('/'),
            new_root.trim_end_matches('/'),
        );
        let tables = self.tables(Some(name), None).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE hubs SET storage_root = $1 WHERE name = $2")
            .bind(self.stored_location(new_root))
            .bind(name)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("moving hub '{name}'"))?;
        for t in tables {
            let Some(rest) = t.location.strip_prefix(old_root) else {
                continue;
            };
            if !rest.starts_with('/') {
                continue;
            }
            sqlx::query(
                "UPDATE tables SET location = $1 WHERE hub = $2 AND dataset = $3 AND name = $4",
            )
            .bind(self.stored_location(&format!("{new_root}{rest}")))
            .bind(&t.hub)
            .bind(&t.dataset)
            .bind(&t.name)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("moving table '{}'", t.table_ref()))?;
        }
        tx.commit().await.ctx(|| format!("moving hub '{name}'"))?;
        self.require_hub(name).await
    }

    /// All hubs, by name.
    pub async fn hubs(&self) -> Result<Vec<Hub>> {
        let rows = sqlx::query(
            "SELECT name, storage_root, description, created_at FROM hubs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing hubs".into())?;
        rows.iter().map(|r| self.hub_from_row(r)).collect()
    }
}

impl Catalog {
    fn hub_from_row(&self, r: &AnyRow) -> Result<Hub> {
        Ok(Hub {
            name: get(r, "name")?,
            storage_root: self.resolved_location(&get::<String>(r, "storage_root")?),
            description: get(r, "description")?,
            created_at: get(r, "created_at")?,
        })
    }
}

impl Catalog {
    /// Removes an empty hub, with the grants, row filters and masks on it and on what it once
    /// held. A hub that holds datasets is refused, naming them; the default hub is kept.
    pub async fn delete_hub(&self, name: &str) -> Result<()> {
        self.require_hub(name).await?;
        if name == basin_core::DEFAULT_HUB {
            return Err(CatalogError::BadValue(format!(
                "hub '{name}' is the default hub and cannot be deleted"
            )));
        }
        let datasets = self.datasets(Some(name)).await?;
        if !datasets.is_empty() {
            return Err(CatalogError::NotEmpty(format!(
                "hub '{name}' is not empty: it holds {} dataset(s) ({}); delete them first",
                datasets.len(),
                super::datasets::sample(datasets.iter().map(|d| d.name.as_str()))
            )));
        }
        let hub = name.to_string();
        self.change("deleting a hub", move |tx| {
            Box::pin(async move {
                let under = [format!("dataset {hub}."), format!("table {hub}.")];
                super::datasets::forget_access(tx, &format!("hub {hub}"), &under).await?;
                sqlx::query("DELETE FROM hubs WHERE name = $1")
                    .bind(&hub)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| format!("deleting hub '{hub}'"))?;
                super::metadata_changed(&mut **tx).await
            })
        })
        .await
    }
}
