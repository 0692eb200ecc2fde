//! `POST /api/v1/login`: a user name and password for a session token.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::StatusCode;
use basin_catalog::access::TokenKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiResult, json_error};
use crate::error::ApiError;
use crate::{State, auth};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    user: String,
    password: String,
}

/// A session token.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoginResponse {
    /// The bearer token; shown only now.
    token: String,
    expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, description = "A session token", body = LoginResponse), (status = 401, description = "Wrong user or password", body = crate::error::Problem),
              (status = 413, description = "Body over 4 KiB", body = crate::error::Problem), (status = 429, description = "Too many failed logins", body = crate::error::Problem)))]
pub(crate) async fn login(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<LoginResponse>> {
    let Json(req) = body.map_err(json_error)?;
    // Checked before the catalog or the audit log see the name: they would store it whole.
    if req.user.len() > crate::limits::MAX_USER_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "'user' is {} bytes long; a user name has at most {} bytes",
            req.user.len(),
            crate::limits::MAX_USER_NAME_BYTES
        )));
    }
    let ip = addr.ip();
    let source = ip.to_string();
    let audit = |outcome: &'static str, detail: serde_json::Value| {
        let (state, user, source) = (state.clone(), req.user.clone(), source.clone());
        async move {
            state
                .hub
                .audit(&user, &source, "login", &user, outcome, detail)
                .await
        }
    };
    if let Some(wait) = state.limiter.locked(&req.user, ip) {
        audit("denied", json!({"reason": "rate limited"})).await;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed logins for this user from this address; try again in {wait} s"
            ),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    let hash = state.hub.catalog().password_hash(&req.user).await?;
    let ok = auth::verify_login(&state.hash_slots, req.password.clone(), hash).await?;
    if !ok {
        state.limiter.failed(&req.user, ip);
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit("denied", json!({})).await;
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    state.limiter.succeeded(&req.user, ip);
    let (secret, token) = basin_service::credentials::issue_token(
        state.hub.catalog(),
        &req.user,
        "session",
        TokenKind::Session,
        state.config.session_ttl,
    )
    .await?;
    audit("ok", json!({"token_id": token.id})).await;
    Ok(Json(LoginResponse {
        token: secret,
        expires_at: token.expires_at,
    }))
}
