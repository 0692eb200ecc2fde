//! Descriptions of hubs, datasets, tables and columns: free text written by people.

use crate::access::Securable;
use crate::error::DbContext;
use crate::store::now;
use crate::{Catalog, CatalogError, Result};

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

impl Catalog {
    /// Replaces the description of a hub, dataset, table, or (with `column`) one column of a
    /// table; an empty text clears it.
    pub async fn set_description(
        &self,
        object: &Securable,
        column: Option<&str>,
        description: &str,
    ) -> Result<()> {
        check_description(&object.to_string(), description)?;
        match column {
            Some(c) => self.require_column(object, c).await?,
            None => {
                self.require_object(object).await?;
            }
        }
        // Hubs and columns have no `updated_at`; datasets and tables record the change.
        let (sql, binds): (&'static str, Vec<String>) = match (object, column) {
            (Securable::Hub { hub }, None) => (
                "UPDATE hubs SET description = $1 WHERE name = $2",
                vec![hub.clone()],
            ),
            (Securable::Dataset { hub, dataset }, None) => (
                "UPDATE datasets SET description = $1, updated_at = $2 WHERE hub = $3 AND name = $4",
                vec![now(), hub.clone(), dataset.clone()],
            ),
            (
                Securable::Table {
                    hub,
                    dataset,
                    table,
                },
                None,
            ) => (
                "UPDATE tables SET description = $1, updated_at = $2 WHERE hub = $3 AND dataset = $4 AND name = $5",
                vec![now(), hub.clone(), dataset.clone(), table.clone()],
            ),
            (
                Securable::Table {
                    hub,
                    dataset,
                    table,
                },
                Some(c),
            ) => (
                "UPDATE table_columns SET description = $1 WHERE hub = $2 AND dataset = $3 AND table_name = $4 AND name = $5",
                vec![hub.clone(), dataset.clone(), table.clone(), c.to_string()],
            ),
            (o, _) => {
                return Err(CatalogError::BadValue(format!(
                    "descriptions go on hubs, datasets, tables and columns, not on '{o}'"
                )));
            }
        };
        let mut q = sqlx::query(sql).bind(description);
        for b in binds {
            q = q.bind(b);
        }
        q.execute(&self.pool)
            .await
            .ctx(|| format!("setting the description of {object}"))?;
        super::metadata_changed(&self.pool).await
    }
}

/// Refuses a description longer than [`MAX_DESCRIPTION_CHARS`].
pub(crate) fn check_description(object: &str, description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(CatalogError::BadValue(format!(
            "the description of {object} is longer than {MAX_DESCRIPTION_CHARS} characters; shorten it"
        )));
    }
    Ok(())
}
