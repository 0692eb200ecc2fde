//! Sources: declare, list, show, run, pause, resume and remove (see docs/sources.md).

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::{Source, SourceRun};
use basin_core::TableRef;
use basin_service::{NewFilesSource, NewKafkaSource, NewPostgresSource, Schedule, SourceStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Body2, Caller};
use crate::State;
use crate::error::ApiError;

/// A new source.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSourceRequest {
    name: String,
    /// `files`: each new file under `location` whose relative path matches `pattern`;
    /// `postgres`: the rows of `query` at `url`; `kafka`: the JSON records of `topic` at
    /// `brokers`.
    kind: String,
    /// `hub.dataset.table` or `dataset.table`.
    table: String,
    /// Files: a folder the server can read, or `s3://bucket/prefix`.
    location: Option<String>,
    /// PostgreSQL: `postgres://user@host:port/database`, without a password.
    url: Option<String>,
    /// PostgreSQL: the server's environment variable holding the password, or a file.
    password_env: Option<String>,
    password_file: Option<String>,
    /// PostgreSQL: a SELECT.
    query: Option<String>,
    /// PostgreSQL: a column that grows with every change (incremental), and the key the
    /// changed rows are upserted by.
    watermark: Option<String>,
    #[serde(default)]
    key: Vec<String>,
    /// Kafka: `host:port` of the brokers, and the topic.
    #[serde(default)]
    brokers: Vec<String>,
    topic: Option<String>,
    /// A glob over paths relative to `location`, e.g. `products/year=*/month=*/day=*/*.csv`.
    #[serde(default = "all_files")]
    pattern: String,
    /// The files' format when their names do not say it.
    format: Option<String>,
    /// Seconds between runs (default 60) …
    every_secs: Option<u64>,
    /// … or a cron expression (UTC), e.g. `0 2 * * *` …
    cron: Option<String>,
    /// … or run again as soon as a run ends.
    #[serde(default)]
    continuous: bool,
    /// Tries of a failing file (default 3).
    max_attempts: Option<u64>,
    /// Bad rows a file may have before it fails (default 0).
    max_bad_rows: Option<u64>,
}

fn all_files() -> String {
    "**/*".into()
}

fn source_view(s: &Source) -> Value {
    json!({
        "name": s.name, "kind": s.kind, "table": s.table.to_string(), "config": s.config,
        "every_secs": s.every_secs, "cron": s.cron, "max_attempts": s.max_attempts, "owner": s.owner,
        "paused": s.paused, "created_at": s.created_at,
    })
}

#[utoipa::path(get, path = "/api/v1/sources",
    responses((status = 200, description = "The sources you own or whose table you see", body = Object)))]
pub(crate) async fn list_sources(Extension(c): Extension<Caller>) -> ApiResult<Json<Value>> {
    let sources = c.session.sources().await?;
    Ok(Json(
        json!({"sources": sources.iter().map(source_view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/sources", request_body = NewSourceRequest,
    responses((status = 201, description = "The source, which runs as you", body = Object),
              (status = 400, description = "A bad declaration", body = crate::error::Problem),
              (status = 403, description = "You may not load into the table", body = crate::error::Problem),
              (status = 409, description = "The name is taken", body = crate::error::Problem)))]
pub(crate) async fn add_source(
    Extension(c): Extension<Caller>,
    Body2(r): Body2<NewSourceRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let table = TableRef::parse(&r.table)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    let needs = |what: &str| ApiError::bad_request(format!("a {} source needs \"{what}\"", r.kind));
    let schedule = match (r.cron.clone(), r.every_secs, r.continuous) {
        (None, None, true) => Schedule::Continuous,
        (Some(expr), None, false) => Schedule::Cron(expr),
        (None, every, false) => Schedule::Every(every.unwrap_or(60)),
        _ => {
            return Err(ApiError::bad_request(
                "give one of every_secs, cron and continuous",
            ));
        }
    };
    let source = match r.kind.as_str() {
        "files" => {
            c.session
                .add_files_source(NewFilesSource {
                    location: r.location.clone().ok_or_else(|| needs("location"))?,
                    name: r.name,
                    table,
                    pattern: r.pattern,
                    format: r.format,
                    schedule,
                    max_attempts: r.max_attempts.unwrap_or(3),
                    max_bad_rows: r.max_bad_rows.unwrap_or(0),
                })
                .await?
        }
        "postgres" => {
            c.session
                .add_postgres_source(NewPostgresSource {
                    url: r.url.clone().ok_or_else(|| needs("url"))?,
                    query: r.query.clone().ok_or_else(|| needs("query"))?,
                    name: r.name,
                    table,
                    password_env: r.password_env,
                    password_file: r.password_file.map(Into::into),
                    key: r.key,
                    watermark: r.watermark,
                    schedule,
                })
                .await?
        }
        "kafka" => {
            c.session
                .add_kafka_source(NewKafkaSource {
                    topic: r.topic.clone().ok_or_else(|| needs("topic"))?,
                    name: r.name,
                    table,
                    brokers: r.brokers,
                    schedule,
                })
                .await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "source kind '{other}' is not available: use files, postgres or kafka"
            )));
        }
    };
    Ok((StatusCode::CREATED, Json(source_view(&source))))
}

#[utoipa::path(get, path = "/api/v1/sources/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "Settings, files loaded and failed (with why), last runs", body = Object),
              (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn get_source(
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceStatus>> {
    Ok(Json(c.session.source(&name).await?))
}

#[utoipa::path(delete, path = "/api/v1/sources/{name}", params(("name" = String, Path)),
    responses((status = 204, description = "Removed (what it loaded stays)"), (status = 403, description = "Not its owner, nor a manager of its table", body = crate::error::Problem)))]
pub(crate) async fn remove_source(
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.session.remove_source(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sources/{name}/run", params(("name" = String, Path)),
    responses((status = 200, description = "The run", body = Object), (status = 403, description = "Not its owner, nor a manager of its table", body = crate::error::Problem)))]
pub(crate) async fn run_source(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceRun>> {
    Ok(Json(c.session.run_source(&state.hub, &name).await?))
}

#[utoipa::path(post, path = "/api/v1/sources/{name}/pause", params(("name" = String, Path)),
    responses((status = 204, description = "No longer run on schedule"), (status = 403, description = "Not its owner, nor a manager of its table", body = crate::error::Problem)))]
pub(crate) async fn pause_source(
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.session.pause_source(&name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sources/{name}/resume", params(("name" = String, Path)),
    responses((status = 204, description = "Run on schedule again"), (status = 403, description = "Not its owner, nor a manager of its table", body = crate::error::Problem)))]
pub(crate) async fn resume_source(
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.session.pause_source(&name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
