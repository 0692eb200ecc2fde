//! Name resolution: the tables a statement names, looked up in the catalog and opened (at the
//! version time travel asks for), registered in a per-statement DataFusion catalog.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use basin_core::{DEFAULT_HUB, TableRef};
use basin_lake::{LakeTable, TimeTravel};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, Statement, TableFactor,
    TableVersion, Value, VisitMut, VisitorMut,
};

use crate::engine::Engine;
use crate::governed::{GovernedTable, ReadOnlyTable};
use crate::pending::WithPending;
use crate::{Result, SqlError, access, system};
use basin_catalog::access::Privilege;

/// A table of the statement that time travel pins to a version (or `table_changes` to the
/// rows changed by some versions), under the name the statement now uses for it.
struct Pinned {
    hub: String,
    dataset: String,
    alias: String,
    table: TableRef,
    at: Read,
}

/// Which rows of a table a statement reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Read {
    /// The table as it was then.
    At(TimeTravel),
    /// The rows changed by versions `from..=to` (`to`: the latest when `None`).
    Changes { from: i64, to: Option<i64> },
}

/// The table function that reads a table's change data feed.
const TABLE_CHANGES: &str = "table_changes";

/// Replaces each `t VERSION AS OF n` / `t TIMESTAMP AS OF '…'` / `table_changes('t', from[,
/// to])` with a name of its own, and returns what those names stand for.
fn pin_time_travel(statement: &mut Statement) -> Result<Vec<Pinned>> {
    struct Pinner {
        pinned: Vec<Pinned>,
        error: Option<SqlError>,
    }
    impl VisitorMut for Pinner {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                version,
                args,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let pinned = if name_parts(name) == [TABLE_CHANGES] {
                let args = args.take().map(|a| a.args).unwrap_or_default();
                pin_changes(&args, self.pinned.len())
            } else if let Some(v) = version.take() {
                pin(name, &v, self.pinned.len())
            } else {
                return ControlFlow::Continue(());
            };
            match pinned {
                Ok(p) => {
                    *name = ObjectName(
                        [&p.hub, &p.dataset, &p.alias]
                            .iter()
                            .map(|s| ObjectNamePart::Identifier(Ident::with_quote('"', s.as_str())))
                            .collect(),
                    );
                    self.pinned.push(p);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut pinner = Pinner {
        pinned: Vec::new(),
        error: None,
    };
    let _ = statement.visit(&mut pinner);
    match pinner.error {
        Some(e) => Err(e),
        None => Ok(pinner.pinned),
    }
}

fn pin(name: &ObjectName, version: &TableVersion, n: usize) -> Result<Pinned> {
    let table = table_ref_of(name)?;
    let at = match version {
        TableVersion::VersionAsOf(Expr::Value(v)) => match &v.value {
            Value::Number(n, _) => TimeTravel::Version(n.parse().map_err(|_| {
                SqlError::Invalid(format!("VERSION AS OF needs a whole number, not {n}"))
            })?),
            other => {
                return Err(SqlError::Invalid(format!(
                    "VERSION AS OF needs a whole number, not {other}"
                )));
            }
        },
        TableVersion::TimestampAsOf(Expr::Value(v))
        | TableVersion::ForSystemTimeAsOf(Expr::Value(v)) => match v.value.clone().into_string() {
            Some(s) => TimeTravel::Timestamp(parse_time(&s)?),
            None => {
                return Err(SqlError::Invalid(format!(
                    "TIMESTAMP AS OF needs a quoted time such as '2026-01-01T00:00:00Z', not {}",
                    v.value
                )));
            }
        },
        other => {
            return Err(SqlError::Invalid(format!(
                "unsupported time travel '{other}': use VERSION AS OF <number> or TIMESTAMP AS OF '<RFC 3339 time>'"
            )));
        }
    };
    let suffix = match at {
        TimeTravel::Version(v) => format!("version {v}"),
        TimeTravel::Timestamp(t) => format!("as of {}", t.to_rfc3339()),
    };
    Ok(Pinned {
        hub: table.hub.to_string(),
        dataset: table.dataset.to_string(),
        alias: format!("{} ({suffix}) #{n}", table.table),
        table,
        at: Read::At(at),
    })
}

/// `table_changes('hub.dataset.table', from [, to])`.
fn pin_changes(args: &[FunctionArg], n: usize) -> Result<Pinned> {
    let usage = "use table_changes('dataset.table', first_version[, last_version])";
    let value = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(v.value.clone()),
        _ => None,
    };
    let values: Vec<Option<Value>> = args.iter().map(value).collect();
    let version = |v: &Option<Value>| -> Result<i64> {
        match v {
            Some(Value::Number(n, _)) => n.parse().map_err(|_| {
                SqlError::Invalid(format!("table_changes: '{n}' is not a version; {usage}"))
            }),
            other => Err(SqlError::Invalid(format!(
                "table_changes: a version must be a whole number, not {}; {usage}",
                other
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or("an expression".into())
            ))),
        }
    };
    let (name, from, to) = match values.as_slice() {
        [name, from] => (name, version(from)?, None),
        [name, from, to] => (name, version(from)?, Some(version(to)?)),
        _ => {
            return Err(SqlError::Invalid(format!(
                "table_changes needs 2 or 3 arguments; {usage}"
            )));
        }
    };
    let Some(name) = name.clone().and_then(|n| n.into_string()) else {
        return Err(SqlError::Invalid(format!(
            "table_changes: the table must be a quoted name such as 'sales.orders'; {usage}"
        )));
    };
    let parts: Vec<String> = name.split('.').map(str::to_string).collect();
    let table = table_ref_from_parts(&parts, &name)?;
    Ok(Pinned {
        hub: table.hub.to_string(),
        dataset: table.dataset.to_string(),
        alias: format!(
            "{} (changes {from} to {}) #{n}",
            table.table,
            to.map(|t| t.to_string()).unwrap_or("latest".into())
        ),
        table,
        at: Read::Changes { from, to },
    })
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(SqlError::Invalid(format!(
        "cannot read '{s}' as a time: write it like '2026-01-01T00:00:00Z' or '2026-01-01 12:00:00' (UTC)"
    )))
}

/// The table an SQL name refers to (`dataset.table` is in the default hub).
pub(crate) fn table_ref_of(name: &ObjectName) -> Result<TableRef> {
    table_ref_from_parts(&name_parts(name), &name.to_string())
}

/// The parts of an SQL name as Basin reads them: unquoted identifiers in lower case.
pub fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) if i.quote_style.is_some() => i.value.clone(),
            Some(i) => i.value.to_lowercase(),
            None => p.to_string(),
        })
        .collect()
}

fn table_ref_from_parts(parts: &[String], shown: &str) -> Result<TableRef> {
    match parts {
        [d, t] => Ok(TableRef::new(DEFAULT_HUB, d, t)?),
        [h, d, t] => Ok(TableRef::new(h, d, t)?),
        _ => Err(SqlError::NotFound {
            kind: "table",
            name: format!("{shown}' (name tables as 'dataset.table' or 'hub.dataset.table'"),
            suggestion: None,
        }),
    }
}

/// The catalog of one statement: every table it names, opened.
pub(crate) async fn statement_catalog(
    engine: &Engine,
    statement: &mut Statement,
) -> Result<Arc<dyn CatalogProviderList>> {
    let pinned = pin_time_travel(statement)?;
    let wrapped = datafusion::sql::parser::Statement::Statement(Box::new(statement.clone()));
    let (relations, _ctes) = datafusion::sql::resolve::resolve_table_references(&wrapped, true)?;
    let mut tables: BTreeMap<(String, String, String), Arc<dyn TableProvider>> = BTreeMap::new();
    for relation in relations {
        let parts: Vec<String> = match &relation {
            TableReference::Bare { table } => vec![table.to_string()],
            TableReference::Partial { schema, table } => {
                vec![schema.to_string(), table.to_string()]
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => vec![catalog.to_string(), schema.to_string(), table.to_string()],
        };
        let (hub, dataset, table) = match parts.as_slice() {
            [d, t] => (DEFAULT_HUB.to_string(), d.clone(), t.clone()),
            [h, d, t] => (h.clone(), d.clone(), t.clone()),
            _ => {
                return Err(SqlError::NotFound {
                    kind: "table",
                    name: format!(
                        "{relation}' (name tables as 'dataset.table' or 'hub.dataset.table'"
                    ),
                    suggestion: None,
                });
            }
        };
        let key = (hub.clone(), dataset.clone(), table.clone());
        if tables.contains_key(&key) {
            continue;
        }
        let provider = if let Some(p) = pinned
            .iter()
            .find(|p| p.hub == hub && p.dataset == dataset && p.alias == table)
        {
            governed_provider(engine, &p.table, Some(p.at)).await?
        } else if dataset == system::SCHEMA {
            system::table(engine, &table).await?
        } else if dataset == system::INFORMATION_SCHEMA {
            system::information_schema(engine, &table).await?
        } else {
            let table_ref = table_ref_from_parts(
                &[hub.clone(), dataset.clone(), table.clone()],
                &relation.to_string(),
            )?;
            governed_provider(engine, &table_ref, None).await?
        };
        tables.insert(key, provider);
    }
    crate::sample::rewrite(statement, |name| {
        let key = match name_parts(name).as_slice() {
            [d, t] => (DEFAULT_HUB.to_string(), d.clone(), t.clone()),
            [h, d, t] => (h.clone(), d.clone(), t.clone()),
            _ => return None,
        };
        let provider = tables.get(&key)?;
        Some(
            provider
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        )
    })?;
    let list = MemoryCatalogProviderList::new();
    for ((hub, dataset, table), provider) in tables {
        let catalog = match list.catalog(&hub) {
            Some(c) => c,
            None => {
                let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
                list.register_catalog(hub.clone(), c.clone());
                c
            }
        };
        let schema = match catalog.schema(&dataset) {
            Some(s) => s,
            None => {
                let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(&dataset, s.clone())?;
                s
            }
        };
        schema.register_table(table, provider)?;
    }
    if list.catalog(DEFAULT_HUB).is_none() {
        list.register_catalog(
            DEFAULT_HUB.to_string(),
            Arc::new(MemoryCatalogProvider::new()),
        );
    }
    Ok(Arc::new(list))
}

/// A view, expanded: its query planned as the engine's principal, so the tables it reads
/// apply that principal's grants, row filters and masks (not its owner's).
fn view_provider<'a>(
    engine: &'a Engine,
    t: &'a TableRef,
    entry: &'a basin_catalog::Table,
    policy: &'a basin_catalog::access::TablePolicy,
    at: Option<TimeTravel>,
) -> futures::future::BoxFuture<'a, Result<Arc<dyn TableProvider>>> {
    // Boxed as `Send`: planning a view plans the statement that names it, recursively.
    Box::pin(async move {
        if at.is_some() {
            return Err(SqlError::Invalid(format!(
                "'{t}' is a view and has no versions; use VERSION AS OF on the tables it reads"
            )));
        }
        let Some(mut statement) = crate::engine::parse(&entry.definition)?.into_iter().next()
        else {
            return Err(SqlError::Invalid(format!("view '{t}' has no query")));
        };
        crate::principal_sql::bind_statement(&mut statement, engine.principal())?;
        // Planned in a task of its own: views over views do not deepen the caller's stack.
        let planner = engine.clone();
        let mut df = tokio::spawn(async move { planner.plan(statement).await })
            .await
            .map_err(|e| SqlError::Query(format!("planning view '{t}': {e}")))??;
        if !policy.all_columns {
            let visible: Vec<&str> = policy.columns.iter().map(|c| c.name.as_str()).collect();
            df = df.select_columns(&visible)?;
        }
        Ok(df.into_view())
    })
}

/// The tables and views a statement names (not `system.*`), to follow what a view reads.
pub(crate) fn tables_named(statement: &Statement) -> Result<Vec<TableRef>> {
    let wrapped = datafusion::sql::parser::Statement::Statement(Box::new(statement.clone()));
    let (relations, _ctes) = datafusion::sql::resolve::resolve_table_references(&wrapped, true)?;
    let mut named = Vec::new();
    for relation in relations {
        let parts: Vec<String> = match &relation {
            TableReference::Bare { .. } => continue,
            TableReference::Partial { schema, table } => {
                vec![schema.to_string(), table.to_string()]
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => vec![catalog.to_string(), schema.to_string(), table.to_string()],
        };
        if parts[parts.len() - 2] == system::SCHEMA {
            continue;
        }
        named.push(table_ref_from_parts(&parts, &relation.to_string())?);
    }
    Ok(named)
}

/// The table as the engine's principal may read it: the Delta table itself when the policy
/// restricts nothing, else a [`GovernedTable`] around it.
async fn governed_provider(
    engine: &Engine,
    t: &TableRef,
    read: Option<Read>,
) -> Result<Arc<dyn TableProvider>> {
    let (entry, policy) = access::table_policy(engine, t).await?;
    access::require(&policy, Privilege::Select, t)?;
    let at = match read {
        Some(Read::At(at)) => Some(at),
        Some(Read::Changes { from, to }) if entry.is_view() => {
            return Err(SqlError::Invalid(format!(
                "'{t}' is a view and has no changes of its own (asked for versions {from} to {}); use table_changes on the tables it reads",
                to.map(|t| t.to_string()).unwrap_or("latest".into())
            )));
        }
        _ => None,
    };
    if entry.is_view() {
        return view_provider(engine, t, &entry, &policy, at).await;
    }
    // Streamed records not yet committed belong to the latest version; they are taken before
    // the table is opened, so that a commit of them in between is seen once, not twice.
    let pending = match read {
        Some(_) => None,
        None => engine.tables().pending_rows(t),
    };
    let lake = match at {
        Some(at) => open_at(&entry.location, t, at).await?,
        None => LakeTable::open(&entry.location).await?,
    };
    let mut inner = match read {
        Some(Read::Changes { from, to }) => changes(&lake, t, from, to).await?,
        _ => lake.provider().await?,
    };
    if let Some(pending) = pending {
        let rows = pending.beyond(lake.version()).await;
        if !rows.is_empty() {
            inner = Arc::new(WithPending::new(inner, rows)?);
        }
    }
    let pii = policy.columns.iter().any(|c| c.pii);
    let restricted = !policy.all_columns
        || policy.row_filter.is_some()
        || pii
        || policy.columns.iter().any(|c| c.mask.is_some());
    if !restricted {
        return Ok(Arc::new(ReadOnlyTable(inner)));
    }
    let key = if pii {
        Some(engine.hub_key(t.hub.as_str())?)
    } else {
        None
    };
    Ok(Arc::new(GovernedTable::try_new(
        t.to_string(),
        inner,
        &policy,
        key.as_ref(),
        engine.principal(),
        engine.scan_planner().clone(),
    )?))
}

/// The rows versions `from..=to` of `t` changed; the error says which versions there are.
async fn changes(
    lake: &LakeTable,
    t: &TableRef,
    from: i64,
    to: Option<i64>,
) -> Result<Arc<dyn TableProvider>> {
    let last = lake.version();
    let to = to.unwrap_or(last);
    if from < 1 || from > to || to > last {
        return Err(SqlError::Invalid(format!(
            "table_changes('{t}', {from}, {to}): the versions must run from 1 up to the latest, {last} (from ≤ to); `basin table history {t}` lists them"
        )));
    }
    Ok(lake.changes(from, to).await?)
}

/// The table as it was at `at`, which must lie within its history: a version that exists, a
/// time at or after its first commit. The error names the table and what its history holds.
async fn open_at(location: &str, t: &TableRef, at: TimeTravel) -> Result<LakeTable> {
    // A version that opens is in the history; the history is read only to explain a failure.
    if let TimeTravel::Version(_) = at
        && let Ok(table) = LakeTable::open_at(location, at).await
    {
        return Ok(table);
    }
    let latest = LakeTable::open(location).await?;
    let last = latest.version();
    // Newest first; the last entry is the oldest commit still in the log.
    let history = latest.history(None).await?;
    let (first, first_time) = history
        .last()
        .map(|c| (c.version, c.timestamp))
        .unwrap_or((last, None));
    let see = format!("`basin table history {t}` or system.history lists them");
    // Versions before the oldest left in the log were removed by a vacuum (or never existed).
    let vacuumed = history.iter().any(|c| c.operation.starts_with("VACUUM"));
    match at {
        TimeTravel::Version(v) if v < first && vacuumed => {
            return Err(SqlError::Invalid(format!(
                "version {v} of table '{t}' was removed by a vacuum (it keeps the versions within the table's retention): the oldest version left is {first}; {see}"
            )));
        }
        TimeTravel::Version(v) if v < first || v > last => {
            return Err(SqlError::Invalid(format!(
                "table '{t}' has no version {v}: its versions are {first} to {last}; {see}"
            )));
        }
        TimeTravel::Timestamp(ts) if first_time.is_some_and(|f| ts < f) => {
            let f = first_time.expect("checked above");
            return Err(SqlError::Invalid(format!(
                "table '{t}' has no data as of {}: its first commit (version {first}) is at {}; {see}",
                ts.to_rfc3339(),
                f.to_rfc3339()
            )));
        }
        _ => {}
    }
    Ok(LakeTable::open_at(location, at).await?)
}
