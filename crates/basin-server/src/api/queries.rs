//! Running queries and history: cancel one's query (`DELETE /api/v1/queries/{id}`), read one's
//! own last statements (`GET /api/v1/queries/history`), and complete names while writing SQL
//! (`GET /api/v1/completion`).

use axum::extract::Path;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Caller, Params};

/// The answer to a cancel.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Cancelled {
    id: String,
    cancelled: bool,
}

#[utoipa::path(delete, path = "/api/v1/queries/{id}", params(("id" = String, Path, description = "The query's id (its x-query-id)")),
    responses((status = 200, description = "Cancelled: the query ends with a `cancelled` error", body = Cancelled),
              (status = 404, description = "No such query of the caller's is running (administrators: of anyone's)", body = crate::error::Problem)))]
pub(crate) async fn cancel_query(
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Cancelled>> {
    c.session.cancel_query(&id).await?;
    Ok(Json(Cancelled {
        id,
        cancelled: true,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// How many statements (1–500, default 50).
    limit: Option<usize>,
}

/// One statement the caller ran.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryItem {
    sql: String,
    /// RFC 3339, UTC.
    started_at: String,
    duration_ms: u64,
    rows: u64,
    /// ok, error, denied or cancelled.
    outcome: String,
    error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct History {
    queries: Vec<HistoryItem>,
}

#[utoipa::path(get, path = "/api/v1/queries/history", params(HistoryParams),
    responses((status = 200, description = "The caller's own last statements, newest first", body = History)))]
pub(crate) async fn query_history(
    Extension(c): Extension<Caller>,
    Params(p): Params<HistoryParams>,
) -> ApiResult<Json<History>> {
    let entries = c.session.query_history(p.limit.unwrap_or(50)).await?;
    Ok(Json(History {
        queries: entries
            .into_iter()
            .map(|e| HistoryItem {
                sql: e.sql,
                started_at: e.started_at,
                duration_ms: e.duration_ms,
                rows: e.rows,
                outcome: e.outcome,
                error: e.error,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompletionParams {
    /// The name being written: `sal`, `sales.`, `main.sales.or`, `o.am`.
    prefix: Option<String>,
    /// The statement around it, whose tables' columns (and aliases) are offered too.
    context: Option<String>,
}

/// One suggestion.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Suggestion {
    label: String,
    /// keyword, hub, dataset, table or column.
    kind: String,
    detail: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Completions {
    suggestions: Vec<Suggestion>,
}

#[utoipa::path(get, path = "/api/v1/completion", params(CompletionParams),
    responses((status = 200, description = "Names the caller may see, and SQL keywords, that complete the prefix (at most 50)", body = Completions)))]
pub(crate) async fn completion(
    Extension(c): Extension<Caller>,
    Params(p): Params<CompletionParams>,
) -> ApiResult<Json<Completions>> {
    let found = c
        .session
        .complete(
            p.prefix.as_deref().unwrap_or(""),
            p.context.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(Json(Completions {
        suggestions: found
            .into_iter()
            .map(|s| Suggestion {
                label: s.label,
                kind: s.kind.to_string(),
                detail: s.detail,
            })
            .collect(),
    }))
}
