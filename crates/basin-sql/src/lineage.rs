//! Table-level lineage: which tables (or outside systems) feed which tables — through models
//! (the tables a model's query reads) and sources (the folder, database or topic a source
//! loads from) — as the principal may see it.

use std::collections::HashSet;

use basin_core::TableRef;

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
