//! Service tokens: named, long-lived, revocable bearer tokens for programs.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::access::Token;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller};

/// A token as stored (never its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenView {
    id: String,
    name: String,
    owner: String,
    /// session or service.
    kind: String,
    created_at: String,
    expires_at: String,
    revoked_at: Option<String>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            owner: t.owner,
            kind: serde_json::to_value(t.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    /// Lifetime in days (default 90, at most 3650).
    ttl_days: Option<u64>,
    /// Administrators may create tokens for other users.
    owner: Option<String>,
}

/// A new token: its secret is shown only now.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenCreated {
    token: String,
    id: String,
    name: String,
    owner: String,
    expires_at: String,
}

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, description = "Service tokens (the caller's own; admins: all)", body = TokenList)))]
pub(crate) async fn list_tokens(Extension(c): Extension<Caller>) -> ApiResult<Json<TokenList>> {
    let tokens = c.session.tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, responses((status = 201, description = "The token's secret, shown once", body = TokenCreated)))]
pub(crate) async fn create_token(
    Extension(c): Extension<Caller>,
    Body2(t): Body2<NewToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (secret, token) = c
        .session
        .create_token(&t.name, t.owner.as_deref(), t.ttl_days.unwrap_or(90))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: secret,
            id: token.id,
            name: token.name,
            owner: token.owner,
            expires_at: token.expires_at,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)), responses((status = 200, description = "Revoked", body = TokenView)))]
pub(crate) async fn revoke_token(
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(c.session.revoke_token(&id).await?.into()))
}
