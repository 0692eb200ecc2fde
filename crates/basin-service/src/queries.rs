//! Running queries, so that their owner (or an administrator) can cancel them, and each
//! principal's query history, read from the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use basin_catalog::access::Action;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::{Result, ServiceError, Session};

/// Most entries a history returns.
pub const MAX_HISTORY: usize = 500;

/// The queries running in this process, by owner and id (ids are the owners' own: one
/// principal's ids say nothing about another's).
#[derive(Default)]
pub(crate) struct Registry {
    running: Mutex<HashMap<(String, String), Entry>>,
}

struct Entry {
    /// Whether cancelling stops it: a query does; a write runs to completion.
    cancellable: bool,
    /// Set to who cancelled it.
    cancel: watch::Sender<Option<String>>,
}

/// A query registered under its id until dropped; [`RunningQuery::guard`] and
/// [`RunningQuery::cancelled`] let the work it does stop when it is cancelled.
pub struct RunningQuery {
    id: String,
    owner: String,
    cancelled: watch::Receiver<Option<String>>,
    registry: Arc<Registry>,
}

impl RunningQuery {
    /// The query's id (given by the client or made up).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who cancelled the query, once someone has.
    pub fn cancelled_by(&self) -> Option<String> {
        self.cancelled.borrow().clone()
    }

    /// The error a cancelled query ends with.
    pub fn cancelled_error(&self) -> ServiceError {
        ServiceError::Cancelled(format!(
            "query '{}' was cancelled by {}",
            self.id,
            self.cancelled_by().unwrap_or_else(|| "its owner".into())
        ))
    }

    /// Runs `work` until it ends or the query is cancelled (then the work is dropped).
    pub async fn guard<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            out = work => out,
            _ = self.cancelled() => Err(self.cancelled_error()),
        }
    }

    /// Resolves once the query is cancelled, to who cancelled it.
    pub async fn cancelled(&self) -> String {
        let mut cancelled = self.cancelled.clone();
        let by = cancelled
            .wait_for(Option::is_some)
            .await
            .map(|by| by.clone().unwrap_or_default());
        match by {
            Ok(by) => by,
            // The registry's sender is gone only when the query is: never cancelled.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        if let Ok(mut running) = self.registry.running.lock() {
            running.remove(&(self.owner.clone(), self.id.clone()));
        }
    }
}

/// One statement of a principal's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The SQL text.
    pub sql: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    pub duration_ms: u64,
    /// Rows returned (or affected).
    pub rows: u64,
    /// `ok`, `error`, `denied` or `cancelled`.
    pub outcome: String,
    /// What went wrong, when it did.
    pub error: Option<String>,
}

/// Whether a client's query id is acceptable: 1–64 letters, digits, `-` and `_`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Session {
    /// Registers a statement as running under `id` (or a new id) until the returned handle is
    /// dropped; `cancellable` is false for writes, which run to completion.
    pub fn start_query(&self, id: Option<String>, cancellable: bool) -> Result<RunningQuery> {
        let id = match id {
            Some(id) if !valid_id(&id) => {
                return Err(ServiceError::Invalid(format!(
                    "query_id '{id}' is not valid: use 1 to 64 letters, digits, '-' or '_'"
                )));
            }
            Some(id) => id,
            None => {
                let mut b = [0u8; 12];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
                hex::encode(b)
            }
        };
        let (cancel, cancelled) = watch::channel(None);
        let mut running = self
            .queries
            .running
            .lock()
            .map_err(|_| ServiceError::Invalid("the query registry is unusable".into()))?;
        let owner = self.principal().name.clone();
        let key = (owner.clone(), id.clone());
        if running.contains_key(&key) {
            return Err(ServiceError::Invalid(format!(
                "a query of yours with id '{id}' is already running; give each query its own query_id"
            )));
        }
        running.insert(
            key,
            Entry {
                cancellable,
                cancel,
            },
        );
        Ok(RunningQuery {
            id,
            owner,
            cancelled,
            registry: self.queries.clone(),
        })
    }

    /// Cancels a running query: its owner or an administrator may; anyone else's query answers
    /// like one that is not running. Audited.
    pub async fn cancel_query(&self, id: &str) -> Result<()> {
        let admin = self.may(Action::Administer).await?;
        let me = self.principal().name.clone();
        let result = (|| {
            let running = self
                .queries
                .running
                .lock()
                .map_err(|_| ServiceError::Invalid("the query registry is unusable".into()))?;
            // One's own query by that id; administrators: anyone's.
            let entries: Vec<&Entry> = running
                .iter()
                .filter(|((owner, i), _)| i == id && (admin || *owner == me))
                .map(|(_, e)| e)
                .collect();
            if entries.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "no query '{id}' of yours is running (it may have finished)"
                )));
            }
            if entries.iter().any(|e| !e.cancellable) {
                return Err(ServiceError::Invalid(format!(
                    "'{id}' is a write, which runs to completion and cannot be cancelled"
                )));
            }
            for e in entries {
                e.cancel.send_replace(Some(me.clone()));
            }
            Ok(())
        })();
        self.audited("query.cancel", id, result).await
    }

    /// The principal's last `limit` statements (1–500), newest first.
    pub async fn query_history(&self, limit: usize) -> Result<Vec<HistoryEntry>> {
        if !(1..=MAX_HISTORY).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_HISTORY}, not {limit}"
            )));
        }
        let events = self
            .engine()
            .catalog()
            .audit_of(&self.principal().name, "query", limit as i64)
            .await?;
        Ok(events
            .into_iter()
            .map(|e| {
                let detail: serde_json::Value =
                    serde_json::from_str(&e.detail).unwrap_or_else(|_| json!({}));
                let number = |k: &str| detail.get(k).and_then(serde_json::Value::as_u64);
                // The REST server writes `duration_ms`, sessions `ms`.
                let duration_ms = number("duration_ms").or(number("ms")).unwrap_or(0);
                let started_at = chrono::DateTime::parse_from_rfc3339(&e.at)
                    .map(|end| {
                        (end - chrono::Duration::milliseconds(duration_ms as i64))
                            .with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    })
                    .unwrap_or(e.at);
                HistoryEntry {
                    sql: e.target,
                    started_at,
                    duration_ms,
                    rows: number("rows").unwrap_or(0),
                    outcome: e.outcome,
                    error: detail
                        .get("error")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn query_ids_are_short_and_plain() {
        assert!(valid_id("q-1_a"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
