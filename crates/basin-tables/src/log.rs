//! The operator's log line of a commit: one per write, at INFO (a refusal too), at WARN when
//! the write failed. It names who, what and where, never the rows' values.

use std::time::Instant;

use basin_catalog::CatalogError;
use basin_core::TableRef;
use basin_lake::LakeError;

use crate::{Actor, Committed, Result, TablesError};

/// Logs the outcome of a commit that started at `started`.
pub(crate) fn commit(
    actor: &Actor,
    t: &TableRef,
    operation: &str,
    started: Instant,
    result: &Result<Committed>,
) {
    let (principal, origin, table) = (actor.name(), actor.origin.as_str(), t.to_string());
    let duration_ms = (started.elapsed().as_micros() as f64 / 100.0).round() / 10.0;
    match result {
        Ok(c) => tracing::info!(
            principal,
            origin,
            operation,
            table,
            version = c.version,
            rows = c.rows,
            skipped = c.skipped,
            duration_ms,
            "commit"
        ),
        Err(e) => match refusal(e) {
            Some(reason) => tracing::info!(
                principal,
                origin,
                operation,
                table,
                reason,
                duration_ms,
                "commit refused"
            ),
            None => tracing::warn!(
                principal,
                origin,
                operation,
                table,
                error = %unquoted(&e.to_string()),
                duration_ms,
                "commit failed"
            ),
        },
    }
}

/// Why a write was refused (nothing is wrong with the hub), or `None` for a failure (storage,
/// catalog database, keys), whose text is logged [`unquoted`].
fn refusal(e: &TablesError) -> Option<String> {
    match e {
        // Bad input: the message may quote the input's values (personal data among them). The
        // client got it, and so did the audit log.
        TablesError::Invalid(_)
        | TablesError::DataFusion(_)
        | TablesError::Lake(LakeError::InvalidInput(_))
        | TablesError::Catalog(CatalogError::Invalid(_) | CatalogError::BadValue(_)) => {
            Some("invalid input (the client was told why)".to_string())
        }
        // These name objects and privileges, not values.
        TablesError::Denied(_)
        | TablesError::NotFound { .. }
        | TablesError::Conflict { .. }
        | TablesError::Lake(
            LakeError::Conflict { .. }
            | LakeError::IncompatibleType { .. }
            | LakeError::UnknownColumn { .. }
            | LakeError::NoSuchVersion(_),
        )
        | TablesError::Catalog(
            CatalogError::NotFound { .. }
            | CatalogError::AlreadyExists { .. }
            | CatalogError::NotEmpty(_),
        ) => Some(e.to_string()),
        _ => None,
    }
}

/// `text` with every quoted part replaced by '…': a failure's text quotes values that came
/// with the write (a failed cast names the value), and names of objects the line's fields give.
fn unquoted(text: &str) -> String {
    let mut parts = text.split('\'');
    let mut out = parts.next().unwrap_or_default().to_string();
    let rest: Vec<&str> = parts.collect();
    if rest.len() % 2 == 1 {
        // An odd quote (an apostrophe?) leaves no telling what is quoted: nothing after it shows.
        out.push_str("'…");
        return out;
    }
    for pair in rest.chunks(2) {
        out.push_str("'…'");
        out.push_str(pair[1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unquoted;

    #[test]
    fn failures_are_logged_without_the_values_they_quote() {
        assert_eq!(
            unquoted("cannot store 'bob@example.com' (VARCHAR) in column 'n'; widen it"),
            "cannot store '…' (VARCHAR) in column '…'; widen it"
        );
        assert_eq!(unquoted("no quotes"), "no quotes");
        assert_eq!(unquoted("it's 'x' here"), "it'…");
    }
}
