//! `POST /api/v1/query`: SQL as the caller, rows streamed as JSON, CSV, Arrow IPC or Parquet,
//! with a row limit, a timeout and a bounded number of queries at once; every statement is
//! audited. Each query runs under an id (the client's `query_id`, or made up; sent back in the
//! `x-query-id` header) by which its owner can cancel it (`DELETE /api/v1/queries/{id}`).
//!
//! The status is sent only once the first rows are ready, so that a query failing early gets a
//! real error status. A failure after rows were sent cannot change the status any more: the body
//! then ends with an error record (JSON: an `error` member; CSV: a last line `#error,...`) or,
//! for Arrow IPC and Parquet, is cut off without its end-of-stream marker (footer) and the chunked
//! transfer is aborted, which HTTP clients report as an error.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use axum::Extension;
use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_sql::Engine;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::{Body2, Caller};
use crate::State;
use crate::error::ApiError;
use basin_service::RunningQuery;
use std::sync::Arc;

/// A query request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    /// One SQL statement (or several, for writes; the last one's result is returned).
    pub(crate) sql: String,
    /// `json` (default), `csv`, `arrow` (Arrow IPC stream) or `parquet`.
    pub(crate) format: Option<String>,
    /// Most rows to return (capped by the server's limit).
    pub(crate) limit: Option<usize>,
    /// Longest the query may run, in milliseconds (capped by the server's limit).
    pub(crate) timeout_ms: Option<u64>,
    /// The id to cancel the query by (1–64 letters, digits, `-`, `_`; default: a new one).
    pub(crate) query_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
}

/// Parquet row groups are cut at this many buffered bytes, so that a large result streams.
const PARQUET_ROW_GROUP_BYTES: usize = 8 << 20;

#[utoipa::path(post, path = "/api/v1/query", request_body = QueryRequest,
    responses((status = 200, description = "Rows (application/json, text/csv, application/vnd.apache.arrow.stream or application/vnd.apache.parquet); the query's id in x-query-id"),
              (status = 400, description = "Invalid SQL (with its `position` when known)", body = crate::error::Problem),
              (status = 409, description = "Cancelled", body = crate::error::Problem),
              (status = 404, description = "A table that does not exist or is invisible", body = crate::error::Problem),
              (status = 503, description = "Storage unavailable, or too many queries running (see Retry-After)", body = crate::error::Problem),
              (status = 504, description = "Timed out", body = crate::error::Problem)))]
pub(crate) async fn query(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(req): Body2<QueryRequest>,
) -> Result<Response, ApiError> {
    run(state, c, req).await
}

/// Runs a query request as `c` (for the REST endpoint and the portal alike).
pub(crate) async fn run(state: State, c: Caller, req: QueryRequest) -> Result<Response, ApiError> {
    let format = match req.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "csv" => Format::Csv,
        "arrow" => Format::Arrow,
        "parquet" => Format::Parquet,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format '{other}': use json, csv, arrow or parquet"
            )));
        }
    };
    if req.sql.trim().is_empty() {
        return Err(ApiError::bad_request("'sql' is empty"));
    }
    let limit = req
        .limit
        .unwrap_or(state.config.max_rows)
        .min(state.config.max_rows);
    let timeout = req
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(state.config.query_timeout)
        .min(state.config.query_timeout);
    // A query can be cancelled; a write runs to completion.
    let is_query = Engine::is_query(&req.sql);
    let running = Arc::new(c.session.start_query(req.query_id.clone(), is_query)?);
    // Waiting for a slot counts against neither the timeout nor the metrics.
    let permit = state.query_slots.acquire_for(&running).await;
    let started = Instant::now();
    let audit = Audit {
        state: state.clone(),
        caller: c.clone(),
        sql: req.sql.clone(),
        tables: Engine::tables_named(&req.sql),
        started,
        running: running.clone(),
    };
    // Busy, or cancelled while waiting: refused, and audited as such.
    let permit = match permit {
        Ok(permit) => permit,
        Err(e) => return Err(audit.refused(e).await),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    state.metrics.queries.fetch_add(1, Relaxed);
    let planning = async {
        let opened = open(c.session.engine(), &req.sql);
        if is_query {
            running
                .guard(async { opened.await.map_err(basin_service::ServiceError::from) })
                .await
                .map_err(ApiError::from)
        } else {
            opened.await.map_err(ApiError::from)
        }
    };
    let planned = tokio::time::timeout_at(deadline, planning).await;
    let timed_out = || {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the query did not finish within {} ms; make it cheaper or ask for a longer timeout_ms (the server's limit is --query-timeout-secs)",
                timeout.as_millis()
            ),
        )
    };
    let mut stream = match planned {
        Err(_) => return Err(audit.refused(timed_out()).await),
        Ok(Err(e)) => return Err(audit.refused(e).await),
        Ok(Ok(s)) => cancellable(s, running.clone()),
    };
    let content_type = match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Arrow => "application/vnd.apache.arrow.stream",
        Format::Parquet => "application/vnd.apache.parquet",
    };
    // Planning (names, policies, DataFusion's plans) is done once the stream exists; the
    // header lets clients and benchmarks see it apart from execution and transfer.
    let plan_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Most failures (a sort over the memory limit, unreadable files) happen before the first
    // rows: wait for them, so that such a failure still gets its own status.
    let first = match tokio::time::timeout_at(deadline, first_rows(&mut stream)).await {
        Err(_) => return Err(audit.refused(timed_out()).await),
        Ok(Err(e)) => {
            let e = audit.failure(e);
            return Err(audit.refused(e).await);
        }
        Ok(Ok(first)) => first,
    };
    let id = running.id().to_string();
    let body = Body::from_stream(encode(
        stream,
        Start {
            format,
            limit,
            deadline,
            timeout,
            first,
            permit,
        },
        audit,
    ));
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::HeaderName::from_static("server-timing"),
                format!("plan;dur={plan_ms:.3}"),
            ),
            (header::HeaderName::from_static("x-query-id"), id.clone()),
        ],
        body,
    )
        .into_response();
    // Files to save: named after the query (its id is plain ASCII, so the header is valid).
    let extension = match format {
        Format::Csv => Some("csv"),
        Format::Parquet => Some("parquet"),
        Format::Json | Format::Arrow => None,
    };
    if let Some(ext) = extension
        && let Ok(v) =
            header::HeaderValue::from_str(&format!("attachment; filename=\"query-{id}.{ext}\""))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The rows of `input` until the query is cancelled; then one error, and the input (with the
/// work of its plan) is dropped.
fn cancellable(
    input: SendableRecordBatchStream,
    running: Arc<RunningQuery>,
) -> SendableRecordBatchStream {
    let schema = input.schema();
    let rows = futures::stream::unfold(Some((input, running)), |state| async move {
        let (mut input, running) = state?;
        tokio::select! {
            next = input.next() => next.map(|batch| (batch, Some((input, running)))),
            by = running.cancelled() => Some((
                Err(datafusion::error::DataFusionError::Execution(format!(
                    "query '{}' was cancelled by {by}",
                    running.id()
                ))),
                None,
            )),
        }
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows))
}

/// The first batch with rows (`None`: the result is empty).
async fn first_rows(
    stream: &mut SendableRecordBatchStream,
) -> basin_sql::Result<Option<RecordBatch>> {
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() > 0 {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

/// Runs a query as a stream; other statements run to completion first.
async fn open(engine: &Engine, sql: &str) -> basin_sql::Result<SendableRecordBatchStream> {
    if Engine::is_query(sql) {
        return engine.stream(sql).await;
    }
    let out = engine.execute(sql).await?;
    let schema = out.schema.clone();
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(out.batches.into_iter().map(Ok)),
        ),
    ))
}

/// What the audit log gets once a query's stream ends.
struct Audit {
    state: State,
    caller: Caller,
    sql: String,
    tables: Vec<String>,
    started: Instant,
    /// The query's registration, held until its answer ends.
    running: Arc<RunningQuery>,
}

impl Audit {
    /// The answer for an engine failure: "cancelled" when the query was.
    fn failure(&self, e: impl Into<basin_sql::SqlError>) -> ApiError {
        if self.running.cancelled_by().is_some() {
            ApiError::from(self.running.cancelled_error())
        } else {
            ApiError::from(e.into())
        }
    }

    /// Audits a query refused before any rows were sent; returns the error.
    async fn refused(self, e: ApiError) -> ApiError {
        let outcome = if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            "denied"
        } else if e.code == "cancelled" {
            "cancelled"
        } else {
            "error"
        };
        self.finish(outcome, 0, Some(&e.detail)).await;
        e
    }

    async fn finish(&self, outcome: &str, rows: u64, error: Option<&str>) {
        self.state.metrics.query_rows.fetch_add(rows, Relaxed);
        let detail = json!({"tables": self.tables, "rows": rows, "duration_ms": self.started.elapsed().as_millis() as u64, "error": error});
        self.caller
            .session
            .audit("query", &self.sql, outcome, detail)
            .await;
    }
}

/// How an encoder starts: the answer's shape and limits, the first rows, and the query's slot.
struct Start {
    format: Format,
    limit: usize,
    deadline: tokio::time::Instant,
    timeout: Duration,
    first: Option<RecordBatch>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

struct Encoder {
    input: SendableRecordBatchStream,
    format: Format,
    remaining: usize,
    rows: u64,
    started: bool,
    done: bool,
    truncated: bool,
    deadline: tokio::time::Instant,
    timeout: Duration,
    /// Rows fetched before the answer's status was sent.
    pending: Option<RecordBatch>,
    ipc: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    parquet: Option<datafusion::parquet::arrow::ArrowWriter<Vec<u8>>>,
    audit: Option<Audit>,
    /// The query's slot, given back when the answer ends or the client goes away.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

fn encode(
    input: SendableRecordBatchStream,
    start: Start,
    audit: Audit,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let encoder = Encoder {
        input,
        format: start.format,
        remaining: start.limit,
        rows: 0,
        started: false,
        done: false,
        truncated: false,
        deadline: start.deadline,
        timeout: start.timeout,
        pending: start.first,
        ipc: None,
        parquet: None,
        audit: Some(audit),
        _permit: start.permit,
    };
    futures::stream::unfold(encoder, |mut e| async move {
        if e.done {
            return None;
        }
        let chunk = e.next_chunk().await;
        if chunk.is_err() {
            e.done = true;
        }
        Some((chunk, e))
    })
}

impl Encoder {
    async fn next_chunk(&mut self) -> Result<Bytes, std::io::Error> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            self.header(&mut out)?;
        }
        let next = if self.remaining == 0 {
            self.truncated = self.truncated || self.rows > 0;
            None
        } else if let Some(batch) = self.pending.take() {
            Some(batch)
        } else {
            match tokio::time::timeout_at(self.deadline, self.input.next()).await {
                Err(_) => {
                    let e = ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        format!(
                            "the query did not finish within {} ms; {} rows were sent before it was stopped",
                            self.timeout.as_millis(),
                            self.rows
                        ),
                    );
                    return self.fail(e, out).await;
                }
                Ok(Some(Err(err))) => {
                    let e = match &self.audit {
                        Some(a) => a.failure(err),
                        None => ApiError::from(basin_sql::SqlError::from(err)),
                    };
                    return self.fail(e, out).await;
                }
                Ok(Some(Ok(batch))) => Some(batch),
                Ok(None) => None,
            }
        };
        match next {
            Some(batch) => {
                let batch = if batch.num_rows() > self.remaining {
                    self.truncated = true;
                    batch.slice(0, self.remaining)
                } else {
                    batch
                };
                self.remaining -= batch.num_rows();
                self.write_batch(&batch, &mut out)?;
                self.rows += batch.num_rows() as u64;
            }
            None => {
                self.footer(&mut out)?;
                self.done = true;
                if let Some(a) = self.audit.take() {
                    a.finish("ok", self.rows, None).await;
                }
            }
        }
        Ok(Bytes::from(out))
    }

    /// Ends the answer after rows (or at least the header) were sent: the status is out, so the
    /// error becomes the body's last record.
    async fn fail(&mut self, e: ApiError, mut out: Vec<u8>) -> Result<Bytes, std::io::Error> {
        self.done = true;
        if let Some(a) = self.audit.take() {
            let outcome = if e.code == "cancelled" {
                "cancelled"
            } else {
                "error"
            };
            a.finish(outcome, self.rows, Some(&e.detail)).await;
        }
        match self.format {
            Format::Json => out.extend_from_slice(
                format!(
                    "],\"row_count\":{},\"truncated\":false,\"error\":{}}}",
                    self.rows,
                    e.problem_json()
                )
                .as_bytes(),
            ),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                let status = e.status.as_u16().to_string();
                w.write_record(["#error", status.as_str(), e.code, e.detail.as_str()])
                    .map_err(std::io::Error::other)?;
                w.flush()?;
            }
            // An IPC stream has one schema, a Parquet file a fixed one: no record can carry the
            // error. Failing the body aborts the chunked transfer, which clients report instead
            // of a short result.
            Format::Arrow | Format::Parquet => return Err(std::io::Error::other(e.detail)),
        }
        Ok(Bytes::from(out))
    }

    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), std::io::Error> {
        let schema = self.input.schema();
        match self.format {
            Format::Json => {
                let columns: Vec<_> = schema
                    .fields()
                    .iter()
                    .map(|f| json!({"name": f.name(), "type": basin_sql::sql_type_name(f.data_type())}))
                    .collect();
                out.extend_from_slice(
                    format!(
                        "{{\"columns\":{},\"rows\":[",
                        serde_json::Value::from(columns)
                    )
                    .as_bytes(),
                );
            }
            Format::Csv => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut w = csv::Writer::from_writer(&mut *out);
                w.write_record(&names).map_err(std::io::Error::other)?;
                w.flush()?;
            }
            Format::Arrow => {
                self.ipc = Some(
                    arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
                        .map_err(std::io::Error::other)?,
                );
                out.append(self.ipc.as_mut().expect("just set").get_mut());
            }
            Format::Parquet => {
                self.parquet = Some(
                    datafusion::parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None)
                        .map_err(std::io::Error::other)?,
                );
            }
        }
        Ok(())
    }

    fn write_batch(
        &mut self,
        batch: &RecordBatch,
        out: &mut Vec<u8>,
    ) -> Result<(), std::io::Error> {
        match self.format {
            Format::Json => {
                // Every column in every row: a NULL is `null`, not a missing field.
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(Vec::new());
                w.write(batch).map_err(std::io::Error::other)?;
                w.finish().map_err(std::io::Error::other)?;
                let text = w.into_inner();
                let inner = text
                    .strip_prefix(b"[")
                    .and_then(|t| t.strip_suffix(b"]"))
                    .unwrap_or(&[]);
                if !inner.is_empty() {
                    if self.rows > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(inner);
                }
            }
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut *out);
                w.write(batch).map_err(std::io::Error::other)?;
            }
            Format::Arrow => {
                let ipc = self.ipc.as_mut().expect("header wrote it");
                ipc.write(batch).map_err(std::io::Error::other)?;
                out.append(ipc.get_mut());
            }
            Format::Parquet => {
                let writer = self.parquet.as_mut().expect("header made it");
                writer.write(batch).map_err(std::io::Error::other)?;
                // The writer counts what it wrote itself: the bytes of finished row groups
                // can be sent (taken from its buffer) as they come.
                if writer.in_progress_size() > PARQUET_ROW_GROUP_BYTES {
                    writer.flush().map_err(std::io::Error::other)?;
                }
                out.append(writer.inner_mut());
            }
        }
        Ok(())
    }

    fn footer(&mut self, out: &mut Vec<u8>) -> Result<(), std::io::Error> {
        match self.format {
            Format::Json => out.extend_from_slice(
                format!(
                    "],\"row_count\":{},\"truncated\":{}}}",
                    self.rows, self.truncated
                )
                .as_bytes(),
            ),
            Format::Csv => {}
            Format::Arrow => {
                let ipc = self.ipc.as_mut().expect("header wrote it");
                ipc.finish().map_err(std::io::Error::other)?;
                out.append(ipc.get_mut());
            }
            Format::Parquet => {
                let writer = self.parquet.take().expect("header made it");
                out.append(&mut writer.into_inner().map_err(std::io::Error::other)?);
            }
        }
        Ok(())
    }
}
