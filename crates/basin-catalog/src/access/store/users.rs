//! Users: name, password hash, attributes, enabled or not.

use std::collections::BTreeMap;

use basin_core::Name;
use sqlx::any::AnyRow;

use crate::access::model::*;
use crate::error::DbContext;
use crate::store::{get, now, unique_violation};
use crate::{Catalog, CatalogError, Result};

impl Catalog {
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
                    .map_err(|e| unique_violation(e, "user", &n))?;
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

    /// Replaces a user's password hash and, in the same transaction, revokes its session
    /// tokens and ends its portal sign-ins: they were signed in with the old password. Service
    /// tokens stay.
    pub async fn set_password_hash(&self, user: &str, hash: &str) -> Result<()> {
        self.require_user(user).await?;
        let (u, h) = (user.to_string(), hash.to_string());
        self.change("setting a password", move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                    .bind(h)
                    .bind(&u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a password".into())?;
                sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE owner = $2 AND kind = 'session' AND revoked_at IS NULL")
                    .bind(now())
                    .bind(&u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "ending the sessions of a new password's user".into())?;
                sqlx::query("DELETE FROM web_sessions WHERE user_name = $1")
                    .bind(&u)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "ending the portal sign-ins of a new password's user".into())?;
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

pub(super) fn attributes_from_json(s: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(s)
        .map_err(|e| CatalogError::BadValue(format!("corrupt attributes in catalog: {e}")))
}
