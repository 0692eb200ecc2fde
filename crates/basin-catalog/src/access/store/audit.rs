//! The audit log: append-only events.

use crate::access::model::*;
use crate::error::DbContext;
use crate::{Catalog, CatalogError, Result};
use tokio::sync::oneshot;

/// Audit rows waiting to be written, and the turn to write them. Rows that arrive together
/// go into the catalog together: one transaction, so one sync to disk, for many requests (the
/// same group commit as the lake's appends). Each caller still waits until its row is stored.
#[derive(Debug, Default)]
pub(crate) struct AuditQueue {
    pending: std::sync::Mutex<Vec<Queued>>,
    turn: tokio::sync::Mutex<()>,
}

/// A row and where its outcome goes (an error as text).
type Queued = (AuditEvent, oneshot::Sender<std::result::Result<(), String>>);

/// Most rows in one transaction (a bound on its size, not a wait: nothing waits to fill it).
const MOST_ROWS_PER_WRITE: usize = 512;

impl Catalog {
    /// Appends an event to the audit log. There is no way to change or remove one. Returns
    /// once the row is stored.
    pub async fn audit(&self, event: &AuditEvent) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        lock(&self.audit_queue.pending).push((event.clone(), answer));
        // Each row brings a writer, a task of its own so that a caller that goes away leaves
        // its row to be written all the same. Writers take turns; each writes every row queued
        // by then, so under load most find their row already written.
        let catalog = self.clone();
        tokio::spawn(async move { catalog.write_queued_audit_rows().await });
        outcome(answered.await)
    }

    async fn write_queued_audit_rows(&self) {
        let _turn = self.audit_queue.turn.lock().await;
        let rows: Vec<Queued> = {
            let mut pending = lock(&self.audit_queue.pending);
            let n = pending.len().min(MOST_ROWS_PER_WRITE);
            pending.drain(..n).collect()
        };
        if rows.is_empty() {
            return;
        }
        if self
            .write_audit_rows(rows.iter().map(|(e, _)| e))
            .await
            .is_ok()
        {
            for (_, answer) in rows {
                let _ = answer.send(Ok(()));
            }
            return;
        }
        // One bad row must not cost the others theirs: each on its own, with its own answer.
        for (event, answer) in rows {
            let result = self.write_audit_rows(std::iter::once(&event)).await;
            let _ = answer.send(result.map_err(|e| match e {
                CatalogError::Database { source, .. } => source.to_string(),
                other => other.to_string(),
            }));
        }
    }

    async fn write_audit_rows(&self, events: impl Iterator<Item = &AuditEvent>) -> Result<()> {
        let mut tx = self.begin().await?;
        for event in events {
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
                .execute(&mut *tx)
                .await
                .ctx(|| "writing the audit log".into())?;
        }
        tx.commit().await.ctx(|| "writing the audit log".into())
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A queued row's outcome: its group's, or a clear error if its writer stopped unanswered.
fn outcome(
    answered: std::result::Result<std::result::Result<(), String>, oneshot::error::RecvError>,
) -> Result<()> {
    let why = match answered {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(why)) => why,
        Err(_) => "the writer of the audit rows stopped before it answered".into(),
    };
    Err(CatalogError::Database {
        action: "writing the audit log".into(),
        source: sqlx::Error::Protocol(why),
    })
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
