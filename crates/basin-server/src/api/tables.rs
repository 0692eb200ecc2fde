//! One table: its details, its history, a preview of its rows, and file uploads into it.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::access::Privilege;
use basin_core::TableRef;
use basin_ingest::{LoadMode, LoadRequest};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiResult, Caller, Params, table_ref};
use crate::State;
use crate::error::ApiError;

/// A column as the caller sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ColumnView {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
    description: String,
    tags: Vec<String>,
    /// Personal data, stored encrypted.
    pii: bool,
    /// Shown masked or as tokens to the caller.
    masked: bool,
}

/// A table's version and number of data files.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StatsView {
    version: i64,
    files: usize,
}

/// A table as the caller sees it: visible columns, its privileges, statistics.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TableView {
    hub: String,
    dataset: String,
    name: String,
    /// `table` or `view`.
    kind: String,
    description: String,
    tags: Vec<String>,
    primary_key: Vec<String>,
    partition_columns: Vec<String>,
    columns: Vec<ColumnView>,
    #[schema(value_type = Vec<String>)]
    privileges: BTreeSet<Privilege>,
    /// Whether a row filter hides some rows from the caller.
    row_filtered: bool,
    stats: StatsView,
    created_at: String,
    updated_at: String,
}

/// Changes to a table's descriptions; absent fields stay as they are, "" clears.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TablePatch {
    /// The table's description.
    description: Option<String>,
    /// Column descriptions, by column name.
    #[serde(default)]
    columns: std::collections::BTreeMap<String, String>,
}

/// One commit.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CommitView {
    version: i64,
    timestamp: Option<String>,
    operation: String,
    /// The commit's parameters (JSON text); redacted unless the caller sees the whole table in
    /// clear.
    parameters: String,
}

/// A table's commits, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryView {
    history: Vec<CommitView>,
}

/// The first rows of a table.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PreviewView {
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Value>,
}

/// What an upload did.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UploadReport {
    table: String,
    bytes: u64,
    rows: u64,
    bad_rows: u64,
    version: i64,
    /// True when the load id was committed before and nothing was written.
    skipped: bool,
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "Schema (visible columns), statistics, privileges", body = TableView), (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn get_table(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult<Json<TableView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let info = c.session.table(&t).await?;
    let (entry, policy) = (info.table, info.policy);
    let columns = policy
        .columns
        .iter()
        .filter_map(|p| {
            let col = entry.columns.iter().find(|c| c.name == p.name)?;
            Some(ColumnView {
                name: col.name.clone(),
                data_type: col.data_type.clone(),
                nullable: col.nullable,
                description: col.description.clone(),
                tags: col.tags.clone(),
                pii: p.pii,
                masked: p.mask.is_some() || (p.pii && !p.clear),
            })
        })
        .collect();
    Ok(Json(TableView {
        hub: entry.hub,
        dataset: entry.dataset,
        name: entry.name,
        kind: entry.kind,
        description: entry.description,
        tags: entry.tags,
        primary_key: entry.primary_key,
        partition_columns: entry.partition_columns,
        columns,
        privileges: policy.privileges,
        row_filtered: policy.row_filter.is_some(),
        stats: StatsView {
            version: info.stats.version,
            files: info.stats.files,
        },
        created_at: entry.created_at,
        updated_at: entry.updated_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/history", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "Commits, newest first", body = HistoryView), (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn table_history(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult<Json<HistoryView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let history = c
        .session
        .history(&t, None)
        .await?
        .into_iter()
        .map(|c| CommitView {
            version: c.version,
            timestamp: c.timestamp.map(|t| t.to_rfc3339()),
            operation: c.operation,
            parameters: c.parameters,
        })
        .collect();
    Ok(Json(HistoryView { history }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewParams {
    /// Rows to show (default 20, at most 1000).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/preview", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path), PreviewParams),
    responses((status = 200, description = "The first rows, as the caller may see them", body = PreviewView)))]
pub(crate) async fn table_preview(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Params(p): Params<PreviewParams>,
) -> ApiResult<Json<PreviewView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let limit = p.limit.unwrap_or(20).min(1000);
    let out = c
        .session
        .query(&format!(
            "SELECT * FROM \"{}\".\"{}\".\"{}\" LIMIT {limit}",
            t.hub, t.dataset, t.table
        ))
        .await?;
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for b in &out.batches {
        writer
            .write(b)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let bytes = writer.into_inner();
    let rows = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))?
    };
    Ok(Json(PreviewView { rows }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadParams {
    /// csv, json, ndjson or parquet (optionally with .gz / .zst, e.g. csv.gz).
    format: String,
    /// append (default), overwrite or upsert.
    mode: Option<String>,
    /// Match key of an upsert (comma-separated).
    key: Option<String>,
    load_id: Option<String>,
    max_bad_rows: Option<u64>,
}

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

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/files", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path), UploadParams),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses((status = 200, description = "Load report", body = UploadReport), (status = 400, description = "Bad file", body = crate::error::Problem),
              (status = 403, description = "No MODIFY (or CREATE for a new table), or a restricted view", body = crate::error::Problem),
              (status = 404, description = "Missing or invisible dataset", body = crate::error::Problem), (status = 413, description = "Over --max-body-mib", body = crate::error::Problem)))]
pub(crate) async fn upload(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Params(p): Params<UploadParams>,
    body: Body,
) -> ApiResult<Json<UploadReport>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let result = upload_inner(&state, &c, &t, p, body).await;
    if let Err(e) = &result {
        // A successful load is audited by the write path; a refused upload may not reach it.
        let outcome = if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            "denied"
        } else {
            "error"
        };
        c.session
            .audit(
                "upload",
                &t.to_string(),
                outcome,
                serde_json::json!({"error": e.detail}),
            )
            .await;
    }
    result
}

async fn upload_inner(
    state: &State,
    c: &Caller,
    t: &TableRef,
    p: UploadParams,
    body: Body,
) -> ApiResult<Json<UploadReport>> {
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
    c.session.check_load(t, &mode).await?;
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
    let session = c.session.clone();
    let report = tokio::spawn(async move { session.load(request, Default::default()).await })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    state
        .metrics
        .uploads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(UploadReport {
        table: t.to_string(),
        bytes,
        rows: report.rows,
        bad_rows: report.bad_rows,
        version: report.version,
        skipped: report.skipped,
    }))
}

#[utoipa::path(patch, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}", params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), request_body = TablePatch,
    responses((status = 200, description = "The changed table", body = TableView), (status = 403, description = "Needs MANAGE on the table", body = crate::error::Problem), (status = 404, description = "Missing or invisible table or column", body = crate::error::Problem)))]
pub(crate) async fn update_table(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    super::Body2(patch): super::Body2<TablePatch>,
) -> ApiResult<Json<TableView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    c.session
        .describe_table(&t, patch.description.as_deref(), &patch.columns)
        .await?;
    get_table(Extension(c), Path((hub, dataset, table))).await
}
