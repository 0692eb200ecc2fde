//! Routes, middleware (request ids, authentication, metrics, audit of denials) and handlers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use basin_catalog::access::{
    Action, AuditEvent, ColumnMask, Grant, Principal, Privilege, RowFilter, Securable, TokenKind,
    is_pii,
};
use basin_core::{Name, TableRef};
use basin_sql::Engine;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::{State, auth};

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The authenticated caller of a request.
#[derive(Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    /// The SQL engine acting as the principal.
    pub engine: Engine,
    pub source: String,
}

impl Caller {
    /// Whether the caller may take an action, as the catalog's one decision answers it.
    async fn allowed(&self, action: Action<'_>) -> ApiResult<bool> {
        let snapshot = self.engine.catalog().access_snapshot().await?;
        Ok(snapshot.may(&self.principal, action))
    }

    /// Fails with 403 unless the caller may take an action that concerns no single object.
    async fn require(&self, action: Action<'_>) -> ApiResult<()> {
        if self.allowed(action).await? {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "permission denied: this needs the admin role",
            ))
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Basin REST API",
        description = "Hubs, datasets, tables, queries and governance of a Basin data hub. Every endpoint except /health and /api/v1/login needs `Authorization: Bearer <token>`."
    ),
    paths(
        health,
        login,
        list_hubs,
        list_datasets,
        list_tables,
        get_table,
        table_history,
        table_preview,
        upload,
        crate::query::query,
        list_users,
        create_user,
        set_user_attributes,
        list_roles,
        create_role,
        add_member,
        remove_member,
        list_grants,
        create_grant,
        delete_grant,
        set_row_filter,
        drop_row_filter,
        set_mask,
        drop_mask,
        define_tag,
        set_tags,
        list_tokens,
        create_token,
        revoke_token,
        audit,
        rotate_key,
        metrics,
        openapi
    ),
    components(schemas(
        crate::error::Problem,
        LoginRequest,
        GrantRequest,
        crate::query::QueryRequest
    ))
)]
struct ApiDoc;

pub(crate) fn router(state: State) -> Router {
    let upload_limit = state.config.max_body_bytes;
    let authed = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/hubs", get(list_hubs))
        .route("/api/v1/hubs/{hub}/datasets", get(list_datasets))
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables",
            get(list_tables),
        )
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}",
            get(get_table),
        )
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/history",
            get(table_history),
        )
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/preview",
            get(table_preview).layer(middleware::from_fn_with_state(
                state.clone(),
                crate::limits::hold_query_slot,
            )),
        )
        .route(
            "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/files",
            // Uploads stream to a staging file and count their bytes against --max-body-mib.
            post(upload).layer(middleware::from_fn(move |r, n| {
                crate::limits::refuse_large_body(upload_limit, r, n)
            })),
        )
        .route("/api/v1/hubs/{hub}/keys/rotate", post(rotate_key))
        .route("/api/v1/query", post(crate::query::query))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{user}/attributes", put(set_user_attributes))
        .route("/api/v1/roles", get(list_roles).post(create_role))
        .route("/api/v1/roles/{role}/members", post(add_member))
        .route("/api/v1/roles/{role}/members/{user}", delete(remove_member))
        .route(
            "/api/v1/grants",
            get(list_grants).post(create_grant).delete(delete_grant),
        )
        .route(
            "/api/v1/policies/row-filters",
            put(set_row_filter).delete(drop_row_filter),
        )
        .route("/api/v1/policies/masks", put(set_mask).delete(drop_mask))
        .route("/api/v1/tags", put(set_tags))
        .route("/api/v1/tags/{key}", put(define_tag))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/audit", get(audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // Login is unauthenticated: its body is refused beyond a few KiB before anything is read.
    let login_route = post(login)
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
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        // JSON bodies; the upload route reads its body itself, under its own limit.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::limits::JSON_BODY_LIMIT,
        ))
        .layer(middleware::from_fn(crate::limits::close_after_too_large))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

// ---- middleware ---------------------------------------------------------------------------------

/// Gives every request an id (kept from `x-request-id` when sane), logs it, counts it.
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
    state.metrics.record(response.status().as_u16(), micros);
    tracing::info!(request_id = %id, %method, %path, status = response.status().as_u16(), micros, "request");
    response.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&id).expect("hex is a valid header"),
    );
    response
}

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
            audit_event(
                &state,
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
    let name = caller.principal.name.clone();
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if matches!(
        response.status(),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
    ) {
        audit_event(
            &state,
            &name,
            &source,
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
    let identity = if bearer.starts_with(auth::TOKEN_PREFIX) {
        auth::check_token(&state.catalog, bearer).await?
    } else if bearer.matches('.').count() == 2 {
        match &state.oidc {
            Some(o) => auth::admit_federated(&state.catalog, o.check(bearer).await?).await?,
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
    let snapshot = state.catalog.access_snapshot().await?;
    let principal = snapshot.principal(&identity.name, &identity.extra_roles);
    Ok(Caller {
        engine: state
            .engine
            .as_principal(principal.clone())
            .with_origin(source),
        principal,
        source: source.to_string(),
    })
}

/// Appends to the audit log; a failure to audit is logged (the request has already happened).
pub(crate) async fn audit_event(
    state: &State,
    principal: &str,
    source: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: Value,
) {
    let event = AuditEvent {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        principal: principal.to_string(),
        source: source.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
    };
    if let Err(e) = state.catalog.audit(&event).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

async fn audited<T>(
    state: &State,
    caller: &Caller,
    action: &str,
    target: &str,
    result: ApiResult<T>,
) -> ApiResult<T> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {
            "denied"
        }
        Err(_) => "error",
    };
    let detail = match &result {
        Err(e) => json!({"error": e.detail}),
        Ok(_) => json!({}),
    };
    audit_event(
        state,
        &caller.principal.name,
        &caller.source,
        action,
        target,
        outcome,
        detail,
    )
    .await;
    result
}

// ---- handlers -----------------------------------------------------------------------------------

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

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginRequest {
    user: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, description = "A session token"), (status = 401, description = "Wrong user or password", body = crate::error::Problem), (status = 429, description = "Too many failed logins")))]
async fn login(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
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
    if let Some(wait) = state.limiter.locked(&req.user, ip) {
        audit_event(
            &state,
            &req.user,
            &source,
            "login",
            &req.user,
            "denied",
            json!({"reason": "rate limited"}),
        )
        .await;
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
    let hash = state.catalog.password_hash(&req.user).await?;
    let ok = auth::verify_login(&state.hash_slots, req.password.clone(), hash).await?;
    if !ok {
        state.limiter.failed(&req.user, ip);
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit_event(
            &state,
            &req.user,
            &source,
            "login",
            &req.user,
            "denied",
            json!({}),
        )
        .await;
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    state.limiter.succeeded(&req.user, ip);
    let (secret, token) = auth::issue_token(
        &state.catalog,
        &req.user,
        "session",
        TokenKind::Session,
        state.config.session_ttl,
    )
    .await?;
    audit_event(
        &state,
        &req.user,
        &source,
        "login",
        &req.user,
        "ok",
        json!({"token_id": token.id}),
    )
    .await;
    Ok(Json(
        json!({"token": secret, "expires_at": token.expires_at}),
    ))
}

fn json_error(e: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as J;
    match e {
        J::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        J::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        J::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the JSON body does not fit: {}", e.body_text()),
        ),
        J::BytesRejection(e) => ApiError::new(e.status(), "body_unreadable", e.body_text()),
        other => ApiError::bad_request(other.body_text()),
    }
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

/// Runs SQL as the caller and returns rows as JSON objects.
async fn rows_json(engine: &Engine, sql: &str) -> ApiResult<Vec<Value>> {
    let out = engine.execute(sql).await?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for b in &out.batches {
        writer
            .write(b)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))
}

fn name(kind: &'static str, s: &str) -> ApiResult<String> {
    Ok(Name::parse(kind, s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?
        .to_string())
}

#[utoipa::path(get, path = "/api/v1/hubs", responses((status = 200, description = "Hubs the caller may see")))]
async fn list_hubs(Extension(c): Extension<Caller>) -> ApiResult {
    let hubs: Vec<Value> = basin_sql::access::visible(&c.engine, None, None)
        .await?
        .hubs
        .iter()
        .map(|h| json!({"name": h.name, "description": h.description, "created_at": h.created_at}))
        .collect();
    Ok(Json(json!({ "hubs": hubs })))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets", params(("hub" = String, Path)), responses((status = 200, description = "Datasets the caller may see")))]
async fn list_datasets(Extension(c): Extension<Caller>, Path(hub): Path<String>) -> ApiResult {
    let hub = name("hub", &hub)?;
    let seen = basin_sql::access::visible(&c.engine, Some(&hub), None).await?;
    if seen.hubs.is_empty() {
        return Err(ApiError::not_found(format!("hub '{hub}' not found")));
    }
    let datasets: Vec<Value> = seen
        .datasets
        .iter()
        .map(|d| {
            json!({"name": d.name, "layer": d.layer.to_string(), "domain": d.domain, "owner": d.owner,
                   "description": d.description, "tags": d.tags, "update_frequency": d.contract.update_frequency,
                   "support_contact": d.contract.support_contact, "created_at": d.created_at, "updated_at": d.updated_at})
        })
        .collect();
    Ok(Json(json!({ "datasets": datasets })))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables", params(("hub" = String, Path), ("dataset" = String, Path)), responses((status = 200, description = "Tables the caller may see")))]
async fn list_tables(
    Extension(c): Extension<Caller>,
    Path((hub, dataset)): Path<(String, String)>,
) -> ApiResult {
    let (hub, dataset) = (name("hub", &hub)?, name("dataset", &dataset)?);
    let seen = basin_sql::access::visible(&c.engine, Some(&hub), Some(&dataset)).await?;
    if seen.datasets.is_empty() {
        return Err(ApiError::not_found(format!(
            "dataset '{hub}.{dataset}' not found"
        )));
    }
    let tables: Vec<Value> = seen
        .tables
        .iter()
        .map(|(t, _)| {
            json!({"name": t.name, "description": t.description, "primary_key": t.primary_key,
                   "partition_columns": t.partition_columns, "tags": t.tags, "created_at": t.created_at,
                   "updated_at": t.updated_at})
        })
        .collect();
    Ok(Json(json!({ "tables": tables })))
}

fn table_ref(hub: &str, dataset: &str, table: &str) -> ApiResult<TableRef> {
    TableRef::new(hub, dataset, table)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "Schema (visible columns), statistics, privileges"), (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
async fn get_table(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult {
    let t = table_ref(&hub, &dataset, &table)?;
    let (entry, policy, stats) = basin_sql::access::table_details(&c.engine, &t).await?;
    let columns: Vec<Value> = policy
        .columns
        .iter()
        .filter_map(|p| entry.columns.iter().find(|c| c.name == p.name).map(|col| (p, col)))
        .map(|(p, col)| {
            json!({"name": col.name, "type": col.data_type, "nullable": col.nullable, "description": col.description,
                   "tags": col.tags, "pii": p.pii, "masked": p.mask.is_some() || (p.pii && !p.clear)})
        })
        .collect();
    Ok(Json(json!({
        "hub": entry.hub, "dataset": entry.dataset, "name": entry.name, "description": entry.description,
        "tags": entry.tags, "primary_key": entry.primary_key, "partition_columns": entry.partition_columns,
        "columns": columns, "privileges": policy.privileges, "row_filtered": policy.row_filter.is_some(),
        "stats": stats,
        "created_at": entry.created_at, "updated_at": entry.updated_at,
    })))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/history", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), responses((status = 200, description = "Commits, newest first")))]
async fn table_history(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult {
    let t = table_ref(&hub, &dataset, &table)?;
    let commits = basin_sql::access::table_history(&c.engine, &t, None).await?;
    let commits: Vec<Value> = commits
        .into_iter()
        .map(|c| json!({"version": c.version, "timestamp": c.timestamp.map(|t| t.to_rfc3339()), "operation": c.operation, "parameters": c.parameters}))
        .collect();
    Ok(Json(json!({"history": commits})))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct PreviewParams {
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/preview", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path), PreviewParams), responses((status = 200, description = "The first rows, as the caller may see them")))]
async fn table_preview(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Query(p): Query<PreviewParams>,
) -> ApiResult {
    let t = table_ref(&hub, &dataset, &table)?;
    let limit = p.limit.unwrap_or(20).min(1000);
    let rows = rows_json(
        &c.engine,
        &format!(
            "SELECT * FROM \"{}\".\"{}\".\"{}\" LIMIT {limit}",
            t.hub, t.dataset, t.table
        ),
    )
    .await?;
    Ok(Json(json!({"rows": rows})))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct UploadParams {
    /// csv, json, ndjson or parquet (optionally with .gz / .zst, e.g. csv.gz).
    format: String,
    /// append (default), overwrite or upsert.
    mode: Option<String>,
    /// Match key of an upsert (comma-separated).
    key: Option<String>,
    load_id: Option<String>,
    max_bad_rows: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/files", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path), UploadParams),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses((status = 200, description = "Load report"), (status = 400, description = "Bad file", body = crate::error::Problem)))]
async fn upload(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Query(p): Query<UploadParams>,
    body: Body,
) -> ApiResult {
    let t = table_ref(&hub, &dataset, &table)?;
    let result = upload_inner(&state, &c, &t, p, body).await;
    audited(&state, &c, "write", &t.to_string(), result).await
}

async fn upload_inner(
    state: &State,
    c: &Caller,
    t: &TableRef,
    p: UploadParams,
    body: Body,
) -> ApiResult {
    use basin_ingest::{LoadMode, LoadRequest};
    const FORMATS: &[&str] = &[
        "csv",
        "json",
        "ndjson",
        "parquet",
        "csv.gz",
        "csv.zst",
        "json.gz",
        "json.zst",
        "ndjson.gz",
        "ndjson.zst",
    ];
    if !FORMATS.contains(&p.format.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown format '{}': use one of {}",
            p.format,
            FORMATS.join(", ")
        )));
    }
    let mode = match p.mode.as_deref().unwrap_or("append") {
        "append" => LoadMode::Append,
        "overwrite" => LoadMode::Overwrite(None),
        "upsert" => LoadMode::Upsert,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown mode '{other}': use append, overwrite or upsert"
            )));
        }
    };
    // Decided before the body is read; the load decides again as it commits.
    let actor = c.engine.actor();
    basin_ingest::check_load(c.engine.tables(), &actor, t, &mode).await?;
    let dir = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
    let path = dir.path().join(format!("upload.{}", p.format));
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the upload could not be read: {e}"),
            )
        })?;
        bytes += chunk.len() as u64;
        if bytes > state.config.max_body_bytes as u64 {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the upload is larger than the server's limit of {} bytes (--max-body-mib)",
                    state.config.max_body_bytes
                ),
            ));
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if bytes == 0 {
        return Err(ApiError::bad_request(
            "the upload is empty: send the file's bytes as the request body",
        ));
    }
    let request = LoadRequest {
        table: Some(t.clone()),
        inputs: vec![path.display().to_string()],
        mode,
        key: p
            .key
            .map(|k| k.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        max_bad_rows: p.max_bad_rows.unwrap_or(0),
        load_id: p.load_id,
        ..Default::default()
    };
    // The load runs to its end even if the client goes away or the server shuts down.
    let tables = c.engine.tables().clone();
    let report = tokio::spawn(async move {
        basin_ingest::load(&tables, &actor, request, Default::default()).await
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    state
        .metrics
        .uploads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(
        json!({"table": t.to_string(), "bytes": bytes, "rows": report.rows, "bad_rows": report.bad_rows, "version": report.version, "skipped": report.skipped}),
    ))
}

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/keys/rotate", params(("hub" = String, Path)), responses((status = 200, description = "New key version; tables re-encrypted")))]
async fn rotate_key(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(hub): Path<String>,
) -> ApiResult {
    let result = async {
        c.require(Action::Administer).await?;
        let hub = name("hub", &hub)?;
        state.catalog.require_hub(&hub).await?;
        let key = state.keystore.rotate(&hub)?;
        let mut tables = Vec::new();
        let actor = c.engine.actor();
        for t in state.catalog.tables(Some(&hub), None).await? {
            let write = basin_tables::Write::Protect { newly_pii: vec![] };
            let done = c
                .engine
                .tables()
                .commit(&actor, &t.table_ref(), write)
                .await?;
            if !done.skipped {
                tables.push(json!({"table": t.table_ref().to_string(), "version": done.version}));
            }
        }
        Ok(Json(
            json!({"hub": hub, "key_version": key.version(), "reencrypted": tables}),
        ))
    }
    .await;
    audited(&state, &c, "key.rotate", &hub, result).await
}

// ---- users, roles, grants, policies, tags, tokens, audit ------------------------------------------

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, description = "Users (admins only)")))]
async fn list_users(AxState(state): AxState<State>, Extension(c): Extension<Caller>) -> ApiResult {
    c.require(Action::Administer).await?;
    Ok(Json(json!({"users": state.catalog.users().await?})))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    password: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    roles: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/users", responses((status = 201, description = "The user")))]
async fn create_user(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(u): Body2<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let target = u.name.clone();
    let result = async {
        c.require(Action::Administer).await?;
        let hash = u
            .password
            .as_deref()
            .map(auth::hash_password)
            .transpose()
            .map_err(ApiError::bad_request)?;
        for r in &u.roles {
            state.catalog.require_role(r).await?;
        }
        state
            .catalog
            .create_user(&u.name, hash.as_deref(), &u.attributes)
            .await?;
        for r in &u.roles {
            state.catalog.add_role_member(r, &u.name).await?;
        }
        Ok((
            StatusCode::CREATED,
            Json(json!(state.catalog.require_user(&u.name).await?)),
        ))
    }
    .await;
    audited(&state, &c, "user.create", &target, result).await
}

#[utoipa::path(put, path = "/api/v1/users/{user}/attributes", params(("user" = String, Path)), responses((status = 200, description = "The user")))]
async fn set_user_attributes(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(user): Path<String>,
    Body2(attrs): Body2<BTreeMap<String, String>>,
) -> ApiResult {
    let result = async {
        c.require(Action::Administer).await?;
        state.catalog.set_user_attributes(&user, &attrs).await?;
        Ok(Json(json!(state.catalog.require_user(&user).await?)))
    }
    .await;
    audited(&state, &c, "user.attributes", &user, result).await
}

#[utoipa::path(get, path = "/api/v1/roles", responses((status = 200, description = "Roles (admins only)")))]
async fn list_roles(AxState(state): AxState<State>, Extension(c): Extension<Caller>) -> ApiResult {
    c.require(Action::Administer).await?;
    Ok(Json(json!({"roles": state.catalog.roles().await?})))
}

#[derive(Deserialize)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/api/v1/roles", responses((status = 201, description = "The role")))]
async fn create_role(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(r): Body2<NewRole>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let target = r.name.clone();
    let result = async {
        c.require(Action::Administer).await?;
        Ok((
            StatusCode::CREATED,
            Json(json!(
                state.catalog.create_role(&r.name, &r.description).await?
            )),
        ))
    }
    .await;
    audited(&state, &c, "role.create", &target, result).await
}

#[derive(Deserialize)]
struct Member {
    user: String,
}

#[utoipa::path(post, path = "/api/v1/roles/{role}/members", params(("role" = String, Path)), responses((status = 200, description = "The role")))]
async fn add_member(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(role): Path<String>,
    Body2(m): Body2<Member>,
) -> ApiResult {
    let result = async {
        c.require(Action::Administer).await?;
        state.catalog.add_role_member(&role, &m.user).await?;
        Ok(Json(json!(state.catalog.require_role(&role).await?)))
    }
    .await;
    audited(
        &state,
        &c,
        "role.member.add",
        &format!("{role} {}", m.user),
        result,
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/roles/{role}/members/{user}", params(("role" = String, Path), ("user" = String, Path)), responses((status = 200, description = "The role")))]
async fn remove_member(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path((role, user)): Path<(String, String)>,
) -> ApiResult {
    let result = async {
        c.require(Action::Administer).await?;
        state.catalog.remove_role_member(&role, &user).await?;
        Ok(Json(json!(state.catalog.require_role(&role).await?)))
    }
    .await;
    audited(
        &state,
        &c,
        "role.member.remove",
        &format!("{role} {user}"),
        result,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/grants", responses((status = 200, description = "All grants (admins) or the caller's own")))]
async fn list_grants(AxState(state): AxState<State>, Extension(c): Extension<Caller>) -> ApiResult {
    let all = c.allowed(Action::Administer).await?;
    let grants: Vec<Grant> = state
        .catalog
        .grants()
        .await?
        .into_iter()
        .filter(|g| all || c.principal.roles.contains(&g.grantee))
        .collect();
    Ok(Json(json!({"grants": grants})))
}

/// A grant in a request: `object` is `hub NAME`, `dataset HUB.NAME`, `table HUB.DATASET.NAME` or
/// `tag KEY=VALUE|VALUE`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct GrantRequest {
    privilege: String,
    object: String,
    #[serde(default)]
    columns: Vec<String>,
    grantee: String,
}

impl GrantRequest {
    fn grants(&self, by: &str) -> ApiResult<Vec<Grant>> {
        let privilege: Privilege = self.privilege.parse()?;
        let object = Securable::parse(&self.object)?;
        let columns: Vec<Option<String>> = if self.columns.is_empty() {
            vec![None]
        } else {
            self.columns.iter().cloned().map(Some).collect()
        };
        Ok(columns
            .into_iter()
            .map(|column| Grant {
                grantee: self.grantee.clone(),
                privilege,
                object: object.clone(),
                column,
                granted_by: by.to_string(),
                granted_at: String::new(),
            })
            .collect())
    }
}

#[utoipa::path(post, path = "/api/v1/grants", request_body = GrantRequest, responses((status = 200, description = "Granted")))]
async fn create_grant(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(g): Body2<GrantRequest>,
) -> ApiResult {
    let target = format!("{} on {} to {}", g.privilege, g.object, g.grantee);
    let result = async {
        let grants = g.grants(&c.principal.name)?;
        let object = &grants[0].object;
        basin_sql::check(
            &c.engine,
            object,
            Action::Grant(grants[0].privilege, object),
        )
        .await?;
        for grant in &grants {
            state.catalog.grant(grant).await?;
        }
        Ok(Json(json!({"granted": grants})))
    }
    .await;
    audited(&state, &c, "grant", &target, result).await
}

#[utoipa::path(delete, path = "/api/v1/grants", request_body = GrantRequest, responses((status = 200, description = "Revoked")))]
async fn delete_grant(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(g): Body2<GrantRequest>,
) -> ApiResult {
    let target = format!("{} on {} from {}", g.privilege, g.object, g.grantee);
    let result = async {
        let grants = g.grants(&c.principal.name)?;
        let object = &grants[0].object;
        basin_sql::check(
            &c.engine,
            object,
            Action::Grant(grants[0].privilege, object),
        )
        .await?;
        for grant in &grants {
            state.catalog.revoke(grant).await?;
        }
        Ok(Json(json!({"revoked": grants})))
    }
    .await;
    audited(&state, &c, "revoke", &target, result).await
}

#[derive(Deserialize)]
struct FilterRequest {
    table: String,
    grantee: String,
    expression: Option<String>,
}

async fn managed_table(c: &Caller, table: &str) -> ApiResult<TableRef> {
    let t = TableRef::parse(table)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    let object = Securable::table(&t);
    basin_sql::check(&c.engine, &object, Action::Manage(&object)).await?;
    Ok(t)
}

/// The table of a column whose mask the caller sets or drops: masks of PII columns are for
/// administrators (a mask sees the clear value).
async fn protected_column(c: &Caller, table: &str, column: &str) -> ApiResult<TableRef> {
    let t = TableRef::parse(table)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    let object = Securable::table(&t);
    let (entry, _) = basin_sql::access::table_policy(&c.engine, &t).await?;
    let pii = entry
        .columns
        .iter()
        .any(|x| x.name == column && is_pii(&x.tags));
    basin_sql::check(
        &c.engine,
        &object,
        Action::Mask {
            table: &object,
            pii,
        },
    )
    .await?;
    Ok(t)
}

#[utoipa::path(put, path = "/api/v1/policies/row-filters", responses((status = 200, description = "Row filter set")))]
async fn set_row_filter(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(f): Body2<FilterRequest>,
) -> ApiResult {
    let result = async {
        let table = managed_table(&c, &f.table).await?;
        let expression = f
            .expression
            .clone()
            .ok_or_else(|| ApiError::bad_request("a row filter needs 'expression'"))?;
        // Check the expression now, as the grantee would see it, rather than at query time.
        let filter = RowFilter {
            table,
            grantee: f.grantee.clone(),
            expression,
        };
        let expression = basin_sql::PolicyExpression::RowFilter(&filter.expression);
        basin_sql::check_policy_expression(&state.engine, &filter.table, expression).await?;
        state.catalog.set_row_filter(&filter).await?;
        Ok(Json(json!(filter)))
    }
    .await;
    audited(&state, &c, "policy.row_filter.set", &f.table, result).await
}

#[utoipa::path(delete, path = "/api/v1/policies/row-filters", responses((status = 200, description = "Row filter removed")))]
async fn drop_row_filter(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(f): Body2<FilterRequest>,
) -> ApiResult {
    let result = async {
        let table = managed_table(&c, &f.table).await?;
        state.catalog.drop_row_filter(&table, &f.grantee).await?;
        Ok(Json(json!({"dropped": true})))
    }
    .await;
    audited(&state, &c, "policy.row_filter.drop", &f.table, result).await
}

#[derive(Deserialize)]
struct MaskRequest {
    table: String,
    column: String,
    grantee: String,
    /// null, hash, keep_last(N) or expr:<SQL>.
    mask: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/policies/masks", responses((status = 200, description = "Mask set")))]
async fn set_mask(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(m): Body2<MaskRequest>,
) -> ApiResult {
    let result = async {
        let table = protected_column(&c, &m.table, &m.column).await?;
        let mask = m
            .mask
            .as_deref()
            .ok_or_else(|| {
                ApiError::bad_request("a mask needs 'mask': null, hash, keep_last(N) or expr:<SQL>")
            })?
            .parse()?;
        let expression = basin_sql::PolicyExpression::Mask {
            column: &m.column,
            mask: &mask,
        };
        basin_sql::check_policy_expression(&state.engine, &table, expression).await?;
        let mask = ColumnMask {
            table,
            column: m.column.clone(),
            grantee: m.grantee.clone(),
            mask,
        };
        state.catalog.set_column_mask(&mask).await?;
        Ok(Json(json!(mask)))
    }
    .await;
    audited(&state, &c, "policy.mask.set", &m.table, result).await
}

#[utoipa::path(delete, path = "/api/v1/policies/masks", responses((status = 200, description = "Mask removed")))]
async fn drop_mask(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(m): Body2<MaskRequest>,
) -> ApiResult {
    let result = async {
        let table = protected_column(&c, &m.table, &m.column).await?;
        state
            .catalog
            .drop_column_mask(&table, &m.column, &m.grantee)
            .await?;
        Ok(Json(json!({"dropped": true})))
    }
    .await;
    audited(&state, &c, "policy.mask.drop", &m.table, result).await
}

#[derive(Deserialize)]
struct TagDefinition {
    #[serde(default)]
    allowed_values: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/tags/{key}", params(("key" = String, Path)), responses((status = 200, description = "Tag defined")))]
async fn define_tag(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(key): Path<String>,
    Body2(d): Body2<TagDefinition>,
) -> ApiResult {
    let result = async {
        c.require(Action::Administer).await?;
        Ok(Json(json!(
            state.catalog.define_tag(&key, &d.allowed_values).await?
        )))
    }
    .await;
    audited(&state, &c, "tag.define", &key, result).await
}

#[derive(Deserialize)]
struct TagAssignment {
    /// `dataset HUB.NAME` or `table HUB.DATASET.NAME`.
    object: String,
    column: Option<String>,
    tags: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/tags", responses((status = 200, description = "Tags set; PII columns encrypted")))]
async fn set_tags(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(a): Body2<TagAssignment>,
) -> ApiResult {
    let target = format!(
        "{}{}",
        a.object,
        a.column
            .as_ref()
            .map(|c| format!(".{c}"))
            .unwrap_or_default()
    );
    let result = async {
        let object = Securable::parse(&a.object)?;
        basin_sql::check(&c.engine, &object, Action::Manage(&object)).await?;
        let table = match &object {
            Securable::Table { hub, dataset, table } => Some(TableRef::new(hub, dataset, table).map_err(|e| ApiError::bad_request(e.to_string()))?),
            _ => None,
        };
        let before = match &table {
            Some(t) => Some(state.catalog.require_table(t).await?),
            None => None,
        };
        let tags_before: Vec<String> = match (&before, &a.column) {
            (Some(t), Some(col)) => t.columns.iter().find(|x| &x.name == col).map(|x| x.tags.clone()).unwrap_or_default(),
            (Some(t), None) => t.tags.clone(),
            _ => vec![],
        };
        let pii = is_pii(&a.tags) || is_pii(&tags_before);
        basin_sql::check(&c.engine, &object, Action::Tag { object: &object, pii }).await?;
        state.catalog.set_tags(&object, a.column.as_deref(), &a.tags).await?;
        // A column that becomes PII is encrypted at once, in one commit; if that fails, the
        // tags go back to what they were.
        let mut version = None;
        if let (Some(t), Some(before), Some(col)) = (&table, &before, &a.column) {
            let was_pii = before.columns.iter().any(|c| &c.name == col && is_pii(&c.tags));
            if is_pii(&a.tags) && !was_pii {
                let write = basin_tables::Write::Protect { newly_pii: vec![col.clone()] };
                match c.engine.tables().commit(&c.engine.actor(), t, write).await {
                    Ok(done) => version = Some(done.version),
                    Err(e) => {
                        let old = before.columns.iter().find(|c| &c.name == col).map(|c| c.tags.clone()).unwrap_or_default();
                        state.catalog.set_tags(&object, Some(col), &old).await?;
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(Json(json!({"object": a.object, "column": a.column, "tags": a.tags, "encrypted_version": version})))
    }
    .await;
    audited(&state, &c, "tag.set", &target, result).await
}

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, description = "Service tokens (the caller's own; admins: all)")))]
async fn list_tokens(AxState(state): AxState<State>, Extension(c): Extension<Caller>) -> ApiResult {
    let all = c.allowed(Action::Administer).await?;
    let owner = (!all).then_some(c.principal.name.as_str());
    Ok(Json(
        json!({"tokens": state.catalog.service_tokens(owner).await?}),
    ))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    /// Lifetime in days (default 90, at most 3650).
    ttl_days: Option<u64>,
    /// Admins may create tokens for other users.
    owner: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tokens", responses((status = 201, description = "The token's secret, shown once")))]
async fn create_token(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(t): Body2<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let target = t.name.clone();
    let result = async {
        let owner = t.owner.clone().unwrap_or_else(|| c.principal.name.clone());
        if owner != c.principal.name {
            c.require(Action::Administer).await?;
        }
        if state.catalog.user(&owner).await?.is_none() {
            return Err(ApiError::not_found(format!("user '{owner}' not found")));
        }
        let days = t.ttl_days.unwrap_or(90);
        if days == 0 || days > 3650 {
            return Err(ApiError::bad_request("ttl_days must be between 1 and 3650"));
        }
        let name = name("token", &t.name)?;
        let (secret, token) = auth::issue_token(&state.catalog, &owner, &name, TokenKind::Service, Duration::from_secs(days * 86_400)).await?;
        Ok((StatusCode::CREATED, Json(json!({"token": secret, "id": token.id, "name": token.name, "owner": token.owner, "expires_at": token.expires_at}))))
    }
    .await;
    audited(&state, &c, "token.create", &target, result).await
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)), responses((status = 200, description = "Revoked")))]
async fn revoke_token(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let result = async {
        let snapshot = state.catalog.access_snapshot().await?;
        let token = state
            .catalog
            .token(&id)
            .await?
            .filter(|t| snapshot.may(&c.principal, Action::Token { owner: &t.owner }));
        if token.is_none() {
            return Err(ApiError::not_found(format!("token '{id}' not found")));
        }
        Ok(Json(json!(state.catalog.revoke_token(&id).await?)))
    }
    .await;
    audited(&state, &c, "token.revoke", &id, result).await
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AuditParams {
    since: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), responses((status = 200, description = "Audit events, oldest first (admins only)")))]
async fn audit(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    c.require(Action::ReadAudit).await?;
    let limit = p.limit.unwrap_or(1000).clamp(1, 100_000);
    Ok(Json(
        json!({"events": state.catalog.audit_events(p.since.as_deref(), limit).await?}),
    ))
}
