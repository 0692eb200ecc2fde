//! Roles and their members.

use basin_core::Name;

use crate::access::model::*;
use crate::error::DbContext;
use crate::store::{now, unique_violation};
use crate::{Catalog, CatalogError, Result};

impl Catalog {
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
                .map_err(|e| unique_violation(e, "role", &n))?;
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
}
