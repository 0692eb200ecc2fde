//! Tags: defined keys and their allowed values, and the tags of datasets, tables and columns.

use basin_core::Name;

use crate::access::model::*;
use crate::error::DbContext;
use crate::store::{from_json, normalize_tags, to_json};
use crate::{Catalog, CatalogError, Result};

impl Catalog {
    /// Defines (or redefines) a tag key and the values it may take.
    pub async fn define_tag(&self, name: &str, allowed_values: &[String]) -> Result<TagKey> {
        let name = Name::parse("tag", name)?.to_string();
        let values = allowed_values
            .iter()
            .map(|v| check_tag_value(&name, v))
            .collect::<Result<Vec<_>>>()?;
        let (n, v) = (name.clone(), to_json(&values));
        self.change("defining a tag", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM tag_keys WHERE name = $1")
                    .bind(&n)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "defining a tag".into())?;
                sqlx::query("INSERT INTO tag_keys (name, allowed_values) VALUES ($1, $2)")
                    .bind(&n)
                    .bind(v)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "defining a tag".into())?;
                Ok(())
            })
        })
        .await?;
        Ok(TagKey {
            name,
            allowed_values: values,
        })
    }

    /// Every defined tag key.
    pub async fn tag_keys(&self) -> Result<Vec<TagKey>> {
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT name, allowed_values FROM tag_keys ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing tags".into())?;
        rows.into_iter()
            .map(|(name, values)| {
                Ok(TagKey {
                    name,
                    allowed_values: from_json(&values)?,
                })
            })
            .collect()
    }

    /// Checks a tag against its definition: a defined key only takes its allowed values.
    pub(super) async fn check_tag(&self, key: &str, value: Option<&str>) -> Result<()> {
        let Some(def) = self.tag_keys().await?.into_iter().find(|k| k.name == key) else {
            return Ok(());
        };
        match value {
            Some(v)
                if !def.allowed_values.is_empty() && !def.allowed_values.iter().any(|a| a == v) =>
            {
                Err(CatalogError::BadValue(format!(
                    "tag '{key}' does not allow the value '{v}': use one of {}",
                    def.allowed_values.join(", ")
                )))
            }
            None if !def.allowed_values.is_empty() => Err(CatalogError::BadValue(format!(
                "tag '{key}' needs a value: write {key}=VALUE with one of {}",
                def.allowed_values.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    async fn checked_tags(&self, tags: &[String]) -> Result<Vec<String>> {
        let tags = normalize_tags(tags)?;
        for t in &tags {
            let (k, v) = match t.split_once('=') {
                Some((k, v)) => (k, Some(check_tag_value(k, v)?)),
                None => (t.as_str(), None),
            };
            self.check_tag(k, v.as_deref()).await?;
        }
        Ok(tags)
    }

    /// Replaces the tags of a dataset, table or column (`column` only with a table). Grants on
    /// tags cover the object from this moment on.
    pub async fn set_tags(
        &self,
        object: &Securable,
        column: Option<&str>,
        tags: &[String],
    ) -> Result<()> {
        let tags = to_json(&self.checked_tags(tags).await?);
        if let Some(c) = column {
            self.require_column(object, c).await?;
        } else {
            self.require_object(object).await?;
        }
        let (sql, binds): (&'static str, Vec<String>) = match (object, column) {
            (Securable::Dataset { hub, dataset }, None) => (
                "UPDATE datasets SET tags = $1 WHERE hub = $2 AND name = $3",
                vec![hub.clone(), dataset.clone()],
            ),
            (
                Securable::Table {
                    hub,
                    dataset,
                    table,
                },
                None,
            ) => (
                "UPDATE tables SET tags = $1 WHERE hub = $2 AND dataset = $3 AND name = $4",
                vec![hub.clone(), dataset.clone(), table.clone()],
            ),
            (
                Securable::Table {
                    hub,
                    dataset,
                    table,
                },
                Some(c),
            ) => (
                "UPDATE table_columns SET tags = $1 WHERE hub = $2 AND dataset = $3 AND table_name = $4 AND name = $5",
                vec![hub.clone(), dataset.clone(), table.clone(), c.to_string()],
            ),
            (o, _) => {
                return Err(CatalogError::BadValue(format!(
                    "tags go on datasets, tables and columns, not on '{o}'"
                )));
            }
        };
        self.change("setting tags", move |tx| {
            Box::pin(async move {
                let mut q = sqlx::query(sql).bind(tags);
                for b in binds {
                    q = q.bind(b);
                }
                q.execute(&mut **tx).await.ctx(|| "setting tags".into())?;
                crate::store::metadata_changed(&mut **tx).await?;
                Ok(())
            })
        })
        .await
    }
}
