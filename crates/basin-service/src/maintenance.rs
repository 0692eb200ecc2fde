//! Table maintenance: compaction (`optimize`) and `vacuum`, on demand by those who manage a
//! table and by the server's maintainer, which passes over every table by its policy (one node
//! at a time, under a lease). Both are writes on the one write path (decided, sequenced with
//! the table's other writes, audited) and each run is recorded for `system.maintenance_runs`.

use std::time::{Duration, Instant};

use basin_catalog::{MaintenancePolicy, MaintenanceRun};
use basin_core::TableRef;
use basin_lake::LakeError;
use basin_lake::LakeTable;
use basin_tables::{Actor, Tables, TablesError, Write};

use crate::{Hub, Result, Session};

/// How often the maintainer vacuums a table.
const VACUUM_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// What a compaction should do; the table's policy gives what is not said.
#[derive(Debug, Clone, Default)]
pub struct OptimizeOptions {
    /// Pack files to about this many bytes.
    pub target_file_bytes: Option<u64>,
    /// Z-order the files by these columns.
    pub zorder: Option<Vec<String>>,
}

impl Session {
    /// Compacts a table's small files (MANAGE on the table).
    pub async fn optimize_table(
        &self,
        t: &TableRef,
        o: &OptimizeOptions,
    ) -> Result<MaintenanceRun> {
        let policy = self.maintenance_policy(t).await?;
        let write = Write::Optimize {
            target_size: Some(o.target_file_bytes.unwrap_or(policy.target_file_bytes)),
            zorder: o.zorder.clone().unwrap_or(policy.zorder),
        };
        self.maintain(t, write).await
    }

    /// Removes the files and log no version within `retention` (default: the table's policy)
    /// needs (MANAGE on the table).
    pub async fn vacuum_table(
        &self,
        t: &TableRef,
        retention: Option<Duration>,
    ) -> Result<MaintenanceRun> {
        let policy = self.maintenance_policy(t).await?;
        let write = Write::Vacuum {
            retention: Some(retention.unwrap_or(policy.retention())),
        };
        self.maintain(t, write).await
    }

    /// A compaction or vacuum asked for by the principal.
    async fn maintain(&self, t: &TableRef, write: Write) -> Result<MaintenanceRun> {
        let engine = self.engine();
        run(
            engine.tables(),
            engine.catalog(),
            &engine.actor(),
            t,
            write,
            "manual",
        )
        .await
    }

    /// A table's maintenance policy (for those who see the table).
    pub async fn maintenance_policy(&self, t: &TableRef) -> Result<MaintenancePolicy> {
        basin_sql::access::table_policy(self.engine(), t).await?;
        Ok(self.engine().catalog().maintenance_policy(t).await?)
    }

    /// Sets a table's maintenance policy (MANAGE on the table). Audited.
    pub async fn set_maintenance_policy(&self, t: &TableRef, p: &MaintenancePolicy) -> Result<()> {
        let result = async {
            let object = basin_catalog::access::Securable::table(t);
            self.require_on(&object, basin_catalog::access::Action::Manage(&object))
                .await?;
            Ok(self.engine().catalog().set_maintenance_policy(t, p).await?)
        }
        .await;
        self.audited("table.maintenance", &t.to_string(), result)
            .await
    }
}

impl Hub {
    /// One pass of the maintainer over every table whose policy has `auto`: a table with at
    /// least `min_files` small files is compacted, and one not vacuumed in the last 24 hours is
    /// vacuumed with its retention. A table that fails is recorded and the pass goes on.
    pub async fn maintain(&self) -> Result<Vec<MaintenanceRun>> {
        let catalog = self.catalog();
        let actor = Actor {
            principal: None,
            origin: "maintainer".into(),
        };
        let vacuumed = catalog.last_maintenance_runs("vacuum").await?;
        let policies = catalog.maintenance_policies().await?;
        let now = chrono::Utc::now();
        let mut runs = Vec::new();
        for entry in catalog.tables(None, None).await? {
            if entry.is_view() {
                continue;
            }
            let t = entry.table_ref();
            let policy = policies.get(&t).cloned().unwrap_or_default();
            if !policy.auto {
                continue;
            }
            let small = LakeTable::open(&entry.location)
                .await
                .and_then(|lake| lake.small_file_count(policy.target_file_bytes / 2));
            let small = match small {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(table = %t, "the maintainer could not open the table: {e}");
                    continue;
                }
            };
            if small as u64 >= policy.min_files {
                let write = Write::Optimize {
                    target_size: Some(policy.target_file_bytes),
                    zorder: policy.zorder.clone(),
                };
                runs.push(run(self.tables(), catalog, &actor, &t, write, "auto").await);
            }
            let due = vacuumed
                .get(&t)
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_none_or(|at| now - at.to_utc() >= VACUUM_EVERY);
            if due {
                let write = Write::Vacuum {
                    retention: Some(policy.retention()),
                };
                runs.push(run(self.tables(), catalog, &actor, &t, write, "auto").await);
            }
        }
        Ok(runs.into_iter().filter_map(|r| r.ok()).collect())
    }

    /// Runs [`Hub::maintain`] every `every`, on the one node that holds the `maintenance`
    /// lease, until the returned task is aborted.
    pub fn spawn_maintainer(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let ttl = every.max(Duration::from_secs(30));
                match hub
                    .run_exclusive("maintenance", ttl, |_| hub.maintain())
                    .await
                {
                    Ok(crate::Exclusive::Ran(Err(e))) => {
                        tracing::warn!("a maintenance pass failed: {e}")
                    }
                    Err(e) => tracing::warn!("the maintenance lease is unavailable: {e}"),
                    _ => {}
                }
            }
        })
    }
}

/// Makes a compaction or vacuum through the write path and records it (a refused one is only
/// audited).
async fn run(
    tables: &Tables,
    catalog: &basin_catalog::Catalog,
    actor: &Actor,
    t: &TableRef,
    write: Write,
    trigger: &str,
) -> Result<MaintenanceRun> {
    let operation = write.operation();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = Instant::now();
    let result = match tables.commit(actor, t, write).await {
        Err(e) if refused(&e) => return Err(e.into()),
        other => other,
    };
    let (done, error) = match &result {
        Ok(c) => (c.maintenance.clone().unwrap_or_default(), String::new()),
        Err(e) => (Default::default(), e.to_string()),
    };
    let record = MaintenanceRun {
        table: t.clone(),
        operation: operation.into(),
        trigger: trigger.into(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        outcome: if error.is_empty() { "ok" } else { "error" }.into(),
        version: done.version,
        files_before: done.files_before,
        files_after: done.files_after,
        bytes_rewritten: done.bytes_rewritten,
        files_deleted: done.files_deleted,
        error,
    };
    if let Err(e) = catalog.record_maintenance_run(&record).await {
        tracing::error!(table = %t, "a {operation} ran but was not recorded: {e}");
    }
    result?;
    Ok(record)
}

/// Whether a maintenance write was refused (not allowed, not found, not acceptable as asked)
/// rather than failed: a refusal is audited, not recorded as a run.
fn refused(e: &TablesError) -> bool {
    matches!(
        e,
        TablesError::Denied(_)
            | TablesError::NotFound { .. }
            | TablesError::Invalid(_)
            | TablesError::Catalog(basin_catalog::CatalogError::NotFound { .. })
            | TablesError::Lake(LakeError::InvalidInput(_) | LakeError::UnknownColumn { .. })
    )
}
