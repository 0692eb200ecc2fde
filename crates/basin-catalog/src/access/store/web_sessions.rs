//! Portal sign-ins (web sessions), stored by the hash of their id. Expiry is compared as text:
//! every timestamp here has the one fixed format of [`now`] (UTC, milliseconds).

use crate::access::model::WebSession;
use crate::error::DbContext;
use crate::store::{from_json, get, now, to_json};
use crate::{Catalog, Result};

/// The timestamp format of the table (sortable as text).
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Catalog {
    /// Stores a new web session lasting `ttl`, and forgets the expired ones.
    pub async fn create_web_session(
        &self,
        id_hash: &str,
        user: &str,
        roles: &[String],
        csrf_token: &str,
        ttl: std::time::Duration,
    ) -> Result<WebSession> {
        let created = chrono::Utc::now();
        let expires =
            created + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
        let session = WebSession {
            id_hash: id_hash.to_string(),
            user: user.to_string(),
            roles: roles.to_vec(),
            csrf_token: csrf_token.to_string(),
            created_at: stamp(created),
            expires_at: stamp(expires),
        };
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now())
            .execute(&self.pool)
            .await
            .ctx(|| "forgetting expired web sessions".into())?;
        sqlx::query("INSERT INTO web_sessions (id_hash, user_name, roles, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&session.id_hash)
            .bind(&session.user)
            .bind(to_json(&session.roles))
            .bind(&session.csrf_token)
            .bind(&session.created_at)
            .bind(&session.expires_at)
            .execute(&self.pool)
            .await
            .ctx(|| "storing a web session".into())?;
        Ok(session)
    }

    /// The live (unexpired) web session whose id hashes to `id_hash`.
    pub async fn web_session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        let row = sqlx::query("SELECT id_hash, user_name, roles, csrf_token, created_at, expires_at FROM web_sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now())
            .fetch_optional(&self.pool)
            .await
            .ctx(|| "reading a web session".into())?;
        row.map(|r| {
            Ok(WebSession {
                id_hash: get(&r, "id_hash")?,
                user: get(&r, "user_name")?,
                roles: from_json(&get::<String>(&r, "roles")?)?,
                csrf_token: get(&r, "csrf_token")?,
                created_at: get(&r, "created_at")?,
                expires_at: get(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a web session (sign-out): its cookie is worthless afterwards.
    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .ctx(|| "deleting a web session".into())?;
        Ok(())
    }
}
