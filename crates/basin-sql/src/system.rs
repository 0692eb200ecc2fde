//! Virtual tables about the catalog itself: `system.hubs`, `system.datasets`, `system.tables`,
//! `system.columns`, `system.history`, `system.maintenance_runs`, `system.source_runs`,
//! `system.model_runs`, `system.lineage`, `system.column_lineage` and (for
//! administrators)
//! `system.audit`. Built when a
//! statement names them, from what the statement's principal may see.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use basin_core::TableRef;

use crate::engine::Engine;
use crate::{Result, SqlError, access};
use basin_catalog::access::Action;

/// The schema name of the virtual tables.
pub(crate) const SCHEMA: &str = "system";

/// The schema name of the SQL standard's views of the catalog (built from the same lists).
pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";

const INFORMATION_SCHEMA_TABLES: &[&str] = &["schemata", "tables", "columns"];

const TABLES: &[&str] = &[
    "hubs",
    "datasets",
    "tables",
    "columns",
    "history",
    "maintenance_runs",
    "source_runs",
    "model_runs",
    "lineage",
    "column_lineage",
];

/// Most runs `system.maintenance_runs` holds (the newest).
const MAINTENANCE_RUNS: usize = 10_000;

/// A column of a virtual table under construction.
enum Col {
    Text(&'static str, Vec<Option<String>>),
    Int(&'static str, Vec<i64>),
    Bool(&'static str, Vec<bool>),
    Time(&'static str, Vec<Option<i64>>),
}

fn batch(columns: Vec<Col>) -> Result<Arc<dyn TableProvider>> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns
        .into_iter()
        .map(|c| match c {
            Col::Text(n, v) => (
                Field::new(n, DataType::Utf8, true),
                Arc::new(StringArray::from(v)) as ArrayRef,
            ),
            Col::Int(n, v) => (
                Field::new(n, DataType::Int64, false),
                Arc::new(Int64Array::from(v)) as ArrayRef,
            ),
            Col::Bool(n, v) => (
                Field::new(n, DataType::Boolean, false),
                Arc::new(BooleanArray::from(v)) as ArrayRef,
            ),
            Col::Time(n, v) => (
                Field::new(
                    n,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ),
                Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef,
            ),
        })
        .unzip();
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| SqlError::Query(e.to_string()))?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn text(v: impl IntoIterator<Item = String>) -> Vec<Option<String>> {
    v.into_iter().map(Some).collect()
}

/// Texts where an empty one (no error) is NULL.
fn or_null(v: impl IntoIterator<Item = String>) -> Vec<Option<String>> {
    v.into_iter()
        .map(|t| (!t.is_empty()).then_some(t))
        .collect()
}

/// Counts as BIGINT (saturating).
fn counts(v: impl IntoIterator<Item = u64>) -> Vec<i64> {
    v.into_iter()
        .map(|n| n.min(i64::MAX as u64) as i64)
        .collect()
}

/// A column the principal may see, with its position among the visible columns of its table and
/// how the principal sees its values.
struct VisibleColumn {
    table: TableRef,
    ordinal: i64,
    column: basin_catalog::Column,
    /// Personal data, stored encrypted.
    pii: bool,
    /// Shown masked, or as tokens, to the principal.
    masked: bool,
}

/// Every column the principal may see, by table and position (hidden columns are absent and
/// leave no gap in the numbering).
async fn visible_columns(engine: &Engine) -> Result<Vec<VisibleColumn>> {
    let mut out = Vec::new();
    for (t, policy) in access::visible_tables(engine, None, None).await? {
        let table = t.table_ref();
        let mut ordinal = 0;
        for column in t.columns {
            let Some(p) = policy.columns.iter().find(|p| p.name == column.name) else {
                continue;
            };
            ordinal += 1;
            out.push(VisibleColumn {
                table: table.clone(),
                ordinal,
                pii: p.pii,
                masked: p.mask.is_some() || (p.pii && !p.clear),
                column,
            });
        }
    }
    Ok(out)
}

/// The virtual table `system.<name>`, showing only what the engine's principal may see.
pub(crate) async fn table(engine: &Engine, name: &str) -> Result<Arc<dyn TableProvider>> {
    let catalog = engine.catalog();
    match name {
        "audit" if access::may(engine, Action::ReadAudit).await? => {
            let events = catalog.audit_events(None, i64::MAX).await?;
            batch(vec![
                Col::Time("at", events.iter().map(|e| time(&e.at)).collect()),
                Col::Text(
                    "principal",
                    text(events.iter().map(|e| e.principal.clone())),
                ),
                Col::Text("source", text(events.iter().map(|e| e.source.clone()))),
                Col::Text("action", text(events.iter().map(|e| e.action.clone()))),
                Col::Text("target", text(events.iter().map(|e| e.target.clone()))),
                Col::Text("outcome", text(events.iter().map(|e| e.outcome.clone()))),
                Col::Text("detail", text(events.iter().map(|e| e.detail.clone()))),
            ])
        }
        "hubs" => {
            let hubs = access::visible_datasets(engine, None, None).await?.0;
            let storage = access::may(engine, Action::Administer).await?;
            batch(vec![
                Col::Text("name", text(hubs.iter().map(|h| h.name.clone()))),
                Col::Text(
                    "storage_root",
                    hubs.iter()
                        .map(|h| storage.then(|| h.storage_root.clone()))
                        .collect(),
                ),
                Col::Text(
                    "description",
                    text(hubs.iter().map(|h| h.description.clone())),
                ),
                Col::Time(
                    "created_at",
                    hubs.iter().map(|h| time(&h.created_at)).collect(),
                ),
            ])
        }
        "datasets" => {
            let ds = access::visible_datasets(engine, None, None).await?.1;
            batch(vec![
                Col::Text("hub", text(ds.iter().map(|d| d.hub.clone()))),
                Col::Text("name", text(ds.iter().map(|d| d.name.clone()))),
                Col::Text("layer", text(ds.iter().map(|d| d.layer.to_string()))),
                Col::Text("domain", ds.iter().map(|d| d.domain.clone()).collect()),
                Col::Text("owner", ds.iter().map(|d| d.owner.clone()).collect()),
                Col::Text(
                    "description",
                    text(ds.iter().map(|d| d.description.clone())),
                ),
                Col::Text("tags", text(ds.iter().map(|d| d.tags.join(",")))),
                Col::Text(
                    "update_frequency",
                    ds.iter()
                        .map(|d| d.contract.update_frequency.clone())
                        .collect(),
                ),
                Col::Text(
                    "support_contact",
                    ds.iter()
                        .map(|d| d.contract.support_contact.clone())
                        .collect(),
                ),
                Col::Time(
                    "created_at",
                    ds.iter().map(|d| time(&d.created_at)).collect(),
                ),
                Col::Time(
                    "updated_at",
                    ds.iter().map(|d| time(&d.updated_at)).collect(),
                ),
            ])
        }
        "tables" => {
            let storage = access::may(engine, Action::Administer).await?;
            let ts: Vec<_> = access::visible_tables(engine, None, None)
                .await?
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            batch(vec![
                Col::Text("hub", text(ts.iter().map(|t| t.hub.clone()))),
                Col::Text("dataset", text(ts.iter().map(|t| t.dataset.clone()))),
                Col::Text("name", text(ts.iter().map(|t| t.name.clone()))),
                Col::Text("kind", text(ts.iter().map(|t| t.kind.clone()))),
                Col::Text(
                    "location",
                    ts.iter()
                        .map(|t| storage.then(|| t.location.clone()))
                        .collect(),
                ),
                Col::Text(
                    "description",
                    text(ts.iter().map(|t| t.description.clone())),
                ),
                Col::Text(
                    "primary_key",
                    text(ts.iter().map(|t| t.primary_key.join(","))),
                ),
                Col::Text(
                    "partition_columns",
                    text(ts.iter().map(|t| t.partition_columns.join(","))),
                ),
                Col::Text("tags", text(ts.iter().map(|t| t.tags.join(",")))),
                Col::Time(
                    "created_at",
                    ts.iter().map(|t| time(&t.created_at)).collect(),
                ),
                Col::Time(
                    "updated_at",
                    ts.iter().map(|t| time(&t.updated_at)).collect(),
                ),
            ])
        }
        "columns" => {
            let cs = visible_columns(engine).await?;
            batch(vec![
                Col::Text("hub", text(cs.iter().map(|c| c.table.hub.to_string()))),
                Col::Text(
                    "dataset",
                    text(cs.iter().map(|c| c.table.dataset.to_string())),
                ),
                Col::Text(
                    "table_name",
                    text(cs.iter().map(|c| c.table.table.to_string())),
                ),
                Col::Int("ordinal", cs.iter().map(|c| c.ordinal).collect()),
                Col::Text("name", text(cs.iter().map(|c| c.column.name.clone()))),
                Col::Text(
                    "data_type",
                    text(cs.iter().map(|c| c.column.data_type.clone())),
                ),
                Col::Bool("nullable", cs.iter().map(|c| c.column.nullable).collect()),
                Col::Text(
                    "description",
                    text(cs.iter().map(|c| c.column.description.clone())),
                ),
                Col::Text("tags", text(cs.iter().map(|c| c.column.tags.join(",")))),
                Col::Bool("pii", cs.iter().map(|c| c.pii).collect()),
                Col::Bool("masked", cs.iter().map(|c| c.masked).collect()),
            ])
        }
        "history" => {
            let (mut hub, mut dataset, mut table, mut version, mut at, mut op, mut params) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for (t, _) in access::visible_tables(engine, None, None).await? {
                for c in access::table_history(engine, &t.table_ref(), None).await? {
                    hub.push(Some(t.hub.clone()));
                    dataset.push(Some(t.dataset.clone()));
                    table.push(Some(t.name.clone()));
                    version.push(c.version);
                    at.push(c.timestamp.map(|t| t.timestamp_micros()));
                    op.push(Some(c.operation));
                    params.push(Some(c.parameters));
                }
            }
            batch(vec![
                Col::Text("hub", hub),
                Col::Text("dataset", dataset),
                Col::Text("table_name", table),
                Col::Int("version", version),
                Col::Time("timestamp", at),
                Col::Text("operation", op),
                Col::Text("parameters", params),
            ])
        }
        "maintenance_runs" => {
            // The newest runs of the tables the principal sees.
            let seen = seen_tables(engine).await?;
            let runs: Vec<_> = engine
                .catalog()
                .maintenance_runs(None, MAINTENANCE_RUNS)
                .await?
                .into_iter()
                .filter(|r| seen.contains(&r.table))
                .collect();
            let int = |f: fn(&basin_catalog::MaintenanceRun) -> u64| counts(runs.iter().map(f));
            batch(vec![
                Col::Text("hub", text(runs.iter().map(|r| r.table.hub.to_string()))),
                Col::Text(
                    "dataset",
                    text(runs.iter().map(|r| r.table.dataset.to_string())),
                ),
                Col::Text(
                    "table_name",
                    text(runs.iter().map(|r| r.table.table.to_string())),
                ),
                Col::Text("operation", text(runs.iter().map(|r| r.operation.clone()))),
                Col::Text("trigger", text(runs.iter().map(|r| r.trigger.clone()))),
                Col::Time(
                    "started_at",
                    runs.iter().map(|r| time(&r.started_at)).collect(),
                ),
                Col::Int("duration_ms", int(|r| r.duration_ms)),
                Col::Text("outcome", text(runs.iter().map(|r| r.outcome.clone()))),
                Col::Int("version", runs.iter().map(|r| r.version).collect()),
                Col::Int("files_before", int(|r| r.files_before)),
                Col::Int("files_after", int(|r| r.files_after)),
                Col::Int("bytes_rewritten", int(|r| r.bytes_rewritten)),
                Col::Int("files_deleted", int(|r| r.files_deleted)),
                Col::Text("error", or_null(runs.iter().map(|r| r.error.clone()))),
            ])
        }
        "source_runs" => {
            // The newest runs of the sources whose table the principal sees.
            let seen = seen_tables(engine).await?;
            let runs: Vec<_> = engine
                .catalog()
                .source_runs(None, MAINTENANCE_RUNS)
                .await?
                .into_iter()
                .filter(|r| seen.contains(&r.table))
                .collect();
            let int = |f: fn(&basin_catalog::SourceRun) -> u64| counts(runs.iter().map(f));
            batch(vec![
                Col::Text("source", text(runs.iter().map(|r| r.source.clone()))),
                Col::Text("hub", text(runs.iter().map(|r| r.table.hub.to_string()))),
                Col::Text(
                    "dataset",
                    text(runs.iter().map(|r| r.table.dataset.to_string())),
                ),
                Col::Text(
                    "table_name",
                    text(runs.iter().map(|r| r.table.table.to_string())),
                ),
                Col::Text("trigger", text(runs.iter().map(|r| r.trigger.clone()))),
                Col::Time(
                    "started_at",
                    runs.iter().map(|r| time(&r.started_at)).collect(),
                ),
                Col::Int("duration_ms", int(|r| r.duration_ms)),
                Col::Text("outcome", text(runs.iter().map(|r| r.outcome.clone()))),
                Col::Int("files", int(|r| r.files)),
                Col::Int("failed_files", int(|r| r.failed_files)),
                Col::Int("rows", int(|r| r.rows)),
                Col::Int("bytes", int(|r| r.bytes)),
                Col::Int("lag_ms", int(|r| r.lag_ms)),
                Col::Text("error", or_null(runs.iter().map(|r| r.error.clone()))),
            ])
        }
        "lineage" => {
            let edges = crate::lineage::edges(engine).await?;
            batch(vec![
                Col::Text("upstream", text(edges.iter().map(|e| e.upstream.clone()))),
                Col::Text(
                    "downstream",
                    text(edges.iter().map(|e| e.downstream.clone())),
                ),
                Col::Text("kind", text(edges.iter().map(|e| e.kind.to_string()))),
                Col::Text("via", text(edges.iter().map(|e| e.via.clone()))),
            ])
        }
        "column_lineage" => {
            let edges = crate::lineage::column_edges(engine).await?;
            batch(vec![
                Col::Text("upstream", text(edges.iter().map(|e| e.upstream.clone()))),
                Col::Text(
                    "upstream_column",
                    text(edges.iter().map(|e| e.upstream_column.clone())),
                ),
                Col::Text(
                    "downstream",
                    text(edges.iter().map(|e| e.downstream.clone())),
                ),
                Col::Text(
                    "downstream_column",
                    edges.iter().map(|e| e.downstream_column.clone()).collect(),
                ),
                Col::Text("kind", text(edges.iter().map(|e| e.kind.to_string()))),
                Col::Text("via", text(edges.iter().map(|e| e.via.clone()))),
            ])
        }
        "model_runs" => {
            // The newest runs of the models whose table the principal sees.
            let seen = seen_tables(engine).await?;
            let runs: Vec<_> = engine
                .catalog()
                .model_runs(None, MAINTENANCE_RUNS)
                .await?
                .into_iter()
                .filter(|r| TableRef::parse(&r.model).is_ok_and(|t| seen.contains(&t)))
                .collect();
            batch(vec![
                Col::Text("model", text(runs.iter().map(|r| r.model.clone()))),
                Col::Text("trigger", text(runs.iter().map(|r| r.trigger.clone()))),
                Col::Time(
                    "started_at",
                    runs.iter().map(|r| time(&r.started_at)).collect(),
                ),
                Col::Int("duration_ms", counts(runs.iter().map(|r| r.duration_ms))),
                Col::Text("status", text(runs.iter().map(|r| r.status.clone()))),
                Col::Int("rows_out", counts(runs.iter().map(|r| r.rows_out))),
                Col::Int("version", runs.iter().map(|r| r.version).collect()),
                Col::Text("checks", text(runs.iter().map(|r| r.checks.to_string()))),
                Col::Text("error", or_null(runs.iter().map(|r| r.error.clone()))),
                Col::Text("refresh", text(runs.iter().map(|r| r.refresh.clone()))),
            ])
        }
        other => Err(SqlError::NotFound {
            kind: "table",
            name: format!("system.{other}"),
            suggestion: basin_core::closest(other, TABLES.iter().copied())
                .map(|s| format!("system.{s}")),
        }),
    }
}

/// The tables the engine's principal sees.
async fn seen_tables(engine: &Engine) -> Result<std::collections::HashSet<TableRef>> {
    Ok(access::visible_tables(engine, None, None)
        .await?
        .into_iter()
        .map(|(t, _)| t.table_ref())
        .collect())
}

/// The SQL standard's `information_schema.<name>` (`schemata`, `tables`, `columns`): the same
/// lists as `system.*`, so governed alike, under the standard's column names (a hub is a
/// catalog, a dataset a schema).
pub(crate) async fn information_schema(
    engine: &Engine,
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    match name {
        "schemata" => {
            let ds = access::visible_datasets(engine, None, None).await?.1;
            batch(vec![
                Col::Text("catalog_name", text(ds.iter().map(|d| d.hub.clone()))),
                Col::Text("schema_name", text(ds.iter().map(|d| d.name.clone()))),
                Col::Text("schema_owner", ds.iter().map(|d| d.owner.clone()).collect()),
                Col::Text(
                    "description",
                    text(ds.iter().map(|d| d.description.clone())),
                ),
            ])
        }
        "tables" => {
            let ts: Vec<_> = access::visible_tables(engine, None, None)
                .await?
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            batch(vec![
                Col::Text("table_catalog", text(ts.iter().map(|t| t.hub.clone()))),
                Col::Text("table_schema", text(ts.iter().map(|t| t.dataset.clone()))),
                Col::Text("table_name", text(ts.iter().map(|t| t.name.clone()))),
                Col::Text(
                    "table_type",
                    text(
                        ts.iter()
                            .map(|t| if t.is_view() { "VIEW" } else { "BASE TABLE" }.to_string()),
                    ),
                ),
                Col::Text(
                    "description",
                    text(ts.iter().map(|t| t.description.clone())),
                ),
            ])
        }
        "columns" => {
            let cs = visible_columns(engine).await?;
            batch(vec![
                Col::Text(
                    "table_catalog",
                    text(cs.iter().map(|c| c.table.hub.to_string())),
                ),
                Col::Text(
                    "table_schema",
                    text(cs.iter().map(|c| c.table.dataset.to_string())),
                ),
                Col::Text(
                    "table_name",
                    text(cs.iter().map(|c| c.table.table.to_string())),
                ),
                Col::Text(
                    "column_name",
                    text(cs.iter().map(|c| c.column.name.clone())),
                ),
                Col::Int("ordinal_position", cs.iter().map(|c| c.ordinal).collect()),
                Col::Text(
                    "is_nullable",
                    text(
                        cs.iter()
                            .map(|c| if c.column.nullable { "YES" } else { "NO" }.to_string()),
                    ),
                ),
                Col::Text(
                    "data_type",
                    text(cs.iter().map(|c| c.column.data_type.clone())),
                ),
                Col::Text(
                    "description",
                    text(cs.iter().map(|c| c.column.description.clone())),
                ),
            ])
        }
        other => Err(SqlError::NotFound {
            kind: "table",
            name: format!("{INFORMATION_SCHEMA}.{other}"),
            suggestion: basin_core::closest(other, INFORMATION_SCHEMA_TABLES.iter().copied())
                .map(|s| format!("{INFORMATION_SCHEMA}.{s}")),
        }),
    }
}
