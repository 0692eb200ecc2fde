//! Persistence of the access model: users, roles, grants, policies, tags, tokens, audit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use basin_core::{DatasetRef, Name, TableRef};
use sqlx::any::AnyRow;

use super::decision::AccessSnapshot;
use super::model::*;
use crate::error::DbContext;
use crate::store::{from_json, get, normalize_tags, now, to_json};
use crate::{Catalog, CatalogError, Result, Table};

/// The last loaded snapshot, reused while the catalog's access version is unchanged.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccessCache(Arc<Mutex<Option<Arc<AccessSnapshot>>>>);

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Catalog {
    async fn begin(&self) -> Result<Tx<'_>> {
        self.pool
            .begin()
            .await
            .ctx(|| "starting a catalog transaction".into())
    }

    /// Runs one change of the access model and bumps its version in the same transaction.
    async fn change<F>(&self, action: &str, f: F) -> Result<()>
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

    // ---- users and roles ----------------------------------------------------------------------

    /// Creates a user (with an already hashed password, or none for users who sign in through
    /// an identity provider).
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        attributes: &BTreeMap<String, String>,
    ) -> Result<User> {
        let name = Name::parse("user", name)?.to_string();
        check_attributes(attributes)?;
        if self.user(&name).await?.is_some() {
            return Err(CatalogError::AlreadyExists { kind: "user", name });
        }
        let (n, h, a) = (
            name.clone(),
            password_hash.map(str::to_string),
            to_json_map(attributes),
        );
        self.change("creating a user", move |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO users (name, password_hash, attributes, disabled, created_at) VALUES ($1, $2, $3, 0, $4)")
                    .bind(&n)
                    .bind(h)
                    .bind(a)
                    .bind(now())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| crate::store::unique_violation(e, "user", &n))?;
                Ok(())
            })
        })
        .await?;
        self.require_user(&name).await
    }

    /// The user, if any.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT name, password_hash, attributes, disabled, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading user '{name}'"))?;
        match row {
            Some(r) => Ok(Some(self.user_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    /// The user, or a not-found error.
    pub async fn require_user(&self, name: &str) -> Result<User> {
        self.user(name)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                kind: "user",
                name: name.to_string(),
                suggestion: None,
            })
    }

    /// All users, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT name, password_hash, attributes, disabled, created_at FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing users".into())?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.user_from_row(r).await?);
        }
        Ok(out)
    }

    async fn user_from_row(&self, r: &AnyRow) -> Result<User> {
        let name: String = get(r, "name")?;
        let roles = sqlx::query_as::<_, (String,)>(
            "SELECT role FROM role_members WHERE member = $1 ORDER BY role",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await
        .ctx(|| format!("reading the roles of '{name}'"))?;
        Ok(User {
            attributes: attributes_from_json(&get::<String>(r, "attributes")?)?,
            roles: roles.into_iter().map(|(r,)| r).collect(),
            disabled: get::<i64>(r, "disabled")? != 0,
            has_password: get::<Option<String>>(r, "password_hash")?.is_some(),
            created_at: get(r, "created_at")?,
            name,
        })
    }

    /// The stored password hash of an enabled user (for verification by the caller).
    pub async fn password_hash(&self, user: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE name = $1 AND disabled = 0")
                .bind(user)
                .fetch_optional(&self.pool)
                .await
                .ctx(|| format!("reading user '{user}'"))?;
        Ok(row.and_then(|(h,)| h))
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&self, user: &str, hash: &str) -> Result<()> {
        self.require_user(user).await?;
        let (u, h) = (user.to_string(), hash.to_string());
        self.change("setting a password", move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                    .bind(h)
                    .bind(u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a password".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Replaces a user's attributes.
    pub async fn set_user_attributes(
        &self,
        user: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        check_attributes(attributes)?;
        self.require_user(user).await?;
        let (u, a) = (user.to_string(), to_json_map(attributes));
        self.change("setting user attributes", move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE users SET attributes = $1 WHERE name = $2")
                    .bind(a)
                    .bind(u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting user attributes".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Enables or disables a user (a disabled user cannot sign in; its tokens stop working).
    pub async fn set_user_disabled(&self, user: &str, disabled: bool) -> Result<()> {
        self.require_user(user).await?;
        let u = user.to_string();
        self.change("disabling a user", move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
                    .bind(disabled as i64)
                    .bind(u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "disabling a user".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Creates a role.
    pub async fn create_role(&self, name: &str, description: &str) -> Result<Role> {
        let name = Name::parse("role", name)?.to_string();
        if self.role(&name).await?.is_some() {
            return Err(CatalogError::AlreadyExists { kind: "role", name });
        }
        let (n, d) = (name.clone(), description.to_string());
        self.change("creating a role", move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO roles (name, description, created_at) VALUES ($1, $2, $3)",
                )
                .bind(&n)
                .bind(d)
                .bind(now())
                .execute(&mut **tx)
                .await
                .map_err(|e| crate::store::unique_violation(e, "role", &n))?;
                Ok(())
            })
        })
        .await?;
        self.require_role(&name).await
    }

    /// The role, if any.
    pub async fn role(&self, name: &str) -> Result<Option<Role>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT name, description, created_at FROM roles WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .ctx(|| format!("reading role '{name}'"))?;
        let Some((name, description, created_at)) = row else {
            return Ok(None);
        };
        let members = sqlx::query_as::<_, (String,)>(
            "SELECT member FROM role_members WHERE role = $1 ORDER BY member",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await
        .ctx(|| format!("reading the members of '{name}'"))?;
        Ok(Some(Role {
            name,
            description,
            members: members.into_iter().map(|(m,)| m).collect(),
            created_at,
        }))
    }

    /// The role, or a not-found error.
    pub async fn require_role(&self, name: &str) -> Result<Role> {
        self.role(name)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                kind: "role",
                name: name.to_string(),
                suggestion: None,
            })
    }

    /// All roles, by name.
    pub async fn roles(&self) -> Result<Vec<Role>> {
        let names = sqlx::query_as::<_, (String,)>("SELECT name FROM roles ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .ctx(|| "listing roles".into())?;
        let mut out = Vec::new();
        for (n,) in names {
            out.extend(self.role(&n).await?);
        }
        Ok(out)
    }

    /// Makes sure the administrator `name` exists, as a member of the `admin` role (both
    /// created when missing, the user without a password). Safe to call from several processes.
    pub async fn ensure_admin(&self, name: &str) -> Result<()> {
        if self.role(ADMIN_ROLE).await?.is_none() {
            let created = self
                .create_role(ADMIN_ROLE, "administrators: every privilege everywhere")
                .await;
            if created.is_err() && self.role(ADMIN_ROLE).await?.is_none() {
                created?;
            }
        }
        if self.user(name).await?.is_none() {
            let created = self.create_user(name, None, &Default::default()).await;
            if created.is_err() && self.user(name).await?.is_none() {
                created?;
            }
        }
        if !self
            .access_snapshot()
            .await?
            .principal(name, &[])
            .is_admin()
        {
            self.add_role_member(ADMIN_ROLE, name).await?;
        }
        Ok(())
    }

    /// Makes `member` (a user) a member of `role`.
    pub async fn add_role_member(&self, role: &str, member: &str) -> Result<()> {
        self.require_role(role).await?;
        self.require_user(member).await?;
        let (r, m) = (role.to_string(), member.to_string());
        self.change("adding a role member", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM role_members WHERE role = $1 AND member = $2")
                    .bind(&r)
                    .bind(&m)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "adding a role member".into())?;
                sqlx::query("INSERT INTO role_members (role, member) VALUES ($1, $2)")
                    .bind(&r)
                    .bind(&m)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "adding a role member".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Removes `member` from `role`.
    pub async fn remove_role_member(&self, role: &str, member: &str) -> Result<()> {
        self.require_role(role).await?;
        let (r, m) = (role.to_string(), member.to_string());
        self.change("removing a role member", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM role_members WHERE role = $1 AND member = $2")
                    .bind(r)
                    .bind(m)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "removing a role member".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Checks that a grantee (user or role) exists.
    pub async fn require_grantee(&self, name: &str) -> Result<()> {
        if name == PUBLIC_ROLE
            || self.role(name).await?.is_some()
            || self.user(name).await?.is_some()
        {
            return Ok(());
        }
        Err(CatalogError::NotFound {
            kind: "user or role",
            name: name.to_string(),
            suggestion: None,
        })
    }

    // ---- grants -------------------------------------------------------------------------------

    /// Adds a grant (a no-op when it exists). The object must exist.
    pub async fn grant(&self, grant: &Grant) -> Result<()> {
        self.check_grant(grant).await?;
        let g = grant.clone();
        self.change("granting", move |tx| {
            Box::pin(async move {
                delete_grant(tx, &g).await?;
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
            })
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

    async fn require_column(&self, object: &Securable, column: &str) -> Result<()> {
        let Some(table) = self.require_object(object).await? else {
            return Ok(());
        };
        if table.columns.iter().any(|c| c.name == column) {
            return Ok(());
        }
        Err(crate::store::not_found(
            "column",
            &format!("{}.{column}", table.table_ref()),
            table.columns.iter().map(|c| c.name.as_str()),
        ))
    }

    // ---- row filters and masks ----------------------------------------------------------------

    /// Sets (replaces) the row filter of `grantee` on a table.
    pub async fn set_row_filter(&self, filter: &RowFilter) -> Result<()> {
        self.require_grantee(&filter.grantee).await?;
        self.require_table(&filter.table).await?;
        if filter.expression.trim().is_empty() {
            return Err(CatalogError::BadValue(
                "a row filter needs a SQL boolean expression".into(),
            ));
        }
        let f = filter.clone();
        self.change("setting a row filter", move |tx| {
            Box::pin(async move {
                let object = Securable::table(&f.table).to_string();
                sqlx::query("DELETE FROM row_filters WHERE object = $1 AND grantee = $2")
                    .bind(&object)
                    .bind(&f.grantee)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a row filter".into())?;
                sqlx::query(
                    "INSERT INTO row_filters (object, grantee, expression) VALUES ($1, $2, $3)",
                )
                .bind(&object)
                .bind(&f.grantee)
                .bind(&f.expression)
                .execute(&mut **tx)
                .await
                .ctx(|| "setting a row filter".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Removes the row filter of `grantee` on a table.
    pub async fn drop_row_filter(&self, table: &TableRef, grantee: &str) -> Result<()> {
        let (o, g) = (Securable::table(table).to_string(), grantee.to_string());
        self.change("dropping a row filter", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM row_filters WHERE object = $1 AND grantee = $2")
                    .bind(o)
                    .bind(g)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "dropping a row filter".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Every row filter.
    pub async fn row_filters(&self) -> Result<Vec<RowFilter>> {
        let rows = sqlx::query_as::<_, (String, String, String)>(
            "SELECT object, grantee, expression FROM row_filters ORDER BY object, grantee",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing row filters".into())?;
        rows.into_iter()
            .map(|(object, grantee, expression)| {
                Ok(RowFilter {
                    table: table_of(&object)?,
                    grantee,
                    expression,
                })
            })
            .collect()
    }

    /// Sets (replaces) the mask of a column for `grantee`.
    pub async fn set_column_mask(&self, mask: &ColumnMask) -> Result<()> {
        self.require_grantee(&mask.grantee).await?;
        let object = Securable::table(&mask.table);
        self.require_column(&object, &mask.column).await?;
        let m = mask.clone();
        self.change("setting a column mask", move |tx| {
            Box::pin(async move {
                let object = object.to_string();
                sqlx::query("DELETE FROM column_masks WHERE object = $1 AND column_name = $2 AND grantee = $3")
                    .bind(&object)
                    .bind(&m.column)
                    .bind(&m.grantee)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a column mask".into())?;
                sqlx::query("INSERT INTO column_masks (object, column_name, grantee, mask) VALUES ($1, $2, $3, $4)")
                    .bind(&object)
                    .bind(&m.column)
                    .bind(&m.grantee)
                    .bind(m.mask.to_string())
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a column mask".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Removes the mask of a column for `grantee`.
    pub async fn drop_column_mask(
        &self,
        table: &TableRef,
        column: &str,
        grantee: &str,
    ) -> Result<()> {
        let (o, c, g) = (
            Securable::table(table).to_string(),
            column.to_string(),
            grantee.to_string(),
        );
        self.change("dropping a column mask", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM column_masks WHERE object = $1 AND column_name = $2 AND grantee = $3")
                    .bind(o)
                    .bind(c)
                    .bind(g)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "dropping a column mask".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Every column mask.
    pub async fn column_masks(&self) -> Result<Vec<ColumnMask>> {
        let rows = sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT object, column_name, grantee, mask FROM column_masks ORDER BY object, column_name, grantee",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing column masks".into())?;
        rows.into_iter()
            .map(|(object, column, grantee, mask)| {
                Ok(ColumnMask {
                    table: table_of(&object)?,
                    column,
                    grantee,
                    mask: mask.parse()?,
                })
            })
            .collect()
    }

    // ---- tags ---------------------------------------------------------------------------------

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
    async fn check_tag(&self, key: &str, value: Option<&str>) -> Result<()> {
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
                Ok(())
            })
        })
        .await
    }

    // ---- tokens -------------------------------------------------------------------------------

    /// Stores a token (its secret only as a hash).
    pub async fn create_token(&self, token: &Token) -> Result<()> {
        sqlx::query("INSERT INTO tokens (id, name, owner, kind, secret_hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.owner)
            .bind(token.kind.as_str())
            .bind(&token.secret_hash)
            .bind(&token.created_at)
            .bind(&token.expires_at)
            .execute(&self.pool)
            .await
            .ctx(|| "storing a token".into())?;
        Ok(())
    }

    /// The token whose secret hashes to `secret_hash`, if any (revoked and expired included).
    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT id, name, owner, kind, secret_hash, created_at, expires_at, revoked_at FROM tokens WHERE secret_hash = $1")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| "reading a token".into())?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    /// Service tokens, of one owner or all.
    pub async fn service_tokens(&self, owner: Option<&str>) -> Result<Vec<Token>> {
        let rows = sqlx::query("SELECT id, name, owner, kind, secret_hash, created_at, expires_at, revoked_at FROM tokens WHERE kind = 'service' AND ($1 = '' OR owner = $1) ORDER BY created_at")
            .bind(owner.unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .ctx(|| "listing tokens".into())?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token by id. Errors when there is no such live token.
    pub async fn revoke_token(&self, id: &str) -> Result<Token> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await
                .ctx(|| "revoking a token".into())?;
        let row = sqlx::query("SELECT id, name, owner, kind, secret_hash, created_at, expires_at, revoked_at FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| "reading a token".into())?;
        match row {
            Some(r) if done.rows_affected() == 1 => token_from_row(&r),
            _ => Err(CatalogError::NotFound {
                kind: "token",
                name: id.to_string(),
                suggestion: None,
            }),
        }
    }

    /// The token with this id, if any.
    pub async fn token(&self, id: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT id, name, owner, kind, secret_hash, created_at, expires_at, revoked_at FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| "reading a token".into())?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    // ---- audit --------------------------------------------------------------------------------

    /// Appends an event to the audit log. There is no way to change or remove one.
    pub async fn audit(&self, event: &AuditEvent) -> Result<()> {
        let id = format!("{}-{:016x}", event.at, rand_u64());
        sqlx::query("INSERT INTO audit_log (id, at, principal, source, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(id)
            .bind(&event.at)
            .bind(&event.principal)
            .bind(&event.source)
            .bind(&event.action)
            .bind(&event.target)
            .bind(&event.outcome)
            .bind(&event.detail)
            .execute(&self.pool)
            .await
            .ctx(|| "writing the audit log".into())?;
        Ok(())
    }

    /// Audit events, oldest first, from `since` (an RFC 3339 time) on, at most `limit`.
    pub async fn audit_events(&self, since: Option<&str>, limit: i64) -> Result<Vec<AuditEvent>> {
        // Times are compared as text, as stored (UTC, `Z`): bring `since` to that form so that
        // an offset (`+02:00`) or a time without fraction compares by instant.
        let since = since.map(|s| match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Err(_) => s.to_string(),
        });
        let rows = sqlx::query_as::<_, (String, String, String, String, String, String, String)>(
            "SELECT at, principal, source, action, target, outcome, detail FROM audit_log WHERE at >= $1 ORDER BY at, id LIMIT $2",
        )
        .bind(since.unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(|| "reading the audit log".into())?;
        Ok(rows
            .into_iter()
            .map(
                |(at, principal, source, action, target, outcome, detail)| AuditEvent {
                    at,
                    principal,
                    source,
                    action,
                    target,
                    outcome,
                    detail,
                },
            )
            .collect())
    }
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

fn table_of(object: &str) -> Result<TableRef> {
    match Securable::parse(object)? {
        Securable::Table {
            hub,
            dataset,
            table,
        } => Ok(TableRef::new(&hub, &dataset, &table)?),
        other => Err(CatalogError::BadValue(format!(
            "corrupt policy object '{other}' in catalog"
        ))),
    }
}

fn token_from_row(r: &AnyRow) -> Result<Token> {
    let kind: String = get(r, "kind")?;
    Ok(Token {
        id: get(r, "id")?,
        name: get(r, "name")?,
        owner: get(r, "owner")?,
        kind: if kind == "session" {
            TokenKind::Session
        } else {
            TokenKind::Service
        },
        secret_hash: get(r, "secret_hash")?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        revoked_at: get(r, "revoked_at")?,
    })
}

fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<()> {
    for k in attributes.keys() {
        Name::parse("attribute", k)?;
    }
    Ok(())
}

fn to_json_map(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).expect("a map of strings always serializes")
}

fn attributes_from_json(s: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(s)
        .map_err(|e| CatalogError::BadValue(format!("corrupt attributes in catalog: {e}")))
}

/// A random number for ids, from the process's hasher seed and a counter (no extra crate).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}
