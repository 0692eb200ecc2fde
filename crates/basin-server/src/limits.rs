//! Limits that keep one client from starving the others: request body sizes, concurrent queries,
//! concurrent password hashes, and the size strings of `--memory-limit`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Largest body of `POST /api/v1/login`: a user name and a password.
pub const LOGIN_BODY_LIMIT: usize = 4 * 1024;

/// Largest body of the JSON endpoints (everything but file uploads).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Longest accepted user name at login, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 256;

/// How long a query waits for a free slot before it is answered 503.
pub const QUERY_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// How long a login waits for a free password-hashing slot before it is answered 503.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The number of CPU cores (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses a size such as `67108864`, `512MiB`, `2GiB`, `64 MB` or `1.5g` into bytes (binary
/// units: `MB` and `MiB` both mean 2^20).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!("'{text}' is not a size: write a number with an optional unit, e.g. 512MiB or 2GiB")
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "'{text}' has an unknown unit '{other}': use bytes, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!(
            "'{text}' is out of range: give at least 1 byte, e.g. 512MiB"
        ));
    }
    Ok(bytes as usize)
}

/// Refuses a request whose declared `Content-Length` exceeds `limit` at once, before its body is
/// read or anything else is done; bodies without a length are capped by `DefaultBodyLimit`.
pub(crate) async fn refuse_large_body(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit).into_response();
    }
    next.run(request).await
}

/// Closes the connection after a `413`: the rest of the refused body is still on the wire, so
/// the connection cannot carry another request (clients reusing it would fail).
pub(crate) async fn close_after_too_large(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The answer to a body over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than this endpoint's limit of {limit} bytes; send less"
        ),
    )
}

/// A fixed number of slots; a request waits at most `wait` for one, then is answered 503.
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    wait: Duration,
    what: &'static str,
}

impl Slots {
    pub fn new(n: usize, wait: Duration, what: &'static str) -> Self {
        Slots {
            semaphore: Arc::new(Semaphore::new(n.max(1))),
            wait,
            what,
        }
    }

    /// A slot, held until the permit is dropped.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "the server is running as many {} as it allows; retry in a moment",
                        self.what
                    ),
                );
                e.retry_after = Some(1);
                Err(e)
            }
        }
    }

    /// A slot for a registered query; cancelling the query while it waits ends the wait.
    pub async fn acquire_for(
        &self,
        query: &basin_service::RunningQuery,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        tokio::select! {
            permit = self.acquire() => permit,
            _ = query.cancelled() => Err(query.cancelled_error().into()),
        }
    }
}

/// Holds a query slot while a (non-streaming) handler that runs SQL works.
pub(crate) async fn hold_query_slot(
    axum::extract::State(state): axum::extract::State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    match state.query_slots.acquire().await {
        Ok(_permit) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64 mb").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert!(parse_bytes("").unwrap_err().contains("not a size"));
        assert!(
            parse_bytes("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes("0").unwrap_err().contains("out of range"));
    }
}
