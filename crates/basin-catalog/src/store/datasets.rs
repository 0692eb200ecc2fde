//! Datasets: units of ownership inside a hub, with layer, domain, owner, tags and contract.

use std::str::FromStr;

use basin_core::{DatasetRef, Layer, is_reserved_dataset};
use sqlx::any::AnyRow;

use super::{from_json, get, normalize_tags, not_found, now, to_json, unique_violation};
use crate::error::DbContext;
use crate::model::*;
use crate::{Catalog, CatalogError, Result};

// The column list of the catalog table, as a literal so that queries stay static SQL.
macro_rules! dataset_select {
    () => {
        "SELECT hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at, updated_at FROM datasets"
    };
}

impl Catalog {
    /// Registers a dataset in an existing hub.
    pub async fn create_dataset(&self, new: NewDataset) -> Result<Dataset> {
        let hub = self.require_hub(new.dataset.hub.as_str()).await?;
        if is_reserved_dataset(new.dataset.dataset.as_str()) {
            return Err(CatalogError::BadValue(format!(
                "dataset name '{}' is reserved for Basin's virtual tables; choose another name",
                new.dataset.dataset
            )));
        }
        if self.dataset(&new.dataset).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "dataset",
                name: new.dataset.to_string(),
            });
        }
        let tags = normalize_tags(&new.tags)?;
        let now = now();
        let dataset = Dataset {
            hub: hub.name,
            name: new.dataset.dataset.to_string(),
            layer: new.layer,
            domain: new.domain,
            owner: new.owner,
            description: new.description,
            tags,
            contract: new.contract,
            created_at: now.clone(),
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO datasets (hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&dataset.hub)
        .bind(&dataset.name)
        .bind(dataset.layer.as_str())
        .bind(&dataset.domain)
        .bind(&dataset.owner)
        .bind(&dataset.description)
        .bind(to_json(&dataset.tags))
        .bind(&dataset.contract.update_frequency)
        .bind(&dataset.contract.support_contact)
        .bind(&dataset.created_at)
        .bind(&dataset.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "dataset", &new.dataset.to_string()))?;
        Ok(dataset)
    }

    /// The dataset, if it exists.
    pub async fn dataset(&self, dataset: &DatasetRef) -> Result<Option<Dataset>> {
        let row = sqlx::query(concat!(dataset_select!(), " WHERE hub = $1 AND name = $2"))
            .bind(dataset.hub.as_str())
            .bind(dataset.dataset.as_str())
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading dataset '{dataset}'"))?;
        row.map(|r| dataset_from_row(&r)).transpose()
    }

    /// The dataset, or a not-found error suggesting the closest name.
    pub async fn require_dataset(&self, dataset: &DatasetRef) -> Result<Dataset> {
        match self.dataset(dataset).await? {
            Some(d) => Ok(d),
            None => {
                self.require_hub(dataset.hub.as_str()).await?;
                let all = self.datasets(Some(dataset.hub.as_str())).await?;
                let names: Vec<String> = all
                    .iter()
                    .map(|d| format!("{}.{}", d.hub, d.name))
                    .collect();
                Err(not_found(
                    "dataset",
                    &dataset.to_string(),
                    names.iter().map(String::as_str),
                ))
            }
        }
    }

    /// The datasets of one hub, or of all hubs.
    pub async fn datasets(&self, hub: Option<&str>) -> Result<Vec<Dataset>> {
        let rows = match hub {
            Some(hub) => {
                sqlx::query(concat!(
                    dataset_select!(),
                    " WHERE hub = $1 ORDER BY hub, name"
                ))
                .bind(hub)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!(dataset_select!(), " ORDER BY hub, name"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx(|| "listing datasets".into())?;
        rows.iter().map(dataset_from_row).collect()
    }
}

fn dataset_from_row(r: &AnyRow) -> Result<Dataset> {
    let layer: String = get(r, "layer")?;
    Ok(Dataset {
        hub: get(r, "hub")?,
        name: get(r, "name")?,
        layer: Layer::from_str(&layer)?,
        domain: get(r, "domain")?,
        owner: get(r, "owner")?,
        description: get(r, "description")?,
        tags: from_json(&get::<String>(r, "tags")?)?,
        contract: Contract {
            update_frequency: get(r, "update_frequency")?,
            support_contact: get(r, "support_contact")?,
        },
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}
