//! [`Session`]: one principal acting through one origin.

use std::path::PathBuf;
use std::sync::Arc;

use basin_catalog::access::{Action, Principal, TablePolicy};
use basin_catalog::{Table, access::Securable};
use basin_core::TableRef;
use basin_ingest::{LoadMode, LoadReport, LoadRequest, Progress};
use basin_keys::Keystore;
use basin_lake::Commit;
use basin_sql::access::TableStats;
use basin_sql::{Engine, QueryOutput};
use basin_tables::{Committed, Write};
use datafusion::execution::SendableRecordBatchStream;
use serde_json::{Value, json};

use crate::{Result, ServiceError};

/// A principal's session: every read, write and administrative action of one caller.
#[derive(Clone)]
pub struct Session {
    engine: Engine,
    pub(crate) keystore: Keystore,
    pub(crate) data_dir: PathBuf,
    /// The keystore's directory (for backups).
    pub(crate) keys_dir: PathBuf,
    /// The hub's search index.
    pub(crate) search: crate::search::SearchCache,
    /// The hub's running queries (to cancel them).
    pub(crate) queries: Arc<crate::queries::Registry>,
}

/// A table as the session's principal may see it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The catalog entry (location blank unless the principal may see storage paths).
    pub table: Table,
    pub policy: TablePolicy,
    pub stats: TableStats,
}

impl Session {
    pub(crate) fn new(engine: Engine, keystore: Keystore, data_dir: PathBuf) -> Session {
        Session {
            engine,
            keystore,
            keys_dir: data_dir.join("keys"),
            data_dir,
            search: Default::default(),
            queries: Default::default(),
        }
    }

    pub(crate) fn with_queries(mut self, queries: Arc<crate::queries::Registry>) -> Session {
        self.queries = queries;
        self
    }

    pub(crate) fn with_keys_dir(mut self, keys_dir: PathBuf) -> Session {
        self.keys_dir = keys_dir;
        self
    }

    pub(crate) fn with_search(mut self, search: crate::search::SearchCache) -> Session {
        self.search = search;
        self
    }

    /// Who acts.
    pub fn principal(&self) -> &Principal {
        self.engine
            .principal()
            .expect("a session always acts for a principal")
    }

    /// The SQL engine acting as the principal (for surfaces that stream results).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the session's requests come from.
    pub fn origin(&self) -> String {
        self.engine.actor().origin
    }

    /// Whether the principal may take `action` (the catalog's one decision).
    pub async fn may(&self, action: Action<'_>) -> Result<bool> {
        Ok(basin_sql::access::may(&self.engine, action).await?)
    }

    /// Fails unless the principal may take `action` on `object` (a hidden object answers "not
    /// found", like a missing one).
    pub async fn require_on(&self, object: &Securable, action: Action<'_>) -> Result<()> {
        Ok(basin_sql::check(&self.engine, object, action).await?)
    }

    /// Fails unless the principal may take an action that concerns no single object.
    pub async fn require(&self, action: Action<'_>) -> Result<()> {
        if self.may(action).await? {
            Ok(())
        } else {
            Err(ServiceError::Denied(
                "permission denied: this needs the admin role".into(),
            ))
        }
    }

    /// Appends to the audit log in the principal's name.
    pub async fn audit(&self, action: &str, target: &str, outcome: &str, detail: Value) {
        let actor = self.engine.actor();
        self.engine
            .tables()
            .audit(&actor, action, target, outcome, detail)
            .await
    }

    /// Records the outcome of an action (`ok`, `denied` or `error`) and passes it on.
    pub async fn audited<T>(&self, action: &str, target: &str, result: Result<T>) -> Result<T> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if is_denial(e) => "denied",
            Err(_) => "error",
        };
        let detail = match &result {
            Err(e) => json!({"error": e.to_string()}),
            Ok(_) => json!({}),
        };
        self.audit(action, target, outcome, detail).await;
        result
    }

    /// Runs SQL (every statement; the output of the last one).
    pub async fn query(&self, sql: &str) -> Result<QueryOutput> {
        let started = std::time::Instant::now();
        let result = self.engine.execute(sql).await.map_err(ServiceError::from);
        let (outcome, detail) = match &result {
            Ok(out) => (
                "ok",
                json!({"tables": Engine::tables_named(sql), "rows": out.num_rows(), "ms": started.elapsed().as_millis() as u64}),
            ),
            Err(e) => (
                if is_denial(e) { "denied" } else { "error" },
                json!({"tables": Engine::tables_named(sql), "error": e.to_string()}),
            ),
        };
        self.audit("query", &shorten(sql), outcome, detail).await;
        result
    }

    /// Runs one SELECT and streams its rows (the caller audits, once it knows the outcome).
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        Ok(self.engine.stream(sql).await?)
    }

    /// Whether the principal may load files into `table` with `mode` (checked before a
    /// surface reads a large input).
    pub async fn check_load(&self, table: &TableRef, mode: &LoadMode) -> Result<()> {
        Ok(basin_ingest::check_load(
            self.engine.tables(),
            &self.engine.actor(),
            table,
            mode,
            vec![],
        )
        .await?)
    }

    /// Loads files into a table through the write path (audited there).
    pub async fn load(&self, request: LoadRequest, progress: Arc<Progress>) -> Result<LoadReport> {
        Ok(basin_ingest::load(
            self.engine.tables(),
            &self.engine.actor(),
            request,
            progress,
        )
        .await?)
    }

    /// A table's entry, policy and statistics, as the principal may see them.
    pub async fn table(&self, t: &TableRef) -> Result<TableInfo> {
        let (table, policy, stats) = basin_sql::access::table_details(&self.engine, t).await?;
        Ok(TableInfo {
            table,
            policy,
            stats,
        })
    }

    /// A table's commits, newest first, as the principal may see them.
    pub async fn history(&self, t: &TableRef, limit: Option<usize>) -> Result<Vec<Commit>> {
        Ok(basin_sql::access::table_history(&self.engine, t, limit).await?)
    }

    /// Restores a table to an earlier version, in one new commit.
    pub async fn restore(&self, t: &TableRef, version: i64) -> Result<Committed> {
        Ok(self
            .engine
            .tables()
            .commit(&self.engine.actor(), t, Write::Restore { version })
            .await?)
    }
}

/// Whether an error is a refusal (as opposed to a failure).
pub(crate) fn is_denial(e: &ServiceError) -> bool {
    use basin_sql::SqlError;
    use basin_tables::TablesError;
    if let ServiceError::Sql(sql) = e
        && matches!(sql.root(), SqlError::Denied(_) | SqlError::NotFound { .. })
    {
        return true;
    }
    matches!(
        e,
        ServiceError::Denied(_)
            | ServiceError::NotFound(_)
            | ServiceError::Sql(SqlError::Denied(_) | SqlError::NotFound { .. })
            | ServiceError::Tables(TablesError::Denied(_) | TablesError::NotFound { .. })
            | ServiceError::Catalog(basin_catalog::CatalogError::NotFound { .. })
    )
}

/// SQL text for the audit log's target column: bounded, on one line.
fn shorten(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
