//! Table-level lineage: which tables (or outside systems) feed which tables — through models
//! (the tables a model's query reads) and sources (the folder, database or topic a source
//! loads from) — as the principal may see it; and column-level lineage, from the column map
//! each model's record keeps (see [`crate::column_lineage`]).

use std::collections::{HashMap, HashSet};

use basin_core::TableRef;

use crate::column_lineage::QueryLineage;
use crate::engine::Engine;
use crate::{Result, access};

/// One edge: `upstream` feeds `downstream`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineageEdge {
    /// `hub.dataset.table`, or an outside system (`s3://…`, a folder, `postgres://…`,
    /// `kafka://brokers/topic`).
    pub upstream: String,
    /// `hub.dataset.table`.
    pub downstream: String,
    /// `model` or `source`.
    pub kind: &'static str,
    /// The model (its target) or the source (its name) that makes the edge.
    pub via: String,
}

/// Every edge whose ends the principal sees (an outside system counts as seen when its
/// source's table is).
pub async fn edges(engine: &Engine) -> Result<Vec<LineageEdge>> {
    let seen: HashSet<String> = access::visible_tables(engine, None, None)
        .await?
        .into_iter()
        .map(|(t, _)| t.table_ref().to_string())
        .collect();
    let mut edges = Vec::new();
    let catalog = engine.catalog();
    for m in catalog.models().await? {
        let target = m.table.to_string();
        let upstream = m.spec["upstream"].as_array().cloned().unwrap_or_default();
        for u in upstream.iter().filter_map(|u| u.as_str()) {
            edges.push(LineageEdge {
                upstream: u.to_string(),
                downstream: target.clone(),
                kind: "model",
                via: target.clone(),
            });
        }
    }
    for s in catalog.sources().await? {
        let text = |k: &str| s.setting(k).unwrap_or_default().to_string();
        let upstream = match s.kind.as_str() {
            "kafka" => {
                let brokers: Vec<&str> = s.config["brokers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b.as_str())
                    .collect();
                format!("kafka://{}/{}", brokers.join(","), text("topic"))
            }
            "postgres" => text("url"),
            _ => text("location"),
        };
        edges.push(LineageEdge {
            upstream,
            downstream: s.table.to_string(),
            kind: "source",
            via: s.name.clone(),
        });
    }
    let is_table = |name: &str| TableRef::parse(name).is_ok() && !name.contains("://");
    edges.retain(|e| {
        seen.contains(&e.downstream) && (!is_table(&e.upstream) || seen.contains(&e.upstream))
    });
    Ok(edges)
}

/// The key of a model's recorded spec that holds its column lineage ([`QueryLineage`]),
/// derived when the model runs so that reading lineage plans nothing.
pub const MODEL_COLUMN_LINEAGE: &str = "column_lineage";

/// One column edge: `upstream`.`upstream_column` feeds `downstream`.`downstream_column`
/// (direct uses), or decides which rows `downstream` has (indirect uses: no downstream column).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnLineageEdge {
    /// `hub.dataset.table`.
    pub upstream: String,
    pub upstream_column: String,
    /// `hub.dataset.table`.
    pub downstream: String,
    /// `None` for an indirect use (filter, join, group_by, sort, window).
    pub downstream_column: Option<String>,
    /// `identity`, `transformation`, `aggregation` (direct); `filter`, `join`, `group_by`,
    /// `sort`, `window` (indirect).
    pub kind: &'static str,
    /// The model (its target) that makes the edge.
    pub via: String,
}

/// Every column edge of the models whose ends the principal sees: both tables, and both
/// columns (a column hidden from the principal by its grants or tags is never named).
pub async fn column_edges(engine: &Engine) -> Result<Vec<ColumnLineageEdge>> {
    let seen: HashMap<String, HashSet<String>> = access::visible_tables(engine, None, None)
        .await?
        .into_iter()
        .map(|(t, policy)| {
            let columns = policy.columns.into_iter().map(|c| c.name).collect();
            (t.table_ref().to_string(), columns)
        })
        .collect();
    let sees = |table: &str, column: Option<&str>| {
        seen.get(table)
            .is_some_and(|cols| column.is_none_or(|c| cols.contains(c)))
    };
    let mut edges = Vec::new();
    for m in engine.catalog().models().await? {
        let target = m.table.to_string();
        let Some(recorded) = m.spec.get(MODEL_COLUMN_LINEAGE) else {
            continue;
        };
        // A record this build cannot read is skipped: the model's next run writes it anew.
        let Ok(lineage) = serde_json::from_value::<QueryLineage>(recorded.clone()) else {
            continue;
        };
        for e in lineage.edges {
            if !sees(&target, e.column.as_deref()) || !sees(&e.upstream, Some(&e.upstream_column)) {
                continue;
            }
            edges.push(ColumnLineageEdge {
                upstream: e.upstream,
                upstream_column: e.upstream_column,
                downstream: target.clone(),
                downstream_column: e.column,
                kind: e.kind.as_str(),
                via: target.clone(),
            });
        }
    }
    Ok(edges)
}
