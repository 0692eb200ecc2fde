//! The SQL editor (`/sql`): write a query (Ctrl+Enter runs it; names complete from what the
//! viewer may see), see its rows a page at a time, its error with the position marked, cancel
//! it while it runs, download its result as CSV or Parquet, and reload one's earlier queries.
//!
//! Every run is the viewer's: planned by basin-sql as the viewer's principal, governed and
//! audited like a REST query. Running is a POST with the CSRF token (a statement may write);
//! htmx swaps the result in place, and without JavaScript the form posts a whole page.

use std::time::Instant;

use axum::Json;
use axum::extract::{Form, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use basin_service::RunningQuery;
use basin_sql::Engine;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{PortalError, PortalResult, Viewer, csrf_field, page, verify_csrf};
use crate::State;
use crate::api::Caller;
use crate::api::query::QueryRequest;
use crate::error::ApiError;

/// Rows on one page of a result.
const PAGE_ROWS: usize = 50;
/// Statements of the history shown beside the editor.
const HISTORY: usize = 20;

#[derive(Deserialize)]
pub(crate) struct EditorParams {
    /// SQL to put in the editor (from the history).
    q: Option<String>,
}

/// `GET /sql`: the editor, empty or holding `q`.
pub(crate) async fn editor(
    viewer: Viewer,
    Query(p): Query<EditorParams>,
) -> PortalResult<Response> {
    let sql = p.q.unwrap_or_default();
    Ok(editor_page(&viewer, &sql, html! {}).await?.into_response())
}

async fn editor_page(viewer: &Viewer, sql: &str, result: Markup) -> PortalResult<Markup> {
    let history = viewer.session.query_history(HISTORY).await?;
    Ok(page(
        "SQL",
        viewer,
        html! {
            h1 { "SQL" }
            form #sql-form method="post" action="/sql/run" {
                (csrf_field(viewer))
                (query_id_field(false))
                label for="sql" { "Query " span.muted { "(Ctrl+Enter runs it)" } }
                textarea #sql name="sql" rows="8" spellcheck="false" autocomplete="off"
                    aria-describedby="completions-help" { (sql) }
                p #completions-help .sr-only { "Suggestions for the name you type appear below the editor." }
                ul #completions role="listbox" aria-label="Suggestions" {}
                div.actions {
                    button #run type="submit" hx-post="/sql/run" hx-target="#result"
                        hx-indicator="#running" { "Run" }
                    button #cancel type="button" hx-post="/sql/cancel" hx-swap="none" { "Cancel" }
                    button #download-csv type="submit" formaction="/sql/download" name="format" value="csv" { "Download CSV" }
                    button #download-parquet type="submit" formaction="/sql/download" name="format" value="parquet" { "Download Parquet" }
                    span #running .htmx-indicator role="status" { "Running…" }
                }
            }
            section #result aria-live="polite" { (result) }
            section.history aria-labelledby="history-title" {
                h2 #history-title { "Your recent queries" }
                @if history.is_empty() {
                    p.muted { "None yet." }
                } @else {
                    ol #history {
                        @for h in &history {
                            li {
                                a href=(format!("/sql?q={}", super::url_encode(&h.sql))) title="Load into the editor" {
                                    code { (short(&h.sql)) }
                                }
                                " "
                                span.muted { (h.started_at) " · " (h.outcome) " · " (h.rows) " rows · " (h.duration_ms) " ms" }
                            }
                        }
                    }
                }
            }
            script src="/static/sql.js" defer {}
        },
    ))
}

/// The hidden id the next run is registered under (cancel sends it); a run's answer replaces
/// it with a fresh one (`oob`: as an htmx out-of-band swap).
fn query_id_field(oob: bool) -> Markup {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    let id = hex::encode(b);
    html! {
        @if oob {
            input #query-id type="hidden" name="query_id" value=(id) hx-swap-oob="true";
        } @else {
            input #query-id type="hidden" name="query_id" value=(id);
        }
    }
}

/// A statement on one line, shortened for the history list.
fn short(sql: &str) -> String {
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[derive(Deserialize)]
pub(crate) struct RunForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    sql: String,
    query_id: Option<String>,
    /// The page of the result, from 0.
    page: Option<usize>,
}

/// `POST /sql/run`: runs the query and shows one page of its rows (or its error). htmx asks
/// for the result alone; a browser without JavaScript gets the whole page.
pub(crate) async fn run(
    AxState(state): AxState<State>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<RunForm>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    let page_no = f.page.unwrap_or(0);
    let result = Box::pin(result(&state, &viewer, &f.sql, f.query_id, page_no)).await;
    if headers.contains_key("hx-request") {
        Ok(html! { (result) (query_id_field(true)) }.into_response())
    } else {
        Ok(editor_page(&viewer, &f.sql, result).await?.into_response())
    }
}

/// One page of rows of a statement as the viewer, or its error.
async fn result(
    state: &State,
    viewer: &Viewer,
    sql: &str,
    query_id: Option<String>,
    page_no: usize,
) -> Markup {
    if sql.trim().is_empty() {
        return html! { p.muted { "Write a query first." } };
    }
    let started = Instant::now();
    match rows_page(state, viewer, sql, query_id, page_no).await {
        Ok((schema, batches, more)) => {
            let shown: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let first = page_no * PAGE_ROWS;
            html! {
                p.muted role="status" {
                    @if shown == 0 { "No rows" } @else { "Rows " (first + 1) "–" (first + shown) }
                    " · " (started.elapsed().as_millis()) " ms"
                }
                (super::browse::result_table(&schema, &batches))
                nav.pager aria-label="Result pages" {
                    @if page_no > 0 {
                        button #prev type="button" hx-post="/sql/run" hx-target="#result"
                            hx-include="#sql-form input[type=hidden]"
                            hx-vals=(json!({"sql": sql, "page": page_no - 1})) { "Previous page" }
                    }
                    @if more {
                        button #next type="button" hx-post="/sql/run" hx-target="#result"
                            hx-include="#sql-form input[type=hidden]"
                            hx-vals=(json!({"sql": sql, "page": page_no + 1})) { "Next page" }
                    }
                }
            }
        }
        Err(e) => error_box(sql, &e),
    }
}

/// Runs `sql` as the viewer and returns the rows of page `page_no` (and whether more follow).
/// A query streams, stopping after the page; another statement runs to completion.
async fn rows_page(
    state: &State,
    viewer: &Viewer,
    sql: &str,
    query_id: Option<String>,
    page_no: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>, bool), ApiError> {
    let s = &viewer.session;
    let skip = page_no * PAGE_ROWS;
    if skip + PAGE_ROWS > state.config.max_rows.max(PAGE_ROWS) {
        return Err(ApiError::bad_request(format!(
            "results are shown up to the server's row limit of {} rows; download the result or narrow the query",
            state.config.max_rows
        )));
    }
    if !Engine::is_query(sql) {
        // Writes and statements like SHOW or DESCRIBE: run (and audited) by the session.
        let out = s.query(sql).await?;
        return Ok((out.schema, page_of(out.batches, skip), false));
    }
    let running = s.start_query(query_id, true)?;
    let _slot = state.query_slots.acquire_for(&running).await?;
    let started = Instant::now();
    let work = tokio::time::timeout(
        state.config.query_timeout,
        running.guard(read_page(s, sql, skip, &running)),
    );
    let outcome = match work.await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the query did not finish within {} s (the server's --query-timeout-secs)",
                state.config.query_timeout.as_secs()
            ),
        )),
    };
    let (label, rows, error) = match &outcome {
        Ok((_, b, _)) => (
            "ok",
            b.iter().map(RecordBatch::num_rows).sum::<usize>(),
            None,
        ),
        Err(e) if e.code == "cancelled" => ("cancelled", 0, Some(e.detail.clone())),
        Err(e) if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
            ("denied", 0, Some(e.detail.clone()))
        }
        Err(e) => ("error", 0, Some(e.detail.clone())),
    };
    s.audit(
        "query",
        sql,
        label,
        json!({"tables": Engine::tables_named(sql), "rows": rows, "duration_ms": started.elapsed().as_millis() as u64, "error": error, "page": page_no}),
    )
    .await;
    outcome
}

/// Streams a query, keeping the rows of one page and telling whether any follow.
async fn read_page(
    s: &basin_service::Session,
    sql: &str,
    skip: usize,
    running: &RunningQuery,
) -> basin_service::Result<(SchemaRef, Vec<RecordBatch>, bool)> {
    let mut stream = s.stream(sql).await?;
    let schema = stream.schema();
    let mut seen = 0usize;
    let mut kept = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| match running.cancelled_by() {
            Some(_) => running.cancelled_error(),
            None => basin_sql::SqlError::from(e).into(),
        })?;
        let (start, end) = (seen, seen + batch.num_rows());
        seen = end;
        let from = skip.max(start);
        let to = (skip + PAGE_ROWS).min(end);
        if from < to {
            kept.push(batch.slice(from - start, to - from));
        }
        if seen > skip + PAGE_ROWS {
            return Ok((schema, kept, true));
        }
    }
    Ok((schema, kept, false))
}

/// Rows `skip..skip + PAGE_ROWS` of a finished result.
fn page_of(batches: Vec<RecordBatch>, skip: usize) -> Vec<RecordBatch> {
    let mut seen = 0;
    let mut kept = Vec::new();
    for b in batches {
        let (start, end) = (seen, seen + b.num_rows());
        seen = end;
        let from = skip.max(start);
        let to = (skip + PAGE_ROWS).min(end);
        if from < to {
            kept.push(b.slice(from - start, to - from));
        }
    }
    kept
}

/// An error, with the place it points at marked in the statement's text.
fn error_box(sql: &str, e: &ApiError) -> Markup {
    let at = e.position.and_then(|p| {
        let line = sql
            .lines()
            .nth(usize::try_from(p.line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(p.column).ok()?.checked_sub(1)?;
        let cut = line.char_indices().nth(column).map(|(i, _)| i)?;
        let rest = &line[cut..];
        let len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
            .map_or(rest.len(), |(i, _)| i)
            .max(rest.chars().next().map_or(0, char::len_utf8));
        Some((p, &line[..cut], &rest[..len], &rest[len..]))
    });
    html! {
        div.error #sql-error role="alert"
            data-line=[e.position.map(|p| p.line)] data-column=[e.position.map(|p| p.column)] {
            p { (e.detail) }
            @if let Some((p, before, mark, after)) = at {
                p.muted { "Line " (p.line) ", column " (p.column) ":" }
                pre.error-at { code { (before) mark { (mark) } (after) } }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    query_id: String,
}

/// `POST /sql/cancel`: cancels the viewer's running query (as `DELETE /api/v1/queries/{id}`).
pub(crate) async fn cancel(viewer: Viewer, Form(f): Form<CancelForm>) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    viewer.session.cancel_query(&f.query_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(crate) struct DownloadForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    sql: String,
    #[serde(default)]
    format: String,
}

/// `POST /sql/download`: the query's result as a file (CSV or Parquet), streamed like the REST
/// answer and bounded by the same row limit.
pub(crate) async fn download(
    AxState(state): AxState<State>,
    viewer: Viewer,
    Form(f): Form<DownloadForm>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    if !matches!(f.format.as_str(), "csv" | "parquet") {
        return Err(PortalError::bad_request("download as csv or parquet"));
    }
    if !Engine::is_query(&f.sql) {
        return Err(PortalError::bad_request(
            "only a query (one SELECT) can be downloaded",
        ));
    }
    let request = QueryRequest {
        sql: f.sql,
        format: Some(f.format),
        limit: None,
        timeout_ms: None,
        query_id: None,
    };
    let caller = Caller {
        session: viewer.session.clone(),
    };
    Ok(Box::pin(crate::api::query::run(state, caller, request)).await?)
}

#[derive(Deserialize)]
pub(crate) struct CompleteParams {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    context: String,
}

/// `GET /sql/complete?prefix=&context=`: suggestions for the editor (as `/api/v1/completion`).
pub(crate) async fn complete(
    viewer: Viewer,
    Query(p): Query<CompleteParams>,
) -> PortalResult<Response> {
    let found = viewer.session.complete(&p.prefix, &p.context).await?;
    Ok(Json(json!({"suggestions": found})).into_response())
}
