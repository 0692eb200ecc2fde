//! The REST API: one module per resource, each with typed request and response types, all of
//! them adapters over [`basin_service::Session`] (parse → session → render). This module holds
//! the router, the OpenAPI document, and the middleware (request ids, authentication, metrics,
//! audit of denials).

mod access_requests;
mod audit;
mod catalog;
mod grants;
mod keys;
mod login;
mod maintenance;
mod models;
mod policies;
mod queries;
pub(crate) mod query;
mod records;
mod search;
mod sources;
mod tables;
mod tags;
mod tokens;
mod users;

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use basin_core::TableRef;
use basin_service::{Page, Session};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::{State, auth};

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller of a request: its session.
#[derive(Clone)]
pub(crate) struct Caller {
    pub session: Session,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Basin REST API",
        description = "Hubs, datasets, tables, queries and governance of a Basin data hub. Every endpoint except /health and /api/v1/login needs `Authorization: Bearer <token>`. Listings are paged: `page_size` (1–1000, default 100) and the `next_page_token` of the previous page as `page_token`."
    ),
    paths(
        health,
        metrics,
        openapi,
        login::login,
        catalog::list_hubs,
        catalog::list_datasets,
        catalog::list_tables,
        tables::get_table,
        tables::table_history,
        tables::table_preview,
        tables::update_table,
        records::append_records,
        sources::list_sources,
        sources::add_source,
        sources::get_source,
        sources::remove_source,
        sources::run_source,
        sources::pause_source,
        sources::resume_source,
        models::plan_project,
        models::apply_project,
        models::list_models,
        models::run_model,
        models::model_runs,
        models::lineage,
        records::get_stream_settings,
        records::set_stream_settings,
        maintenance::optimize,
        maintenance::vacuum,
        maintenance::get_policy,
        maintenance::set_policy,
        catalog::update_hub,
        catalog::delete_hub,
        catalog::update_dataset,
        catalog::delete_dataset,
        tables::upload,
        query::query,
        users::list_users,
        users::create_user,
        users::set_user_attributes,
        users::set_password,
        users::disable_user,
        users::enable_user,
        users::list_roles,
        users::create_role,
        users::add_member,
        users::remove_member,
        grants::list_grants,
        grants::create_grant,
        grants::delete_grant,
        policies::list_row_filters,
        policies::set_row_filter,
        policies::drop_row_filter,
        policies::list_masks,
        policies::set_mask,
        policies::drop_mask,
        tags::list_tag_keys,
        tags::define_tag,
        tags::set_tags,
        tokens::list_tokens,
        tokens::create_token,
        tokens::revoke_token,
        audit::audit,
        keys::rotate_key,
        search::search,
        access_requests::create,
        access_requests::list,
        access_requests::approve,
        access_requests::deny,
        access_requests::cancel,
        queries::cancel_query,
        queries::query_history,
        queries::completion,
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

pub(crate) fn router(state: State) -> Router {
    const TABLE: &str = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}";
    let upload_limit = state.config.max_body_bytes;
    let authed = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/hubs", get(catalog::list_hubs))
        .route(
            "/api/v1/hubs/{hub}",
            patch(catalog::update_hub).delete(catalog::delete_hub),
        )
        .route("/api/v1/hubs/{hub}/datasets", get(catalog::list_datasets))
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}",
            patch(catalog::update_dataset).delete(catalog::delete_dataset),
        )
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables",
            get(catalog::list_tables),
        )
        .route(TABLE, get(tables::get_table).patch(tables::update_table))
        .route(&format!("{TABLE}/history"), get(tables::table_history))
        .route(&format!("{TABLE}/optimize"), post(maintenance::optimize))
        .route(&format!("{TABLE}/vacuum"), post(maintenance::vacuum))
        .route(
            &format!("{TABLE}/maintenance"),
            get(maintenance::get_policy).put(maintenance::set_policy),
        )
        .route(
            &format!("{TABLE}/preview"),
            // A preview is a query: it takes a query slot like one.
            get(tables::table_preview).layer(middleware::from_fn_with_state(
                state.clone(),
                crate::limits::hold_query_slot,
            )),
        )
        .route(
            &format!("{TABLE}/stream"),
            get(records::get_stream_settings).put(records::set_stream_settings),
        )
        .route(
            &format!("{TABLE}/records"),
            // Records are read whole (up to --max-body-mib) before they are decoded.
            post(records::append_records).layer(middleware::from_fn(move |r, n| {
                crate::limits::refuse_large_body(upload_limit, r, n)
            })),
        )
        .route(
            &format!("{TABLE}/files"),
            // Uploads stream to a staging file and count their bytes against --max-body-mib.
            post(tables::upload).layer(middleware::from_fn(move |r, n| {
                crate::limits::refuse_large_body(upload_limit, r, n)
            })),
        )
        .route("/api/v1/hubs/{hub}/keys/rotate", post(keys::rotate_key))
        .route(
            "/api/v1/sources",
            get(sources::list_sources).post(sources::add_source),
        )
        .route(
            "/api/v1/sources/{name}",
            get(sources::get_source).delete(sources::remove_source),
        )
        .route("/api/v1/sources/{name}/run", post(sources::run_source))
        .route("/api/v1/sources/{name}/pause", post(sources::pause_source))
        .route(
            "/api/v1/sources/{name}/resume",
            post(sources::resume_source),
        )
        .route("/api/v1/projects/plan", post(models::plan_project))
        .route("/api/v1/projects/apply", post(models::apply_project))
        .route("/api/v1/models", get(models::list_models))
        .route("/api/v1/models/{name}/run", post(models::run_model))
        .route("/api/v1/models/{name}/runs", get(models::model_runs))
        .route("/api/v1/lineage/{table}", get(models::lineage))
        .route("/api/v1/query", post(query::query))
        .route("/api/v1/queries/{id}", delete(queries::cancel_query))
        .route("/api/v1/queries/history", get(queries::query_history))
        .route("/api/v1/completion", get(queries::completion))
        .route(
            "/api/v1/users",
            get(users::list_users).post(users::create_user),
        )
        .route(
            "/api/v1/users/{user}/attributes",
            put(users::set_user_attributes),
        )
        .route("/api/v1/users/{user}/password", put(users::set_password))
        .route("/api/v1/users/{user}/disable", post(users::disable_user))
        .route("/api/v1/users/{user}/enable", post(users::enable_user))
        .route(
            "/api/v1/roles",
            get(users::list_roles).post(users::create_role),
        )
        .route("/api/v1/roles/{role}/members", post(users::add_member))
        .route(
            "/api/v1/roles/{role}/members/{user}",
            delete(users::remove_member),
        )
        .route(
            "/api/v1/grants",
            get(grants::list_grants)
                .post(grants::create_grant)
                .delete(grants::delete_grant),
        )
        .route(
            "/api/v1/policies/row-filters",
            get(policies::list_row_filters)
                .put(policies::set_row_filter)
                .delete(policies::drop_row_filter),
        )
        .route(
            "/api/v1/policies/masks",
            get(policies::list_masks)
                .put(policies::set_mask)
                .delete(policies::drop_mask),
        )
        .route("/api/v1/tags", get(tags::list_tag_keys).put(tags::set_tags))
        .route("/api/v1/tags/{key}", put(tags::define_tag))
        .route(
            "/api/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(tokens::revoke_token))
        .route("/api/v1/audit", get(audit::audit))
        .route("/api/v1/search", get(search::search))
        .route(
            "/api/v1/access-requests",
            get(access_requests::list).post(access_requests::create),
        )
        .route(
            "/api/v1/access-requests/{id}/approve",
            post(access_requests::approve),
        )
        .route(
            "/api/v1/access-requests/{id}/deny",
            post(access_requests::deny),
        )
        .route(
            "/api/v1/access-requests/{id}/cancel",
            post(access_requests::cancel),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // Login is unauthenticated: its body is refused beyond a few KiB before anything is read.
    let login_route = post(login::login)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::limits::LOGIN_BODY_LIMIT,
        ))
        .layer(middleware::from_fn(|r, n| {
            crate::limits::refuse_large_body(crate::limits::LOGIN_BODY_LIMIT, r, n)
        }));
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/login", login_route)
        .merge(authed)
        .merge(crate::portal::router())
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        // JSON bodies; the upload route reads its body itself, under its own limit.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::limits::JSON_BODY_LIMIT,
        ))
        .layer(middleware::from_fn(rejections_as_problems))
        .layer(middleware::from_fn(crate::limits::close_after_too_large))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

// ---- middleware ---------------------------------------------------------------------------------

/// Gives every request an id (kept from `x-request-id` when sane), logs it, counts it.
/// Refusals that axum makes itself — a path segment that is not text, a method the endpoint does
/// not take, a body over the limit of a handler that reads raw bytes — are plain text: under
/// `/api/` they become problem documents like every other refusal (their headers, such as
/// `Allow`, kept).
async fn rejections_as_problems(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !api || is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let detail = match (text.is_empty(), status) {
        (true, StatusCode::METHOD_NOT_ALLOWED) => {
            "this endpoint does not take this method; see /api/v1/openapi.json".to_string()
        }
        (true, _) => status.canonical_reason().unwrap_or("refused").to_string(),
        (false, _) => text,
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

async fn observe(AxState(state): AxState<State>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
            hex::encode(b)
        });
    request.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&id).expect("hex is a valid header"),
    );
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let micros = started.elapsed().as_micros() as u64;
    let status = response.status().as_u16();
    state.metrics.record(status, micros);
    // The one line of a request: never its body, query string or headers (tokens, SQL text
    // with personal data in its literals).
    let principal = response
        .extensions()
        .get::<Principal>()
        .map_or("anonymous", |p| p.0.as_str());
    let duration_ms = (micros as f64 / 100.0).round() / 10.0;
    tracing::info!(request_id = %id, %method, %path, status, duration_ms, principal, "request");
    response.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&id).expect("hex is a valid header"),
    );
    response
}

/// The name of a request's authenticated principal, handed back to [`observe`] for its log line.
#[derive(Clone)]
struct Principal(String);

/// Requires a valid bearer token (Basin token or OIDC JWT); audits denials.
async fn authenticate(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let source = addr.ip().to_string();
    let target = request.uri().path().to_string();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let caller = match identify(&state, authorization, &source).await {
        Ok(c) => c,
        Err(e) => {
            state
                .hub
                .audit(
                    "anonymous",
                    &source,
                    "request",
                    &target,
                    "denied",
                    json!({"status": e.status.as_u16()}),
                )
                .await;
            return e.into_response();
        }
    };
    let session = caller.session.clone();
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    response
        .extensions_mut()
        .insert(Principal(session.principal().name.clone()));
    if matches!(
        response.status(),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
    ) {
        session
            .audit(
                "request",
                &target,
                "denied",
                json!({"status": response.status().as_u16()}),
            )
            .await;
    }
    response
}

async fn identify(state: &State, authorization: Option<String>, source: &str) -> ApiResult<Caller> {
    let value = authorization.ok_or_else(|| {
        ApiError::unauthorized(
            "this endpoint needs 'Authorization: Bearer <token>'; sign in at POST /api/v1/login",
        )
    })?;
    let bearer = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
        })?;
    let catalog = state.hub.catalog();
    let identity = if bearer.starts_with(basin_service::credentials::TOKEN_PREFIX) {
        auth::check_token(catalog, bearer).await?
    } else if bearer.matches('.').count() == 2 {
        match &state.oidc {
            Some(o) => auth::admit_federated(catalog, o.check(bearer).await?).await?,
            None => {
                return Err(ApiError::unauthorized(
                    "this server does not accept JWTs (no OIDC provider is configured)",
                ));
            }
        }
    } else {
        return Err(ApiError::unauthorized(
            "the bearer token is invalid, expired or revoked; sign in again or create a new token",
        ));
    };
    let snapshot = catalog.access_snapshot().await?;
    let principal = snapshot.principal(&identity.name, &identity.extra_roles);
    Ok(Caller {
        session: state.hub.session(principal, source),
    })
}

// ---- shared -------------------------------------------------------------------------------------

#[utoipa::path(get, path = "/health", responses((status = 200, description = "The server is up")))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(AxState(state): AxState<State>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "This API's OpenAPI 3 document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub(crate) fn json_error(e: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as J;
    match e {
        J::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        J::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        J::JsonDataError(e) if unknown_field(&e.body_text(), "request body").is_some() => {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                unknown_field(&e.body_text(), "request body").unwrap_or_default(),
            )
        }
        J::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the JSON body does not fit: {}", e.body_text()),
        ),
        J::BytesRejection(e) => ApiError::new(e.status(), "body_unreadable", e.body_text()),
        other => ApiError::bad_request(other.body_text()),
    }
}

/// The problem detail for a body or query string with a field its endpoint does not take
/// (refused, not ignored: a misspelt field would silently fall back to a default), from
/// serde's "unknown field `x`, expected one of `a`, `b`".
fn unknown_field(text: &str, place: &str) -> Option<String> {
    let (_, rest) = text.split_once("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let rest = rest.split(" at line ").next().unwrap_or_default();
    let accepted: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let hint = match basin_core::closest(field, accepted.iter().copied()) {
        Some(near) => format!(" (did you mean '{near}'?)"),
        None => String::new(),
    };
    Some(if accepted.is_empty() {
        format!("unknown field '{field}' in the {place}: this endpoint takes no fields")
    } else {
        format!(
            "unknown field '{field}' in the {place}{hint}; the accepted fields are: {}",
            accepted.join(", ")
        )
    })
}

/// Extracts a JSON body with problem+json errors.
pub(crate) struct Body2<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body2<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state)
            .await
            .map_err(json_error)?;
        Ok(Body2(v))
    }
}

/// Extracts query parameters with problem+json errors; an unknown parameter is refused.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for Params<T>
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                let text = e.body_text();
                match unknown_field(&text, "query string") {
                    Some(detail) => ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", detail),
                    None => ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", text),
                }
            })?;
        Ok(Params(v))
    }
}

/// `page_size` and `page_token` of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Items per page (1–1000, default 100).
    page_size: Option<usize>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

impl From<PageParams> for Page {
    fn from(p: PageParams) -> Page {
        Page {
            size: p.page_size,
            token: p.page_token,
        }
    }
}

/// A table named in a path.
pub(crate) fn table_ref(hub: &str, dataset: &str, table: &str) -> ApiResult<TableRef> {
    TableRef::new(hub, dataset, table)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))
}

/// A table named `hub.dataset.table` (or `dataset.table`) in a body.
pub(crate) fn table_named(name: &str) -> ApiResult<TableRef> {
    TableRef::parse(name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))
}
