//! Persistence of the access model, one file per resource: users, roles (and their members),
//! grants, policies (row filters and column masks), tags, tokens, audit. Here: the cached
//! [`AccessSnapshot`], the `change` helper that every change of the model goes through, and the
//! checks that grants, policies and tags share.

mod audit;
mod grants;
mod policies;
mod requests;
mod roles;
mod tags;
mod tokens;
mod users;
mod web_sessions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use basin_core::{DatasetRef, TableRef};

use super::decision::AccessSnapshot;
use super::model::*;
use crate::error::DbContext;
use crate::store::{Tx, not_found};
use crate::{Catalog, Result, Table};
use users::attributes_from_json;

pub(crate) use audit::AuditQueue;
pub(crate) use grants::insert_grant;
pub use requests::{AccessRequest, RequestStatus};

/// The last loaded snapshot, reused while the catalog's access version is unchanged.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccessCache(Arc<Mutex<Option<Arc<AccessSnapshot>>>>);

impl Catalog {
    /// Runs one change of the access model and bumps its version in the same transaction.
    pub(crate) async fn change<F>(&self, action: &str, f: F) -> Result<()>
    where
        F: for<'t> FnOnce(&'t mut Tx<'_>) -> futures::future::BoxFuture<'t, Result<()>>,
    {
        let mut tx = self.begin().await?;
        f(&mut tx).await?;
        sqlx::query("UPDATE access_version SET version = version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .ctx(|| action.to_string())?;
        tx.commit().await.ctx(|| action.to_string())
    }

    /// The access state at the current version (cached between changes).
    pub async fn access_snapshot(&self) -> Result<Arc<AccessSnapshot>> {
        let (version,): (i64,) = sqlx::query_as("SELECT version FROM access_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .ctx(|| "reading the access version".into())?;
        if let Some(s) = self.access.0.lock().expect("cache lock").as_ref()
            && s.version() == version
        {
            return Ok(s.clone());
        }
        let snapshot = Arc::new(self.load_snapshot(version).await?);
        *self.access.0.lock().expect("cache lock") = Some(snapshot.clone());
        Ok(snapshot)
    }

    async fn load_snapshot(&self, version: i64) -> Result<AccessSnapshot> {
        let mut memberships: BTreeMap<String, _> = BTreeMap::new();
        for (role, member) in
            sqlx::query_as::<_, (String, String)>("SELECT role, member FROM role_members")
                .fetch_all(&self.pool)
                .await
                .ctx(|| "reading role members".into())?
        {
            memberships
                .entry(member)
                .or_insert_with(std::collections::BTreeSet::new)
                .insert(role);
        }
        let mut attributes = BTreeMap::new();
        for (name, attrs) in
            sqlx::query_as::<_, (String, String)>("SELECT name, attributes FROM users")
                .fetch_all(&self.pool)
                .await
                .ctx(|| "reading users".into())?
        {
            attributes.insert(name, attributes_from_json(&attrs)?);
        }
        Ok(AccessSnapshot::new(
            version,
            self.grants().await?,
            self.row_filters().await?,
            self.column_masks().await?,
            memberships,
            attributes,
        ))
    }

    /// Checks that the object of a grant or policy exists (tags: that the values are allowed).
    pub async fn require_object(&self, object: &Securable) -> Result<Option<Table>> {
        match object {
            Securable::Hub { hub } => {
                self.require_hub(hub).await?;
            }
            Securable::Dataset { hub, dataset } => {
                self.require_dataset(&DatasetRef::new(hub, dataset)?)
                    .await?;
            }
            Securable::Table {
                hub,
                dataset,
                table,
            } => {
                return Ok(Some(
                    self.require_table(&TableRef::new(hub, dataset, table)?)
                        .await?,
                ));
            }
            Securable::Tag { key, values } => {
                for v in values {
                    self.check_tag(key, Some(v)).await?;
                }
            }
        }
        Ok(None)
    }

    pub(crate) async fn require_column(&self, object: &Securable, column: &str) -> Result<()> {
        let Some(table) = self.require_object(object).await? else {
            return Ok(());
        };
        if table.columns.iter().any(|c| c.name == column) {
            return Ok(());
        }
        Err(not_found(
            "column",
            &format!("{}.{column}", table.table_ref()),
            table.columns.iter().map(|c| c.name.as_str()),
        ))
    }
}
