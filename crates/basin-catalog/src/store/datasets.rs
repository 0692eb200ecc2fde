//! Datasets: units of ownership inside a hub, with layer, domain, owner, tags and contract.

use std::str::FromStr;

use basin_core::{DatasetRef, Layer, is_reserved_dataset};
use sqlx::any::AnyRow;

use super::descriptions::check_description;
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
        super::metadata_changed(&self.pool).await?;
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

impl Catalog {
    /// Changes a dataset's descriptive fields (layer, domain, owner, description, contract).
    pub async fn update_dataset(
        &self,
        dataset: &DatasetRef,
        update: &DatasetUpdate,
    ) -> Result<Dataset> {
        let mut d = self.require_dataset(dataset).await?;
        let optional = |v: &Option<String>, current: Option<String>| match v {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.clone()),
            None => current,
        };
        d.layer = update.layer.unwrap_or(d.layer);
        d.domain = optional(&update.domain, d.domain);
        d.owner = optional(&update.owner, d.owner);
        d.contract.update_frequency =
            optional(&update.update_frequency, d.contract.update_frequency);
        d.contract.support_contact = optional(&update.support_contact, d.contract.support_contact);
        if let Some(text) = &update.description {
            check_description(&format!("dataset '{dataset}'"), text)?;
            d.description = text.clone();
        }
        d.updated_at = now();
        sqlx::query(
            "UPDATE datasets SET layer = $1, domain = $2, owner = $3, update_frequency = $4, support_contact = $5, description = $6, updated_at = $7 WHERE hub = $8 AND name = $9",
        )
        .bind(d.layer.as_str())
        .bind(&d.domain)
        .bind(&d.owner)
        .bind(&d.contract.update_frequency)
        .bind(&d.contract.support_contact)
        .bind(&d.description)
        .bind(&d.updated_at)
        .bind(&d.hub)
        .bind(&d.name)
        .execute(&self.pool)
        .await
        .ctx(|| format!("updating dataset '{dataset}'"))?;
        super::metadata_changed(&self.pool).await?;
        Ok(d)
    }

    /// Removes an empty dataset, with the grants, row filters and masks on it and on tables it
    /// once held (so that a new dataset of the same name starts without them). A dataset that
    /// holds tables is refused, naming them.
    pub async fn delete_dataset(&self, dataset: &DatasetRef) -> Result<()> {
        self.require_dataset(dataset).await?;
        let tables = self
            .tables(Some(dataset.hub.as_str()), Some(dataset.dataset.as_str()))
            .await?;
        if !tables.is_empty() {
            return Err(CatalogError::NotEmpty(format!(
                "dataset '{dataset}' is not empty: it holds {} table(s) ({}); drop them first",
                tables.len(),
                sample(tables.iter().map(|t| t.name.as_str()))
            )));
        }
        let (hub, name) = (dataset.hub.to_string(), dataset.dataset.to_string());
        self.change("deleting a dataset", move |tx| {
            Box::pin(async move {
                forget_access(
                    tx,
                    &format!("dataset {hub}.{name}"),
                    &[format!("table {hub}.{name}.")],
                )
                .await?;
                sqlx::query("DELETE FROM datasets WHERE hub = $1 AND name = $2")
                    .bind(&hub)
                    .bind(&name)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| format!("deleting dataset '{hub}.{name}'"))?;
                super::metadata_changed(&mut **tx).await
            })
        })
        .await
    }
}

/// Up to five names, then how many more.
pub(crate) fn sample<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 5 => format!("{shown} and {} more", n - 5),
        _ => shown,
    }
}

/// Deletes the grants, row filters and masks on `object` and on every object whose name starts
/// with one of `prefixes` (the objects it contained).
pub(crate) async fn forget_access(
    tx: &mut super::Tx<'_>,
    object: &str,
    prefixes: &[String],
) -> Result<()> {
    // Static SQL, one pair per table of the access model that names objects.
    const EXACT: [&str; 3] = [
        "DELETE FROM grants WHERE object = $1",
        "DELETE FROM row_filters WHERE object = $1",
        "DELETE FROM column_masks WHERE object = $1",
    ];
    const UNDER: [&str; 3] = [
        "DELETE FROM grants WHERE substr(object, 1, length($1)) = $1",
        "DELETE FROM row_filters WHERE substr(object, 1, length($1)) = $1",
        "DELETE FROM column_masks WHERE substr(object, 1, length($1)) = $1",
    ];
    for sql in EXACT {
        sqlx::query(sql)
            .bind(object.to_string())
            .execute(&mut **tx)
            .await
            .ctx(|| format!("forgetting the access rules of {object}"))?;
    }
    for sql in UNDER {
        for prefix in prefixes {
            sqlx::query(sql)
                .bind(prefix.clone())
                .execute(&mut **tx)
                .await
                .ctx(|| format!("forgetting the access rules under {object}"))?;
        }
    }
    Ok(())
}
