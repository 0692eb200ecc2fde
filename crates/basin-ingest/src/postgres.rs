//! A PostgreSQL query read for a source: its rows (or, with a watermark column, the rows past
//! the last watermark up to the current highest) as NDJSON through `COPY … TO STDOUT`, into a file
//! that a load then takes like any other. The password is given apart from the URL, so that it
//! is never stored or printed with it.

use std::path::Path;
use std::str::FromStr;

use futures::StreamExt;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::io::AsyncWriteExt;

use crate::{IngestError, Result};

/// What to read.
#[derive(Debug, Clone)]
pub struct PgQuery {
    /// `postgres://user@host:port/database` (no password).
    pub url: String,
    pub password: Option<String>,
    /// A SELECT.
    pub query: String,
    /// A column that grows with every change (`updated_at`, a sequence).
    pub watermark: Option<String>,
}

/// What a read wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgExport {
    /// Whether any row was written.
    pub any: bool,
    /// The highest watermark of the rows read (as PostgreSQL prints it).
    pub high: Option<String>,
}

/// Checks a connection URL: it must be a PostgreSQL URL without a password.
pub fn check_pg_url(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| {
        IngestError::Input(format!(
            "'{url}' is not a PostgreSQL URL ({e}): write postgres://USER@HOST:PORT/DATABASE"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(IngestError::Input(format!(
            "'{}' is not a PostgreSQL URL: write postgres://USER@HOST:PORT/DATABASE",
            parsed.scheme()
        )));
    }
    if parsed.password().is_some() {
        return Err(IngestError::Input(
            "the URL holds a password: give it with --password-env VAR or --password-file PATH instead, so that it is never stored"
                .into(),
        ));
    }
    Ok(())
}

/// Reads `q`'s rows with a watermark above `low` (all rows without a watermark column, or
/// when `low` is `None`) into `file` as NDJSON.
pub async fn export_pg(q: &PgQuery, low: Option<&str>, file: &Path) -> Result<PgExport> {
    let failed =
        |what: &str, e: sqlx::Error| IngestError::Input(format!("PostgreSQL source: {what}: {e}"));
    let mut options = PgConnectOptions::from_str(&q.url).map_err(|e| failed("the URL", e))?;
    if let Some(p) = &q.password {
        options = options.password(p);
    }
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| failed("connecting", e))?;
    let query = q.query.trim().trim_end_matches(';');
    let (filter, high) = match &q.watermark {
        None => (String::new(), None),
        Some(w) => {
            basin_core::Name::parse("column", w)?;
            // The source's own query, run with its owner's credentials on its owner's database;
            // the watermark is a checked column name.
            let (ty, high): (Option<String>, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(
                format!("SELECT pg_typeof(max(s.{w}))::text, max(s.{w})::text FROM ({query}) s"),
            ))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| failed("reading the watermark", e))?;
            let (Some(ty), Some(high)) = (ty, high) else {
                return Ok(PgExport {
                    any: false,
                    high: low.map(str::to_string),
                });
            };
            if low == Some(high.as_str()) {
                return Ok(PgExport {
                    any: false,
                    high: Some(high),
                });
            }
            let literal = |v: &str| format!("CAST('{}' AS {ty})", v.replace('\'', "''"));
            let mut filter = format!("WHERE s.{w} <= {}", literal(&high));
            if let Some(low) = low {
                filter.push_str(&format!(" AND s.{w} > {}", literal(low)));
            }
            (filter, Some(high))
        }
    };
    // One JSON object per row (types kept: booleans, numbers, nulls), written as it is: CSV
    // with a quote and a delimiter that JSON text never holds, so nothing is quoted or escaped.
    let copy = format!(
        "COPY (SELECT row_to_json(s) FROM ({query}) s {filter}) TO STDOUT WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
    );
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(|source| IngestError::Io {
            path: file.display().to_string(),
            source,
        })?;
    let mut stream = conn
        .copy_out_raw(&copy)
        .await
        .map_err(|e| failed("reading the rows", e))?;
    let mut lines = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| failed("reading the rows", e))?;
        lines += memchr::memchr_iter(b'\n', &chunk).count();
        out.write_all(&chunk)
            .await
            .map_err(|source| IngestError::Io {
                path: file.display().to_string(),
                source,
            })?;
    }
    out.flush().await.map_err(|source| IngestError::Io {
        path: file.display().to_string(),
        source,
    })?;
    Ok(PgExport {
        any: lines > 0,
        high,
    })
}
