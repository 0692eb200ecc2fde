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
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("https://basin.dev/problems/{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            code: self.code.to_string(),
            detail: self.detail,
        };
        let mut response = (
            self.status,
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
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
            CatalogError::Database { .. } => {
                tracing::error!(error = %e, "catalog error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "catalog_unavailable",
                    "the catalog database is unavailable; try again later",
                )
            }
        }
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Parse(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_sql", e.to_string()),
            SqlError::NotFound { .. } => Self::not_found(e.to_string()),
            SqlError::Unsupported(_) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported", e.to_string())
            }
            SqlError::Invalid(_) | SqlError::Name(_) => Self::bad_request(e.to_string()),
            SqlError::Denied(_) => Self::forbidden(e.to_string()),
            SqlError::Query(_) => Self::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string()),
            SqlError::Catalog(c) => c.into(),
            SqlError::Lake(l) => Self::new(StatusCode::BAD_REQUEST, "write_failed", l.to_string()),
            SqlError::Key(k) => Self::new(StatusCode::BAD_REQUEST, "key_error", k.to_string()),
            SqlError::Tables(t) => t.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Catalog(c) => c.into(),
            IngestError::Tables(t) => t.into(),
            other => Self::new(StatusCode::BAD_REQUEST, "ingest_failed", other.to_string()),
        }
    }
}

impl From<basin_lake::LakeError> for ApiError {
    fn from(e: basin_lake::LakeError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "lake_error", e.to_string())
    }
}

impl From<basin_tables::TablesError> for ApiError {
    fn from(e: basin_tables::TablesError) -> Self {
        use basin_tables::TablesError as T;
        match e {
            T::Denied(m) => Self::forbidden(m),
            T::NotFound { .. } => Self::not_found(e.to_string()),
            T::Invalid(m) => Self::bad_request(m),
            T::Catalog(c) => c.into(),
            T::Lake(l) => l.into(),
            other => Self::new(StatusCode::BAD_REQUEST, "write_failed", other.to_string()),
        }
    }
}

impl From<basin_keys::KeyError> for ApiError {
    fn from(e: basin_keys::KeyError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "key_error", e.to_string())
    }
}
