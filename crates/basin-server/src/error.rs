//! Errors as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_catalog::CatalogError;
use basin_ingest::IngestError;
use basin_sql::SqlError;
use serde::Serialize;

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`, `invalid_sql`.
    pub code: &'static str,
    pub detail: String,
    /// Seconds after which a retry may succeed (rate limits).
    pub retry_after: Option<u64>,
    /// Where in the SQL text the error is, when known.
    pub position: Option<basin_sql::Position>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// Where in the SQL text the error is (line and column from 1), when the parser or the
    /// planner says.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub position: Option<basin_sql::Position>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            position: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
    /// Storage or the catalog cannot be reached or read: not the request's fault, so 503 with
    /// a hint to retry. The cause goes to the log; `detail` says what is unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        e.retry_after = Some(UNAVAILABLE_RETRY_SECS);
        e
    }
}

/// The `Retry-After` of a 503 for an outage.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// Whether an error's text says that storage failed rather than the request: an operating
/// system error (`os error 13`: permission denied, not a directory, …), an object store that
/// failed or cannot be reached, or a table whose files are gone. Errors reach the server
/// flattened to text (DataFusion wraps them), so the text is what can be judged.
fn is_outage(text: &str) -> bool {
    const MARKERS: [&str; 11] = [
        "(os error ",
        "object store error",
        "objectstore",
        "localfilesystem error",
        "generic s3 error",
        "not a delta table",
        "invalid table location",
        "path does not exist",
        "error sending request",
        "connection refused",
        "failed to read delta log",
    ];
    let text = text.to_ascii_lowercase();
    MARKERS.iter().any(|m| text.contains(m))
}

/// An error with its causes, as one line of text.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The 503 for a storage failure: the log gets the cause (it names paths and buckets, which
/// are the operator's business), the client what to do.
fn storage_unavailable(cause: &str) -> ApiError {
    tracing::error!(error = %cause, "storage error");
    ApiError::unavailable(
        "the table's storage cannot be read or written right now; try again later, and tell the operator if it persists",
    )
}

impl ApiError {
    /// The error as an RFC 9457 problem object.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("https://basin.dev/problems/{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            code: self.code.to_string(),
            detail: self.detail.clone(),
            position: self.position,
        }
    }

    /// [`ApiError::problem`] as JSON text.
    pub fn problem_json(&self) -> String {
        serde_json::to_string(&self.problem()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.problem_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match &e {
            CatalogError::Invalid(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string())
            }
            CatalogError::NotFound { .. } => Self::not_found(e.to_string()),
            CatalogError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            CatalogError::BadValue(_) => Self::bad_request(e.to_string()),
            CatalogError::NotEmpty(_) => {
                Self::new(StatusCode::CONFLICT, "not_empty", e.to_string())
            }
            CatalogError::Database { .. } => {
                tracing::error!(error = %chain(&e), "catalog error");
                Self::unavailable("the catalog database is unavailable; try again later")
            }
        }
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        let position = e.position();
        let mut api = Self::from_sql(e);
        api.position = position;
        api
    }
}

impl ApiError {
    fn from_sql(e: SqlError) -> Self {
        match e {
            SqlError::Parse(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_sql", e.to_string()),
            SqlError::NotFound { .. } => Self::not_found(e.to_string()),
            SqlError::Unsupported(_) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported", e.to_string())
            }
            SqlError::Invalid(_) | SqlError::Name(_) => Self::bad_request(e.to_string()),
            SqlError::Denied(_) => Self::forbidden(e.to_string()),
            SqlError::Query(ref m) if m.starts_with("Resources exhausted") => Self::new(
                StatusCode::BAD_REQUEST,
                "memory_limit_exceeded",
                e.to_string(),
            ),
            SqlError::Query(ref m) if is_outage(m) => storage_unavailable(m),
            SqlError::Query(_) => Self::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string()),
            SqlError::Catalog(c) => c.into(),
            SqlError::Lake(_) => lake_failure(&e),
            SqlError::Key(k) => Self::new(StatusCode::BAD_REQUEST, "key_error", k.to_string()),
            SqlError::Tables(t) => t.into(),
            // The failing statement's status, its message saying which statement it was.
            SqlError::InStatement { statement, error } => {
                let mut api = Self::from(*error);
                api.detail = format!("{statement}: {}", api.detail);
                api
            }
            SqlError::At { error, .. } => Self::from(*error),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Catalog(c) => c.into(),
            IngestError::Tables(t) => t.into(),
            IngestError::Lake(_) => lake_failure(&e),
            // The server reads only the files it staged itself: an OS error is its own.
            IngestError::Io { ref source, .. } if source.raw_os_error().is_some() => {
                storage_unavailable(&chain(&e))
            }
            other => Self::new(StatusCode::BAD_REQUEST, "ingest_failed", other.to_string()),
        }
    }
}

/// A failed Delta operation: 503 when storage failed, else the request's fault.
fn lake_failure(e: &dyn std::error::Error) -> ApiError {
    let text = chain(e);
    if is_outage(&text) {
        storage_unavailable(&text)
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "write_failed", e.to_string())
    }
}

impl From<basin_tables::TablesError> for ApiError {
    fn from(e: basin_tables::TablesError) -> Self {
        use basin_tables::TablesError as T;
        match e {
            T::Denied(m) => Self::forbidden(m),
            T::NotFound { .. } => Self::not_found(e.to_string()),
            T::Invalid(m) => Self::bad_request(m),
            T::Conflict { .. } => Self::new(StatusCode::CONFLICT, "write_conflict", e.to_string()),
            // Other writes held the table's turn for longer than the commit wait.
            T::Busy { .. } => {
                let mut busy = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string());
                busy.retry_after = Some(1);
                busy
            }
            T::Full { retry_after, .. } => {
                let mut full =
                    Self::new(StatusCode::TOO_MANY_REQUESTS, "buffer_full", e.to_string());
                full.retry_after = Some(retry_after);
                full
            }
            T::InProgress { .. } => Self::new(StatusCode::CONFLICT, "in_progress", e.to_string()),
            T::Creating { retry_after, .. } => {
                let mut busy = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string());
                busy.retry_after = Some(retry_after);
                busy
            }
            T::Catalog(c) => c.into(),
            T::Lake(_) => lake_failure(&e),
            other => Self::new(StatusCode::BAD_REQUEST, "write_failed", other.to_string()),
        }
    }
}

impl From<basin_keys::KeyError> for ApiError {
    fn from(e: basin_keys::KeyError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "key_error", e.to_string())
    }
}

impl From<basin_service::ServiceError> for ApiError {
    fn from(e: basin_service::ServiceError) -> Self {
        use basin_service::ServiceError as S;
        match e {
            S::Denied(m) => Self::forbidden(m),
            S::NotFound(m) => Self::not_found(m),
            S::Invalid(m) => Self::bad_request(m),
            S::Cancelled(m) => Self::new(StatusCode::CONFLICT, "cancelled", m),
            S::Sql(e) => e.into(),
            S::Ingest(e) => e.into(),
            S::Catalog(e) => e.into(),
            S::Tables(e) => e.into(),
            S::Key(e) => e.into(),
            S::Lake(_) => lake_failure(&e),
            S::Name(e) => Self::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_waited_too_long_for_its_turn_is_a_503_to_retry() {
        let e = ApiError::from(basin_tables::TablesError::Busy {
            table: "main.ops.events".into(),
            waited: 30,
        });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((e.code, e.retry_after), ("busy", Some(1)));
        assert!(e.detail.contains("'main.ops.events'"), "{}", e.detail);
        assert!(e.detail.contains("nothing was committed"), "{}", e.detail);
    }

    #[test]
    fn a_write_that_lost_to_another_process_is_a_409_that_is_safe_to_retry() {
        let e = ApiError::from(basin_tables::TablesError::Conflict {
            table: "main.ops.counter".into(),
        });
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "write_conflict"));
        assert!(e.detail.contains("'main.ops.counter'"), "{}", e.detail);
        assert!(e.detail.contains("safe"), "{}", e.detail);
        // The user hears what to do, not the library's internals.
        assert!(
            !e.detail.to_lowercase().contains("isolation"),
            "{}",
            e.detail
        );
    }
}
