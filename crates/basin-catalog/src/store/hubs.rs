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
            storage_root: hub.storage_root,
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
        Ok(created)
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
        row.map(|r| hub_from_row(&r)).transpose()
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

    /// All hubs, by name.
    pub async fn hubs(&self) -> Result<Vec<Hub>> {
        let rows = sqlx::query(
            "SELECT name, storage_root, description, created_at FROM hubs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing hubs".into())?;
        rows.iter().map(hub_from_row).collect()
    }
}

fn hub_from_row(r: &AnyRow) -> Result<Hub> {
    Ok(Hub {
        name: get(r, "name")?,
        storage_root: get(r, "storage_root")?,
        description: get(r, "description")?,
        created_at: get(r, "created_at")?,
    })
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
                Ok(())
            })
        })
        .await
    }
}
