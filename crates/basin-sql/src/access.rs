//! The principal's view of the catalog: which tables it may see and under which policy. Every
//! lookup of a table on behalf of a principal goes through here, so a hidden table answers
//! exactly like a missing one.

use std::collections::BTreeMap;

use basin_catalog::Table;
use basin_catalog::access::{Privilege, TablePolicy};
use basin_core::TableRef;

use crate::engine::Engine;
use crate::{Result, SqlError};

/// The table and the policy the engine's principal sees it under, or "not found".
pub async fn table_policy(engine: &Engine, t: &TableRef) -> Result<(Table, TablePolicy)> {
    let catalog = engine.catalog();
    let Some(principal) = engine.principal() else {
        // The operator sees everything, so the catalog's own error (which may name a missing
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

/// Every table the principal may see, with its columns and policy, by name.
pub async fn visible_tables(engine: &Engine) -> Result<Vec<(Table, TablePolicy)>> {
    let catalog = engine.catalog();
    let mut tables = catalog.tables(None, None).await?;
    let mut columns: BTreeMap<TableRef, Vec<basin_catalog::Column>> = BTreeMap::new();
    for (t, c) in catalog.all_columns().await? {
        columns.entry(t).or_default().push(c);
    }
    for t in &mut tables {
        t.columns = columns.remove(&t.table_ref()).unwrap_or_default();
    }
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
    let datasets: BTreeMap<(String, String), basin_catalog::Dataset> = catalog
        .datasets(None)
        .await?
        .into_iter()
        .map(|d| ((d.hub.clone(), d.name.clone()), d))
        .collect();
    Ok(tables
        .into_iter()
        .filter_map(|t| {
            let d = datasets.get(&(t.hub.clone(), t.dataset.clone()))?;
            let policy = snapshot.table_policy(principal, d, &t)?;
            Some((t, policy))
        })
        .collect())
}

/// The error for a table that is missing or hidden; suggestions come from visible tables only.
pub(crate) async fn not_found(engine: &Engine, t: &TableRef) -> SqlError {
    let candidates: Vec<String> = match visible_tables(engine).await {
        Ok(v) => v
            .into_iter()
            .filter(|(x, _)| x.hub == t.hub.as_str())
            .map(|(x, _)| format!("{}.{}", x.dataset, x.name))
            .collect(),
        Err(_) => Vec::new(),
    };
    let wanted = format!("{}.{}", t.dataset, t.table);
    SqlError::NotFound {
        kind: "table",
        name: t.to_string(),
        suggestion: basin_core::closest(&wanted, candidates.iter().map(String::as_str))
            .map(|s| format!("{}.{s}", t.hub)),
    }
}
