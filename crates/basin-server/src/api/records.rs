//! Streamed records into a table, and the table's stream settings.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use basin_catalog::{StreamSettings, UnknownFields};
use basin_ingest::Framing;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller, table_ref};
use crate::State;
use crate::error::ApiError;

/// The answer to a request of records.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecordsReport {
    table: String,
    /// Records taken: durable on the server and visible to queries.
    accepted: u64,
    /// Records refused, by their index in the request (from 0), with why.
    refused: Vec<RefusedView>,
    /// The request's place in the table's stream on this server.
    sequence: u64,
    /// True when this answers an earlier request with the same `Idempotency-Key`: nothing was
    /// taken again.
    replayed: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefusedView {
    index: u64,
    reason: String,
}

/// How a table takes streamed records.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamSettingsView {
    /// Buffered records are committed at the latest this many milliseconds after the oldest
    /// arrived (100 – 3,600,000) …
    max_age_ms: u64,
    /// … or once this many MiB are buffered (1 – 16,384).
    max_mib: u64,
    /// A record's field that is not a column: `reject` the record, `evolve` (add the column),
    /// or `quarantine` the record to `<table>__rejected`.
    #[schema(value_type = String)]
    unknown_fields: UnknownFields,
    /// A TIMESTAMP field of the records from which the table's `year`, `month`, `day` and
    /// `hour` columns (those it has) are filled, in UTC.
    #[serde(default)]
    partition_time_field: Option<String>,
}

/// The longest `Idempotency-Key` taken.
const MAX_KEY_CHARS: usize = 255;

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/records",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key (within the server's window) returns the first answer and takes nothing again")),
    request_body(content = String, description = "NDJSON (application/x-ndjson: one JSON object per line) or a JSON array of objects (application/json); Content-Encoding gzip or zstd accepted", content_type = "application/x-ndjson"),
    responses((status = 200, description = "Records durable and queryable", body = RecordsReport),
              (status = 400, description = "No record could be taken, or a bad body", body = crate::error::Problem),
              (status = 403, description = "Needs MODIFY and a view of every row and column", body = crate::error::Problem),
              (status = 404, description = "Missing or invisible table", body = crate::error::Problem),
              (status = 409, description = "A request with the same Idempotency-Key is in progress", body = crate::error::Problem),
              (status = 413, description = "Over --max-body-mib", body = crate::error::Problem),
              (status = 429, description = "The server's stream buffer is full: retry after Retry-After seconds", body = crate::error::Problem)))]
pub(crate) async fn append_records(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RecordsReport>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let key = idempotency_key(&headers)?;
    let limit = state.config.max_body_bytes;
    let raw = read_body(body, limit).await?;
    let bytes = decompress(&headers, raw, limit)?;
    let framing = framing(&headers, &bytes)?;
    // The records are taken to their end even if the client goes away.
    let session = c.session.clone();
    let ack = tokio::spawn(async move { session.append_records(&t, &bytes, framing, key).await })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(RecordsReport {
        table: format!("{hub}.{dataset}.{table}"),
        accepted: ack.accepted,
        refused: ack
            .refused
            .into_iter()
            .map(|r| RefusedView {
                index: r.index,
                reason: r.reason,
            })
            .collect(),
        sequence: ack.sequence,
        replayed: ack.replayed,
    }))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_CHARS && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} visible ASCII characters (a UUID, say)"
            ))
        })?;
    Ok(Some(key.to_string()))
}

async fn read_body(body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(crate::limits::too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The body as sent, or decompressed (to at most `limit` bytes, so that a small compressed
/// body cannot expand without bound).
fn decompress(headers: &HeaderMap, raw: Vec<u8>, limit: usize) -> ApiResult<Vec<u8>> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let reader: Box<dyn Read> = match encoding.as_str() {
        "identity" | "" => return Ok(raw),
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(std::io::Cursor::new(raw))),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::new(std::io::Cursor::new(raw))
                .map_err(|e| ApiError::bad_request(format!("the zstd body cannot be read: {e}")))?,
        ),
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding '{other}' is not supported: send the body plain, gzip or zstd"
                ),
            ));
        }
    };
    let mut bytes = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            ApiError::bad_request(format!("the {encoding} body cannot be decompressed: {e}"))
        })?;
    if bytes.len() > limit {
        return Err(crate::limits::too_large(limit));
    }
    Ok(bytes)
}

/// NDJSON unless the body is a JSON array (`application/json` starting with `[`).
fn framing(headers: &HeaderMap, body: &[u8]) -> ApiResult<Framing> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-ndjson");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/jsonlines"
        | "application/x-jsonlines" => Ok(Framing::Ndjson),
        "application/json" => Ok(match body.trim_ascii_start().first() {
            Some(b'[') => Framing::Array,
            _ => Framing::Ndjson,
        }),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type '{other}' is not a format of records: send application/x-ndjson (one JSON object per line) or application/json (an array of objects)"
            ),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/stream",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "The table's stream settings", body = StreamSettingsView)))]
pub(crate) async fn get_stream_settings(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult<Json<StreamSettingsView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    Ok(Json(c.session.stream_settings(&t).await?.into()))
}

#[utoipa::path(put, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/stream",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), request_body = StreamSettingsView,
    responses((status = 200, description = "The settings now in force", body = StreamSettingsView), (status = 403, description = "Needs MANAGE on the table", body = crate::error::Problem)))]
pub(crate) async fn set_stream_settings(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Body2(view): Body2<StreamSettingsView>,
) -> ApiResult<Json<StreamSettingsView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let settings = StreamSettings {
        max_age_ms: view.max_age_ms,
        max_bytes: view.max_mib.saturating_mul(1 << 20),
        unknown_fields: view.unknown_fields,
        partition_time_field: view.partition_time_field,
    };
    c.session.set_stream_settings(&t, &settings).await?;
    Ok(Json(c.session.stream_settings(&t).await?.into()))
}

impl From<StreamSettings> for StreamSettingsView {
    fn from(s: StreamSettings) -> Self {
        StreamSettingsView {
            max_age_ms: s.max_age_ms,
            max_mib: s.max_bytes >> 20,
            unknown_fields: s.unknown_fields,
            partition_time_field: s.partition_time_field,
        }
    }
}
