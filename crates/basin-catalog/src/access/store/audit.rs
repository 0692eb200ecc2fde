//! The audit log: append-only events.

use crate::access::model::*;
use crate::error::DbContext;
use crate::{Catalog, Result};

impl Catalog {
    /// Appends an event to the audit log. There is no way to change or remove one.
    pub async fn audit(&self, event: &AuditEvent) -> Result<()> {
        let id = format!("{}-{:016x}", event.at, rand_u64());
        sqlx::query("INSERT INTO audit_log (id, at, principal, source, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(id)
            .bind(&event.at)
            .bind(&event.principal)
            .bind(&event.source)
            .bind(&event.action)
            .bind(&event.target)
            .bind(&event.outcome)
            .bind(&event.detail)
            .execute(&self.pool)
            .await
            .ctx(|| "writing the audit log".into())?;
        Ok(())
    }

    /// Audit events, oldest first, from `since` (an RFC 3339 time) on, at most `limit`.
    pub async fn audit_events(&self, since: Option<&str>, limit: i64) -> Result<Vec<AuditEvent>> {
        // Times are compared as text, as stored (UTC, `Z`): bring `since` to that form so that
        // an offset (`+02:00`) or a time without fraction compares by instant.
        let since = since.map(|s| match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Err(_) => s.to_string(),
        });
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT at, principal, source, action, target, outcome, detail FROM audit_log WHERE at >= $1 ORDER BY at, id LIMIT $2",
        )
        .bind(since.unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(|| "reading the audit log".into())?;
        Ok(rows.into_iter().map(event_from_row).collect())
    }

    /// The newest `limit` events of one principal and action, newest first.
    pub async fn audit_of(
        &self,
        principal: &str,
        action: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT at, principal, source, action, target, outcome, detail FROM audit_log WHERE principal = $1 AND action = $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(principal)
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(|| "reading the audit log".into())?;
        Ok(rows.into_iter().map(event_from_row).collect())
    }
}

impl Catalog {
    /// How often each table name (as written in the statement) was named by a successful
    /// read — a `query` event whose statement is a SELECT (or WITH) — since `since` (an RFC 3339
    /// time), from the audit log.
    pub async fn query_counts(
        &self,
        since: &str,
    ) -> Result<std::collections::HashMap<String, u64>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT detail FROM audit_log WHERE at >= $1 AND action = 'query' AND outcome = 'ok' AND (upper(substr(target, 1, 6)) = 'SELECT' OR upper(substr(target, 1, 4)) = 'WITH')",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .ctx(|| "reading query counts from the audit log".into())?;
        let mut counts = std::collections::HashMap::new();
        for (detail,) in rows {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&detail) else {
                continue;
            };
            for name in v["tables"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    *counts.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
        Ok(counts)
    }
}

/// A random number for ids, from the process's hasher seed and a counter (no extra crate).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// An `audit_log` row as selected by the readers above.
type EventRow = (String, String, String, String, String, String, String);

fn event_from_row(
    (at, principal, source, action, target, outcome, detail): EventRow,
) -> AuditEvent {
    AuditEvent {
        at,
        principal,
        source,
        action,
        target,
        outcome,
        detail,
    }
}
