//! The principal's view of the catalog: which tables it may see and under which policy. Every
//! lookup of a table on behalf of a principal goes through here, so a hidden table answers
//! exactly like a missing one.

use std::collections::BTreeMap;

use basin_catalog::access::{Action, Privilege, TablePolicy};
use basin_catalog::{Dataset, Hub, Table};
use basin_core::TableRef;
use basin_lake::{Commit, LakeTable};

use crate::engine::Engine;
use crate::{Result, SqlError};

/// The table and the policy the engine's principal sees it under, or "not found".
pub async fn table_policy(engine: &Engine, t: &TableRef) -> Result<(Table, TablePolicy)> {
    let catalog = engine.catalog();
    let principal = engine.principal().filter(|p| !p.is_admin());
    let Some(principal) = principal else {
        // Administrators see everything, so the catalog's own error (which may name a missing
        // dataset) is fine.
        let table = catalog.require_table(t).await?;
        let policy = TablePolicy::unrestricted(&table);
        return Ok((table, policy));
    };
    let Some(table) = catalog.table(t).await? else {
        return Err(not_found(engine, t).await);
    };
    let snapshot = catalog.access_snapshot().await?;
    let dataset = catalog.require_dataset(&t.dataset_ref()).await?;
    match snapshot.table_policy(principal, &dataset, &table) {
        Some(policy) => Ok((table, policy)),
        None => Err(not_found(engine, t).await),
    }
}

/// A table's entry as its policy shows it: only the visible columns, and keys and partition
/// columns only where visible (a hidden column's name is hidden too).
fn as_seen(mut table: Table, policy: &TablePolicy) -> Table {
    let visible = |c: &String| policy.columns.iter().any(|p| &p.name == c);
    table.columns.retain(|c| visible(&c.name));
    table.primary_key.retain(visible);
    table.partition_columns.retain(visible);
    table
}

/// Fails unless the policy holds `privilege`.
pub fn require(policy: &TablePolicy, privilege: Privilege, t: &TableRef) -> Result<()> {
    if policy.allows(privilege) {
        Ok(())
    } else {
        Err(SqlError::Denied(format!(
            "permission denied: you need {privilege} on table '{t}'; ask its owner for a grant"
        )))
    }
}

/// Every table the principal may see in a hub and/or dataset (everywhere when both are
/// `None`), with its columns and policy, by name. The cost grows with the tables in scope only.
pub async fn visible_tables(
    engine: &Engine,
    hub: Option<&str>,
    dataset: Option<&str>,
) -> Result<Vec<(Table, TablePolicy)>> {
    let catalog = engine.catalog();
    let tables = catalog.tables_with_columns(hub, dataset).await?;
    let Some(principal) = engine.principal() else {
        return Ok(tables
            .into_iter()
            .map(|t| {
                let p = TablePolicy::unrestricted(&t);
                (t, p)
            })
            .collect());
    };
    let snapshot = catalog.access_snapshot().await?;
    let datasets: BTreeMap<(String, String), Dataset> = catalog
        .datasets(hub)
        .await?
        .into_iter()
        .map(|d| ((d.hub.clone(), d.name.clone()), d))
        .collect();
    Ok(tables
        .into_iter()
        .filter_map(|t| {
            let d = datasets.get(&(t.hub.clone(), t.dataset.clone()))?;
            let policy = snapshot.table_policy(principal, d, &t)?;
            Some((as_seen(t, &policy), policy))
        })
        .collect())
}

/// What a principal may see of the catalog, within a hub and/or dataset.
pub struct Visible {
    /// Hubs, by name.
    pub hubs: Vec<Hub>,
    /// Datasets, by hub and name.
    pub datasets: Vec<Dataset>,
    /// Tables with the policy they are seen under, by name.
    pub tables: Vec<(Table, TablePolicy)>,
}

/// The hubs, datasets and tables the principal may see in a scope: a dataset is visible when a
/// grant names it (or its hub) or when one of its tables is visible; a hub likewise.
pub async fn visible(engine: &Engine, hub: Option<&str>, dataset: Option<&str>) -> Result<Visible> {
    let tables = visible_tables(engine, hub, dataset).await?;
    let (hubs, datasets) = roll_up(engine, hub, dataset, &tables).await?;
    Ok(Visible {
        hubs,
        datasets,
        tables,
    })
}

/// The hubs and datasets the principal may see in a scope, as [`visible`] decides them, but
/// without reading tables and columns unless a tag grant could show a table of a dataset that
/// is not visible by itself: a listing of hubs or datasets costs what the datasets cost.
pub async fn visible_datasets(
    engine: &Engine,
    hub: Option<&str>,
    dataset: Option<&str>,
) -> Result<(Vec<Hub>, Vec<Dataset>)> {
    let tables = match engine.principal() {
        Some(p)
            if engine
                .catalog()
                .access_snapshot()
                .await?
                .sees_tables_by_tag(p) =>
        {
            visible_tables(engine, hub, dataset).await?
        }
        _ => Vec::new(),
    };
    roll_up(engine, hub, dataset, &tables).await
}

async fn roll_up(
    engine: &Engine,
    hub: Option<&str>,
    dataset: Option<&str>,
    tables: &[(Table, TablePolicy)],
) -> Result<(Vec<Hub>, Vec<Dataset>)> {
    let catalog = engine.catalog();
    let datasets: Vec<Dataset> = catalog
        .datasets(hub)
        .await?
        .into_iter()
        .filter(|d| dataset.is_none_or(|name| d.name == name))
        .collect();
    let hubs: Vec<Hub> = catalog
        .hubs()
        .await?
        .into_iter()
        .filter(|h| hub.is_none_or(|name| h.name == name))
        .collect();
    Ok(match engine.principal() {
        None => (hubs, datasets),
        Some(p) => {
            let seen: Vec<(String, String)> = tables
                .iter()
                .map(|(t, _)| (t.hub.clone(), t.dataset.clone()))
                .collect();
            catalog
                .access_snapshot()
                .await?
                .roll_up(p, hubs, datasets, &seen)
        }
    })
}

/// The error for a table that is missing or hidden; suggestions come from visible tables only.
pub(crate) async fn not_found(engine: &Engine, t: &TableRef) -> SqlError {
    // Tables of the same dataset; those of the whole hub only when that dataset shows none.
    let mut candidates = Vec::new();
    for dataset in [Some(t.dataset.as_str()), None] {
        if let Ok(v) = visible_tables(engine, Some(t.hub.as_str()), dataset).await {
            candidates = v
                .into_iter()
                .map(|(x, _)| format!("{}.{}", x.dataset, x.name))
                .collect();
        }
        if !candidates.is_empty() {
            break;
        }
    }
    let wanted = format!("{}.{}", t.dataset, t.table);
    SqlError::NotFound {
        kind: "table",
        name: t.to_string(),
        suggestion: basin_core::closest(&wanted, candidates.iter().map(String::as_str))
            .map(|s| format!("{}.{s}", t.hub)),
    }
}

/// Whether the engine's principal may take an action that concerns no single object (the
/// trusted operator may take every one).
pub async fn may(engine: &Engine, action: Action<'_>) -> Result<bool> {
    Ok(match engine.principal() {
        None => true,
        Some(p) => engine.catalog().access_snapshot().await?.may(p, action),
    })
}

/// The commits of a table, newest first, as the principal may see them: the parameters of a
/// commit (predicates with literal values, schemas with every column, paths) only when it sees
/// the whole table in clear.
pub async fn table_history(
    engine: &Engine,
    t: &TableRef,
    limit: Option<usize>,
) -> Result<Vec<Commit>> {
    let (entry, policy) = table_policy(engine, t).await?;
    if entry.is_view() {
        return Ok(Vec::new()); // a view has no commits of its own
    }
    let commits = LakeTable::open(&entry.location)
        .await?
        .history(limit)
        .await?;
    Ok(commits
        .into_iter()
        .map(|c| visible_commit(&policy, c))
        .collect())
}

fn visible_commit(policy: &TablePolicy, mut commit: Commit) -> Commit {
    if !policy.sees_everything() {
        commit.parameters = serde_json::json!({
            "redacted": "commit parameters are shown to those who see every row and column of the table in clear"
        })
        .to_string();
    }
    commit
}

/// A table's current version and number of data files.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TableStats {
    pub version: i64,
    pub files: usize,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Rows of the table (all of them, row filters aside); `None` when the files' statistics
    /// do not count them.
    pub rows: Option<u64>,
}

/// A table as the principal may see it: its catalog entry, its policy and its statistics. The
/// location is blanked for principals who may not see storage paths.
pub async fn table_details(
    engine: &Engine,
    t: &TableRef,
) -> Result<(Table, TablePolicy, TableStats)> {
    let (entry, policy) = table_policy(engine, t).await?;
    let stats = match entry.is_view() {
        true => TableStats {
            version: -1,
            files: 0,
            bytes: 0,
            rows: None,
        },
        false => {
            let lake = LakeTable::open(&entry.location).await?;
            let (bytes, rows) = lake.size()?;
            TableStats {
                version: lake.version(),
                files: lake.file_count()?,
                bytes,
                rows,
            }
        }
    };
    let mut entry = as_seen(entry, &policy);
    // Storage paths are for administrators.
    if !may(engine, Action::Administer).await? {
        entry.location = String::new();
    }
    Ok((entry, policy, stats))
}
