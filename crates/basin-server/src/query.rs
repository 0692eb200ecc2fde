//! `POST /api/v1/query`: SQL as the caller, rows streamed as JSON, CSV or Arrow IPC, with a row
//! limit and a timeout; every statement is audited.

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

use crate::State;
use crate::api::{Body2, Caller, audit_event};
use crate::error::ApiError;

/// A query request.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct QueryRequest {
    /// One SQL statement (or several, for writes; the last one's result is returned).
    sql: String,
    /// `json` (default), `csv` or `arrow` (Arrow IPC stream).
    format: Option<String>,
    /// Most rows to return (capped by the server's limit).
    limit: Option<usize>,
    /// Longest the query may run, in milliseconds (capped by the server's limit).
    timeout_ms: Option<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

#[utoipa::path(post, path = "/api/v1/query", request_body = QueryRequest,
    responses((status = 200, description = "Rows (application/json, text/csv or application/vnd.apache.arrow.stream)"),
              (status = 400, description = "Invalid SQL", body = crate::error::Problem),
              (status = 404, description = "A table that does not exist or is invisible", body = crate::error::Problem),
              (status = 504, description = "Timed out", body = crate::error::Problem)))]
pub(crate) async fn query(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Body2(req): Body2<QueryRequest>,
) -> Result<Response, ApiError> {
    let format = match req.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "csv" => Format::Csv,
        "arrow" => Format::Arrow,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format '{other}': use json, csv or arrow"
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
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    state.metrics.queries.fetch_add(1, Relaxed);
    let audit = Audit {
        state: state.clone(),
        caller: c.clone(),
        sql: req.sql.clone(),
        tables: Engine::tables_named(&req.sql),
        started,
    };
    let planned = tokio::time::timeout_at(deadline, open(&c.engine, &req.sql)).await;
    let stream = match planned {
        Err(_) => {
            let e = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("the query did not finish within {} ms", timeout.as_millis()),
            );
            audit.finish("error", 0, Some(&e.detail)).await;
            return Err(e);
        }
        Ok(Err(e)) => {
            let e = ApiError::from(e);
            let outcome = if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
                "denied"
            } else {
                "error"
            };
            audit.finish(outcome, 0, Some(&e.detail)).await;
            return Err(e);
        }
        Ok(Ok(s)) => s,
    };
    let content_type = match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Arrow => "application/vnd.apache.arrow.stream",
    };
    // Planning (names, policies, DataFusion's plans) is done once the stream exists; the
    // header lets clients and benchmarks see it apart from execution and transfer.
    let plan_ms = started.elapsed().as_secs_f64() * 1000.0;
    let body = Body::from_stream(encode(stream, format, limit, deadline, audit));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::HeaderName::from_static("server-timing"),
                format!("plan;dur={plan_ms:.3}"),
            ),
        ],
        body,
    )
        .into_response())
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
}

impl Audit {
    async fn finish(&self, outcome: &str, rows: u64, error: Option<&str>) {
        self.state.metrics.query_rows.fetch_add(rows, Relaxed);
        let detail = json!({"tables": self.tables, "rows": rows, "duration_ms": self.started.elapsed().as_millis() as u64, "error": error});
        audit_event(
            &self.state,
            &self.caller.principal.name,
            &self.caller.source,
            "query",
            &self.sql,
            outcome,
            detail,
        )
        .await;
    }
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
    ipc: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    audit: Option<Audit>,
}

fn encode(
    input: SendableRecordBatchStream,
    format: Format,
    limit: usize,
    deadline: tokio::time::Instant,
    audit: Audit,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let encoder = Encoder {
        input,
        format,
        remaining: limit,
        rows: 0,
        started: false,
        done: false,
        truncated: false,
        deadline,
        ipc: None,
        audit: Some(audit),
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
        } else {
            match tokio::time::timeout_at(self.deadline, self.input.next()).await {
                Err(_) => return self.fail("the query timed out while streaming rows").await,
                Ok(Some(Err(err))) => {
                    return self.fail(&basin_sql::SqlError::from(err).to_string()).await;
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

    async fn fail(&mut self, message: &str) -> Result<Bytes, std::io::Error> {
        if let Some(a) = self.audit.take() {
            a.finish("error", self.rows, Some(message)).await;
        }
        Err(std::io::Error::other(message.to_string()))
    }

    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), std::io::Error> {
        let schema = self.input.schema();
        match self.format {
            Format::Json => {
                let columns: Vec<_> = schema
                    .fields()
                    .iter()
                    .map(|f| json!({"name": f.name(), "type": basin_lake::types::sql_name(f.data_type())}))
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
                let mut w = arrow::json::ArrayWriter::new(Vec::new());
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
        }
        Ok(())
    }
}
