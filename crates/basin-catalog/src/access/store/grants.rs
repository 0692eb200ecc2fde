//! Grants of privileges on hubs, datasets, tables, columns and tags.

use crate::access::model::*;
use crate::error::DbContext;
use crate::store::{Tx, now};
use crate::{Catalog, CatalogError, Result};

impl Catalog {
    /// Adds a grant (a no-op when it exists). The object must exist.
    pub async fn grant(&self, grant: &Grant) -> Result<()> {
        self.check_grant(grant).await?;
        let g = grant.clone();
        self.change("granting", move |tx| {
            Box::pin(async move { insert_grant(tx, &g).await })
        })
        .await
    }

    /// Removes a grant; errors when there was none, so that typos do not pass silently.
    pub async fn revoke(&self, grant: &Grant) -> Result<()> {
        let exists = self.grants().await?.iter().any(|g| {
            g.grantee == grant.grantee
                && g.privilege == grant.privilege
                && g.object == grant.object
                && g.column == grant.column
        });
        if !exists {
            return Err(CatalogError::NotFound {
                kind: "grant",
                name: format!(
                    "{}{} on {} to {}",
                    grant.privilege,
                    grant
                        .column
                        .as_ref()
                        .map(|c| format!("({c})"))
                        .unwrap_or_default(),
                    grant.object,
                    grant.grantee
                ),
                suggestion: None,
            });
        }
        let g = grant.clone();
        self.change("revoking", move |tx| {
            Box::pin(async move { delete_grant(tx, &g).await })
        })
        .await
    }

    /// Every grant.
    pub async fn grants(&self) -> Result<Vec<Grant>> {
        let rows = sqlx::query_as::<_, (String, String, String, String, String, String)>(
            "SELECT grantee, privilege, object, column_name, granted_by, granted_at FROM grants ORDER BY object, grantee, privilege, column_name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing grants".into())?;
        rows.into_iter()
            .map(
                |(grantee, privilege, object, column, granted_by, granted_at)| {
                    Ok(Grant {
                        grantee,
                        privilege: privilege.parse()?,
                        object: Securable::parse(&object)?,
                        column: (!column.is_empty()).then_some(column),
                        granted_by,
                        granted_at,
                    })
                },
            )
            .collect()
    }

    async fn check_grant(&self, g: &Grant) -> Result<()> {
        self.require_grantee(&g.grantee).await?;
        self.require_object(&g.object).await?;
        if matches!(g.object, Securable::Tag { .. }) && g.privilege == Privilege::Manage {
            return Err(CatalogError::BadValue(
                "MANAGE cannot be granted on a tag: grant it on a hub, dataset or table".into(),
            ));
        }
        if let Some(c) = &g.column {
            let Securable::Table { .. } = &g.object else {
                return Err(CatalogError::BadValue(format!(
                    "column grants are on tables; '{}' is not a table",
                    g.object
                )));
            };
            if g.privilege != Privilege::Select {
                return Err(CatalogError::BadValue(format!(
                    "only SELECT can be granted on columns, not {}",
                    g.privilege
                )));
            }
            self.require_column(&g.object, c).await?;
        }
        Ok(())
    }
}

/// Adds a grant inside a transaction (replacing the same grant); the caller bumps the access
/// version.
pub(crate) async fn insert_grant(tx: &mut Tx<'_>, g: &Grant) -> Result<()> {
    delete_grant(tx, g).await?;
    sqlx::query("INSERT INTO grants (grantee, privilege, object, column_name, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&g.grantee)
        .bind(g.privilege.to_string())
        .bind(g.object.to_string())
        .bind(g.column.clone().unwrap_or_default())
        .bind(&g.granted_by)
        .bind(now())
        .execute(&mut **tx)
        .await
        .ctx(|| "granting".into())?;
    Ok(())
}

async fn delete_grant(tx: &mut Tx<'_>, g: &Grant) -> Result<()> {
    sqlx::query("DELETE FROM grants WHERE grantee = $1 AND privilege = $2 AND object = $3 AND column_name = $4")
        .bind(&g.grantee)
        .bind(g.privilege.to_string())
        .bind(g.object.to_string())
        .bind(g.column.clone().unwrap_or_default())
        .execute(&mut **tx)
        .await
        .ctx(|| "revoking".into())?;
    Ok(())
}
