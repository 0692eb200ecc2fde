//! Administration: hubs and datasets, users and roles, grants, policies, tags, tokens, keys and
//! the audit log. Each action is decided by the catalog, made, and audited.

use std::collections::BTreeMap;
use std::time::Duration;

use basin_catalog::access::{
    Action, AuditEvent, ColumnMask, Grant, Privilege, Role, RowFilter, Securable, TagKey, Token,
    TokenKind, User, is_pii,
};
use basin_catalog::{Dataset, DatasetUpdate, Hub as HubEntry, NewDataset, NewHub};
use basin_core::{DatasetRef, Name, TableRef};
use basin_tables::Write;
use serde::Deserialize;

use crate::credentials::{hash_password, issue_token, verify_password};
use crate::{Result, ServiceError, Session};

/// A user to create.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewUser {
    pub name: String,
    /// `None`: the user signs in only through tokens.
    pub password: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Tags for a dataset, a table, or one column of a table.
#[derive(Debug, Clone, Deserialize)]
pub struct TagAssignment {
    /// `dataset HUB.NAME` or `table HUB.DATASET.NAME`.
    pub object: String,
    pub column: Option<String>,
    pub tags: Vec<String>,
}

/// Longest a token may live, in days.
pub const MAX_TOKEN_DAYS: u64 = 3650;

impl Session {
    /// Creates a hub (administrators); its tables go under `storage_root`, or under the data
    /// directory.
    pub async fn create_hub(
        &self,
        name: &str,
        storage_root: Option<String>,
        description: String,
    ) -> Result<HubEntry> {
        let result = async {
            self.require(Action::Administer).await?;
            let name = Name::parse("hub", name)?;
            let storage_root = match storage_root {
                Some(r) => crate::root_url(&r)?,
                None => crate::default_root(&self.data_dir, name.as_str())?,
            };
            Ok(self
                .engine()
                .catalog()
                .create_hub(NewHub {
                    name,
                    storage_root,
                    description,
                })
                .await?)
        }
        .await;
        self.audited("hub.create", name, result).await
    }

    /// Moves a hub's files to `new_root`, a local directory that is new or empty (relative:
    /// to the working directory), and points the catalog there (administrators). The files are
    /// renamed, or copied and then removed when the new root is on another file system. On
    /// any failure nothing changes: a copy is removed, a rename undone. Writers to the hub
    /// should be stopped first. Given its current root, the hub's entries are only stored
    /// again (relative when in the data directory).
    pub async fn move_hub(&self, name: &str, new_root: &str) -> Result<HubEntry> {
        let result = async {
            self.require(Action::Administer).await?;
            let name = Name::parse("hub", name)?.to_string();
            let catalog = self.engine().catalog();
            let hub = catalog.require_hub(&name).await?;
            let new_url = crate::root_url(new_root)?;
            let local = |url: &str| {
                basin_lake::location_url(url)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "{url} is not on the local file system: basin moves hubs between local directories only; copy the files of an object store yourself"
                        ))
                    })
            };
            let (from, to) = (local(&hub.storage_root)?, local(&new_url)?);
            if from == to {
                // The files stay; the entries are stored again (relative, if in the data dir).
                return Ok(catalog.move_hub_root(&name, &new_url).await?);
            }
            if to.starts_with(&from) || from.starts_with(&to) {
                return Err(ServiceError::Invalid(format!(
                    "hub '{name}' is at {}: pick a new root outside it (and not above it)",
                    from.display()
                )));
            }
            let occupied = std::fs::read_dir(&to).is_ok_and(|mut d| d.next().is_some());
            if occupied || (to.exists() && !to.is_dir()) {
                return Err(ServiceError::Invalid(format!(
                    "{} is not empty: pick a new or empty directory",
                    to.display()
                )));
            }
            let moved = if from.exists() {
                Some(move_dir(&from, &to)?)
            } else {
                None // no table yet: only the catalog changes
            };
            match catalog.move_hub_root(&name, &new_url).await {
                Ok(entry) => {
                    if moved == Some(Moved::Copied) {
                        // The catalog points at the copy now; a leftover original is harmless.
                        let _ = std::fs::remove_dir_all(&from);
                    }
                    Ok(entry)
                }
                Err(e) => {
                    match moved {
                        Some(Moved::Renamed) => {
                            let _ = std::fs::rename(&to, &from);
                        }
                        Some(Moved::Copied) => {
                            let _ = std::fs::remove_dir_all(&to);
                        }
                        None => {}
                    }
                    Err(e.into())
                }
            }
        }
        .await;
        self.audited("hub.move", name, result).await
    }

    /// Creates a dataset (administrators, and holders of CREATE on its hub).
    pub async fn create_dataset(&self, new: NewDataset) -> Result<Dataset> {
        let target = new.dataset.to_string();
        let result = async {
            let hub = new.dataset.hub.to_string();
            self.require_on(
                &Securable::Hub { hub: hub.clone() },
                Action::CreateDataset { hub: &hub },
            )
            .await?;
            Ok(self.engine().catalog().create_dataset(new).await?)
        }
        .await;
        self.audited("dataset.create", &target, result).await
    }

    /// Sets the description of a hub, dataset, table or (with `column`) one of its columns
    /// (MANAGE on the object; a hidden object or column is "not found"); an empty text clears it.
    /// Audited as `comment`, like SQL's `COMMENT ON`, which does the same.
    pub async fn set_description(
        &self,
        object: &Securable,
        column: Option<&str>,
        text: &str,
    ) -> Result<()> {
        Ok(basin_sql::set_description(self.engine(), object, column, text).await?)
    }

    /// A table's description and those of some of its columns, all or nothing: every column is
    /// checked to be visible before anything changes (MANAGE on the table).
    pub async fn describe_table(
        &self,
        table: &TableRef,
        description: Option<&str>,
        columns: &BTreeMap<String, String>,
    ) -> Result<()> {
        let object = Securable::table(table);
        let visible = self.table(table).await?.policy.columns;
        for c in columns.keys() {
            if !visible.iter().any(|p| &p.name == c) {
                return Err(ServiceError::NotFound(format!(
                    "column '{table}.{c}' not found{}",
                    basin_core::closest(c, visible.iter().map(|p| p.name.as_str()))
                        .map(|s| format!("; did you mean '{s}'?"))
                        .unwrap_or_default()
                )));
            }
        }
        if description.is_none() && columns.is_empty() {
            return Err(ServiceError::Invalid(
                "nothing to change: give a description and/or column descriptions".into(),
            ));
        }
        if let Some(text) = description {
            self.set_description(&object, None, text).await?;
        }
        for (c, text) in columns {
            self.set_description(&object, Some(c), text).await?;
        }
        Ok(())
    }

    /// Changes a hub's description (MANAGE on the hub).
    pub async fn update_hub(&self, name: &str, description: &str) -> Result<HubEntry> {
        let hub = Name::parse("hub", name)?.to_string();
        self.set_description(&Securable::Hub { hub: hub.clone() }, None, description)
            .await?;
        let mut entry = self.engine().catalog().require_hub(&hub).await?;
        if !self.may(Action::Administer).await? {
            entry.storage_root = String::new();
        }
        Ok(entry)
    }

    /// Deletes an empty hub (administrators); a hub that holds datasets is refused, naming them.
    pub async fn delete_hub(&self, name: &str) -> Result<()> {
        let result = async {
            let hub = Name::parse("hub", name)?.to_string();
            let object = Securable::Hub { hub: hub.clone() };
            self.require_on(&object, Action::Delete(&object)).await?;
            Ok(self.engine().catalog().delete_hub(&hub).await?)
        }
        .await;
        self.audited("hub.delete", name, result).await
    }

    /// Changes a dataset's layer, domain, owner, description or contract (MANAGE on it).
    pub async fn update_dataset(
        &self,
        dataset: &DatasetRef,
        update: &DatasetUpdate,
    ) -> Result<Dataset> {
        let result = async {
            if update.is_empty() {
                return Err(ServiceError::Invalid(
                    "nothing to change: give a layer, domain, owner, description, update frequency or support contact".into(),
                ));
            }
            let object = Securable::Dataset {
                hub: dataset.hub.to_string(),
                dataset: dataset.dataset.to_string(),
            };
            self.require_on(&object, Action::Manage(&object)).await?;
            Ok(self
                .engine()
                .catalog()
                .update_dataset(dataset, update)
                .await?)
        }
        .await;
        self.audited("dataset.update", &dataset.to_string(), result)
            .await
    }

    /// Deletes an empty dataset (MANAGE on it or its hub); one that holds tables is refused,
    /// naming them. Its grants, row filters and masks go with it.
    pub async fn delete_dataset(&self, dataset: &DatasetRef) -> Result<()> {
        let result = async {
            let object = Securable::Dataset {
                hub: dataset.hub.to_string(),
                dataset: dataset.dataset.to_string(),
            };
            self.require_on(&object, Action::Delete(&object)).await?;
            Ok(self.engine().catalog().delete_dataset(dataset).await?)
        }
        .await;
        self.audited("dataset.delete", &dataset.to_string(), result)
            .await
    }

    /// Every user (administrators).
    pub async fn users(&self) -> Result<Vec<User>> {
        self.require(Action::Administer).await?;
        Ok(self.engine().catalog().users().await?)
    }

    /// Creates a user with its roles (administrators). The password is hashed off the async
    /// workers.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let target = new.name.clone();
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            let hash = match new.password {
                Some(p) => Some(
                    tokio::task::spawn_blocking(move || hash_password(&p))
                        .await
                        .map_err(|e| ServiceError::Invalid(format!("hashing failed: {e}")))??,
                ),
                None => None,
            };
            for r in &new.roles {
                catalog.require_role(r).await?;
            }
            catalog
                .create_user(&new.name, hash.as_deref(), &new.attributes)
                .await?;
            for r in &new.roles {
                catalog.add_role_member(r, &new.name).await?;
            }
            Ok(catalog.require_user(&new.name).await?)
        }
        .await;
        self.audited("user.create", &target, result).await
    }

    /// Replaces a user's attributes (administrators).
    pub async fn set_user_attributes(
        &self,
        user: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<User> {
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            catalog.set_user_attributes(user, attributes).await?;
            Ok(catalog.require_user(user).await?)
        }
        .await;
        self.audited("user.attributes", user, result).await
    }

    /// Disables a user: its sign-ins and tokens stop working (administrators).
    pub async fn disable_user(&self, user: &str) -> Result<User> {
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            catalog.set_user_disabled(user, true).await?;
            Ok(catalog.require_user(user).await?)
        }
        .await;
        self.audited("user.disable", user, result).await
    }

    /// Enables a disabled user again (administrators).
    pub async fn enable_user(&self, user: &str) -> Result<User> {
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            catalog.set_user_disabled(user, false).await?;
            Ok(catalog.require_user(user).await?)
        }
        .await;
        self.audited("user.enable", user, result).await
    }

    /// Sets a user's password: users their own, giving the current one; administrators anyone's
    /// (a current password they give is checked too). The user's login sessions end (they were
    /// opened with the old password); its service tokens stay. Hashing runs off the async
    /// workers.
    pub async fn set_password(
        &self,
        user: &str,
        current: Option<String>,
        new: String,
    ) -> Result<()> {
        let result = async {
            let admin = self.may(Action::Administer).await?;
            if user != self.principal().name && !admin {
                return Err(ServiceError::Denied(
                    "permission denied: only administrators set another user's password".into(),
                ));
            }
            let catalog = self.engine().catalog();
            catalog.require_user(user).await?;
            match (current, admin) {
                (None, true) => {}
                (None, false) => {
                    return Err(ServiceError::Invalid(
                        "give your current password to change it".into(),
                    ));
                }
                (Some(current), _) => {
                    let stored = catalog.password_hash(user).await?;
                    let matches = tokio::task::spawn_blocking(move || {
                        stored.is_some_and(|h| verify_password(&current, &h))
                    })
                    .await
                    .map_err(|e| ServiceError::Invalid(format!("checking failed: {e}")))?;
                    if !matches {
                        return Err(ServiceError::Denied("the current password is wrong".into()));
                    }
                }
            }
            let hash = tokio::task::spawn_blocking(move || hash_password(&new))
                .await
                .map_err(|e| ServiceError::Invalid(format!("hashing failed: {e}")))??;
            Ok(catalog.set_password_hash(user, &hash).await?)
        }
        .await;
        self.audited("user.password", user, result).await
    }

    /// Every role (administrators).
    pub async fn roles(&self) -> Result<Vec<Role>> {
        self.require(Action::Administer).await?;
        Ok(self.engine().catalog().roles().await?)
    }

    /// Creates a role (administrators).
    pub async fn create_role(&self, name: &str, description: &str) -> Result<Role> {
        let result = async {
            self.require(Action::Administer).await?;
            Ok(self
                .engine()
                .catalog()
                .create_role(name, description)
                .await?)
        }
        .await;
        self.audited("role.create", name, result).await
    }

    /// Adds a user to a role (administrators).
    pub async fn add_member(&self, role: &str, user: &str) -> Result<Role> {
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            catalog.add_role_member(role, user).await?;
            Ok(catalog.require_role(role).await?)
        }
        .await;
        self.audited("role.member.add", &format!("{role} {user}"), result)
            .await
    }

    /// Removes a user from a role (administrators).
    pub async fn remove_member(&self, role: &str, user: &str) -> Result<Role> {
        let result = async {
            self.require(Action::Administer).await?;
            let catalog = self.engine().catalog();
            catalog.remove_role_member(role, user).await?;
            Ok(catalog.require_role(role).await?)
        }
        .await;
        self.audited("role.member.remove", &format!("{role} {user}"), result)
            .await
    }

    /// Every grant (administrators) or those of the principal's roles.
    pub async fn grants(&self) -> Result<Vec<Grant>> {
        let catalog = self.engine().catalog();
        if self.may(Action::Administer).await? {
            return Ok(catalog.grants().await?);
        }
        // From the access snapshot: a principal's few grants, not the catalog's every grant.
        let snapshot = catalog.access_snapshot().await?;
        let mut held: Vec<Grant> = snapshot.grants_of(self.principal()).cloned().collect();
        held.sort_by_cached_key(|g| {
            let column = g.column.clone().unwrap_or_default();
            (
                g.object.to_string(),
                g.grantee.clone(),
                g.privilege.to_string(),
                column,
            )
        });
        Ok(held)
    }

    /// Grants (or, with `revoke`, revokes) privileges on one object. UNMASK only by
    /// administrators.
    pub async fn change_grants(&self, grants: &[Grant], revoke: bool) -> Result<()> {
        let Some(first) = grants.first() else {
            return Err(ServiceError::Invalid("no grant given".into()));
        };
        let target = format!(
            "{} on {} {} {}",
            first.privilege,
            first.object,
            if revoke { "from" } else { "to" },
            first.grantee
        );
        let result = async {
            for g in grants {
                self.require_on(&g.object, Action::Grant(g.privilege, &g.object))
                    .await?;
            }
            let catalog = self.engine().catalog();
            for g in grants {
                if revoke {
                    catalog.revoke(g).await?;
                } else {
                    catalog.grant(g).await?;
                }
            }
            Ok(())
        }
        .await;
        self.audited(if revoke { "revoke" } else { "grant" }, &target, result)
            .await
    }

    /// The row filters on the tables the principal may manage (administrators: all), by table
    /// and grantee.
    pub async fn row_filters(&self) -> Result<Vec<RowFilter>> {
        let snapshot = self.engine().catalog().access_snapshot().await?;
        let p = self.principal();
        let all = self.engine().catalog().row_filters().await?;
        Ok(all
            .into_iter()
            .filter(|f| snapshot.may_manage(p, &Securable::table(&f.table)))
            .collect())
    }

    /// The column masks on the tables the principal may manage (administrators: all), by
    /// table, column and grantee.
    pub async fn masks(&self) -> Result<Vec<ColumnMask>> {
        let snapshot = self.engine().catalog().access_snapshot().await?;
        let p = self.principal();
        let all = self.engine().catalog().column_masks().await?;
        Ok(all
            .into_iter()
            .filter(|m| snapshot.may_manage(p, &Securable::table(&m.table)))
            .collect())
    }

    /// The tag keys and their allowed values, for those who tag: administrators and holders of
    /// MANAGE on something.
    pub async fn tag_keys(&self) -> Result<Vec<TagKey>> {
        let snapshot = self.engine().catalog().access_snapshot().await?;
        if !snapshot.manages_anything(self.principal()) {
            return Err(ServiceError::Denied(
                "permission denied: tag keys are listed for administrators and holders of MANAGE"
                    .into(),
            ));
        }
        Ok(self.engine().catalog().tag_keys().await?)
    }

    /// Sets a row filter, once it is shown to work on the table (MANAGE on the table).
    pub async fn set_row_filter(&self, filter: &RowFilter) -> Result<()> {
        let result = async {
            let object = Securable::table(&filter.table);
            self.require_on(&object, Action::Manage(&object)).await?;
            let expression = basin_sql::PolicyExpression::RowFilter(&filter.expression);
            basin_sql::check_policy_expression(self.engine(), &filter.table, expression).await?;
            Ok(self.engine().catalog().set_row_filter(filter).await?)
        }
        .await;
        self.audited("policy.row_filter.set", &filter.table.to_string(), result)
            .await
    }

    /// Drops a row filter (MANAGE on the table).
    pub async fn drop_row_filter(&self, table: &TableRef, grantee: &str) -> Result<()> {
        let result = async {
            let object = Securable::table(table);
            self.require_on(&object, Action::Manage(&object)).await?;
            Ok(self
                .engine()
                .catalog()
                .drop_row_filter(table, grantee)
                .await?)
        }
        .await;
        self.audited("policy.row_filter.drop", &table.to_string(), result)
            .await
    }

    /// Sets a column mask, once it is shown to work (MANAGE on the table; administrators only
    /// for PII columns: a mask sees the clear value).
    pub async fn set_mask(&self, mask: &ColumnMask) -> Result<()> {
        let result = async {
            self.require_mask(&mask.table, &mask.column).await?;
            let expression = basin_sql::PolicyExpression::Mask {
                column: &mask.column,
                mask: &mask.mask,
            };
            basin_sql::check_policy_expression(self.engine(), &mask.table, expression).await?;
            Ok(self.engine().catalog().set_column_mask(mask).await?)
        }
        .await;
        self.audited("policy.mask.set", &mask.table.to_string(), result)
            .await
    }

    /// Drops a column mask (as [`Session::set_mask`]).
    pub async fn drop_mask(&self, table: &TableRef, column: &str, grantee: &str) -> Result<()> {
        let result = async {
            self.require_mask(table, column).await?;
            Ok(self
                .engine()
                .catalog()
                .drop_column_mask(table, column, grantee)
                .await?)
        }
        .await;
        self.audited("policy.mask.drop", &table.to_string(), result)
            .await
    }

    async fn require_mask(&self, table: &TableRef, column: &str) -> Result<()> {
        let object = Securable::table(table);
        let (entry, _) = basin_sql::access::table_policy(self.engine(), table).await?;
        let pii = entry
            .columns
            .iter()
            .any(|c| c.name == column && entry.is_pii(c));
        self.require_on(
            &object,
            Action::Mask {
                table: &object,
                pii,
            },
        )
        .await
    }

    /// Defines a tag key and its allowed values (administrators).
    pub async fn define_tag(&self, key: &str, allowed_values: &[String]) -> Result<TagKey> {
        let result = async {
            self.require(Action::Administer).await?;
            Ok(self
                .engine()
                .catalog()
                .define_tag(key, allowed_values)
                .await?)
        }
        .await;
        self.audited("tag.define", key, result).await
    }

    /// Sets the tags of a dataset, table or column (MANAGE; tags that mark or unmark personal
    /// data: administrators). Columns that become PII — tagged themselves, or text columns of
    /// a table or dataset tagged `pii` — are encrypted at once, one commit per table; if that
    /// fails, the tags go back to what they were. Returns the (last) such commit's version.
    pub async fn set_tags(&self, a: &TagAssignment) -> Result<Option<i64>> {
        let target = format!(
            "{}{}",
            a.object,
            a.column
                .as_ref()
                .map(|c| format!(".{c}"))
                .unwrap_or_default()
        );
        let result = self.set_tags_unaudited(a).await;
        self.audited("tag.set", &target, result).await
    }

    async fn set_tags_unaudited(&self, a: &TagAssignment) -> Result<Option<i64>> {
        let catalog = self.engine().catalog();
        let object = Securable::parse(&a.object)?;
        self.require_on(&object, Action::Manage(&object)).await?;
        let table = match &object {
            Securable::Table {
                hub,
                dataset,
                table,
            } => Some(TableRef::new(hub, dataset, table)?),
            _ => None,
        };
        let before = match &table {
            Some(t) => Some(catalog.require_table(t).await?),
            None => None,
        };
        let tags_before: Vec<String> = match (&before, &a.column, &object) {
            (Some(t), Some(col), _) => t
                .columns
                .iter()
                .find(|x| &x.name == col)
                .map(|x| x.tags.clone())
                .unwrap_or_default(),
            (Some(t), None, _) => t.tags.clone(),
            (None, _, Securable::Dataset { hub, dataset }) => {
                catalog
                    .require_dataset(&basin_core::DatasetRef::new(hub, dataset)?)
                    .await?
                    .tags
            }
            _ => vec![],
        };
        let pii = is_pii(&a.tags) || is_pii(&tags_before);
        self.require_on(
            &object,
            Action::Tag {
                object: &object,
                pii,
            },
        )
        .await?;
        // The tables whose PII columns the tags may change (a column's, a table's, or every
        // table of a dataset: columns inherit `pii`), with their PII columns before.
        let affected = match (&object, &before) {
            (_, Some(t)) => vec![t.clone()],
            (Securable::Dataset { hub, dataset }, None) => {
                let mut tables = Vec::new();
                for t in catalog.tables(Some(hub), Some(dataset)).await? {
                    tables.push(catalog.require_table(&t.table_ref()).await?);
                }
                tables
            }
            _ => vec![],
        };
        catalog
            .set_tags(&object, a.column.as_deref(), &a.tags)
            .await?;
        let mut encrypted = None;
        for t in affected {
            let was = t.pii_columns();
            let newly_pii: Vec<String> = catalog
                .require_table(&t.table_ref())
                .await?
                .pii_columns()
                .into_iter()
                .filter(|c| !was.contains(c))
                .collect();
            if newly_pii.is_empty() {
                continue;
            }
            let write = Write::Protect { newly_pii };
            match self
                .engine()
                .tables()
                .commit(&self.engine().actor(), &t.table_ref(), write)
                .await
            {
                Ok(done) => encrypted = Some(done.version),
                Err(e) => {
                    catalog
                        .set_tags(&object, a.column.as_deref(), &tags_before)
                        .await?;
                    return Err(e.into());
                }
            }
        }
        Ok(encrypted)
    }

    /// Service tokens: the principal's own, or every one for administrators.
    pub async fn tokens(&self) -> Result<Vec<Token>> {
        let all = self.may(Action::Administer).await?;
        let owner = (!all).then_some(self.principal().name.as_str());
        Ok(self.engine().catalog().service_tokens(owner).await?)
    }

    /// Creates a service token for `owner` (the principal itself; administrators: anyone).
    /// Returns the secret, shown only now, and the stored record.
    pub async fn create_token(
        &self,
        name: &str,
        owner: Option<&str>,
        ttl_days: u64,
    ) -> Result<(String, Token)> {
        let result = async {
            let owner = owner.unwrap_or(&self.principal().name).to_string();
            if owner != self.principal().name {
                self.require(Action::Administer).await?;
            }
            let catalog = self.engine().catalog();
            if catalog.user(&owner).await?.is_none() {
                return Err(ServiceError::NotFound(format!("user '{owner}' not found")));
            }
            if ttl_days == 0 || ttl_days > MAX_TOKEN_DAYS {
                return Err(ServiceError::Invalid(format!(
                    "a token lives between 1 and {MAX_TOKEN_DAYS} days, not {ttl_days}"
                )));
            }
            let name = Name::parse("token", name)?.to_string();
            let ttl = Duration::from_secs(ttl_days * 86_400);
            issue_token(catalog, &owner, &name, TokenKind::Service, ttl).await
        }
        .await;
        self.audited("token.create", name, result).await
    }

    /// Revokes a token (its owner, or an administrator); someone else's token answers "not
    /// found".
    pub async fn revoke_token(&self, id: &str) -> Result<Token> {
        let result = async {
            let catalog = self.engine().catalog();
            let snapshot = catalog.access_snapshot().await?;
            let token = catalog
                .token(id)
                .await?
                .filter(|t| snapshot.may(self.principal(), Action::Token { owner: &t.owner }));
            if token.is_none() {
                return Err(ServiceError::NotFound(format!("token '{id}' not found")));
            }
            Ok(catalog.revoke_token(id).await?)
        }
        .await;
        self.audited("token.revoke", id, result).await
    }

    /// Rotates a hub's key and re-encrypts every table with PII under the new version, one
    /// commit each (administrators). Returns the new key version and the tables rewritten.
    pub async fn rotate_key(&self, hub: &str) -> Result<(u32, Vec<(String, i64)>)> {
        let result = async {
            self.require(Action::Administer).await?;
            let hub = Name::parse("hub", hub)?.to_string();
            let catalog = self.engine().catalog();
            catalog.require_hub(&hub).await?;
            let key = self.keystore.rotate(&hub)?;
            let mut rewritten = Vec::new();
            let actor = self.engine().actor();
            for t in catalog.tables(Some(&hub), None).await? {
                let write = Write::Protect { newly_pii: vec![] };
                let done = self
                    .engine()
                    .tables()
                    .commit(&actor, &t.table_ref(), write)
                    .await?;
                if !done.skipped {
                    rewritten.push((t.table_ref().to_string(), done.version));
                }
            }
            Ok((key.version(), rewritten))
        }
        .await;
        self.audited("key.rotate", hub, result).await
    }

    /// The audit log, oldest first, from `since` (administrators).
    pub async fn audit_events(&self, since: Option<&str>, limit: i64) -> Result<Vec<AuditEvent>> {
        self.require(Action::ReadAudit).await?;
        Ok(self
            .engine()
            .catalog()
            .audit_events(since, limit.clamp(1, 100_000))
            .await?)
    }
}

/// Grants of `privilege` on `object` to `grantee`, one per column (none: the whole object).
pub fn grants_of(
    privilege: Privilege,
    object: Securable,
    columns: &[String],
    grantee: &str,
    by: &str,
) -> Vec<Grant> {
    let columns: Vec<Option<String>> = if columns.is_empty() {
        vec![None]
    } else {
        columns.iter().cloned().map(Some).collect()
    };
    columns
        .into_iter()
        .map(|column| Grant {
            grantee: grantee.to_string(),
            privilege,
            object: object.clone(),
            column,
            granted_by: by.to_string(),
            granted_at: String::new(),
        })
        .collect()
}

/// How [`move_dir`] moved a directory.
#[derive(Debug, PartialEq, Eq)]
enum Moved {
    Renamed,
    Copied,
}

/// Moves the directory `from` to `to` (new or empty): a rename, or, across file systems, a
/// copy (removed again when it fails part way).
fn move_dir(from: &std::path::Path, to: &std::path::Path) -> Result<Moved> {
    let failed = |e: std::io::Error| {
        ServiceError::Invalid(format!(
            "cannot move {} to {}: {e}",
            from.display(),
            to.display()
        ))
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let _ = std::fs::remove_dir(to); // an empty directory, or nothing
    if std::fs::rename(from, to).is_ok() {
        return Ok(Moved::Renamed);
    }
    match copy_dir(from, to) {
        Ok(()) => Ok(Moved::Copied),
        Err(e) => {
            let _ = std::fs::remove_dir_all(to);
            Err(failed(e))
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
