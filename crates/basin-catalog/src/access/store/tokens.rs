//! Tokens: session and service tokens, stored by the hash of their secret.

use sqlx::any::AnyRow;

use crate::access::model::*;
use crate::error::DbContext;
use crate::store::{get, now};
use crate::{Catalog, CatalogError, Result};

impl Catalog {
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

    /// The user that the token whose secret hashes to `secret_hash` signs in, if the token
    /// is live (neither revoked nor expired) and its user exists and is enabled. One query: it
    /// runs for every request.
    pub async fn token_user(&self, secret_hash: &str) -> Result<Option<String>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT t.owner, t.expires_at FROM tokens t JOIN users u ON u.name = t.owner WHERE t.secret_hash = $1 AND t.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .ctx(|| "reading a token".into())?;
        Ok(row.and_then(|(owner, expires_at)| {
            // Unreadable expiry: treated as expired.
            let live = chrono::DateTime::parse_from_rfc3339(&expires_at)
                .is_ok_and(|t| t > chrono::Utc::now());
            live.then_some(owner)
        }))
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
