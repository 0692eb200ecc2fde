//! Incremental models: a run recomputes only the rows of the unique keys that the upstream
//! changes since the last run can touch, and replaces exactly those rows in one commit.
//!
//! The keys: for each upstream table that changed (its change data feed over the versions since
//! the last run, rows before and after each change), the model's query runs with that table
//! replaced by its changed rows and every other table at its previous version, and again at its
//! new version; every key whose rows may differ comes out of one of those runs, because each row
//! of the model comes from a combination of upstream rows, and a combination that appears or
//! disappears holds a changed row. The recomputation: the query at the new versions, filtered to
//! those keys (the filter reaches the scans through the GROUP BY). The commit: the target's rows
//! of those keys replaced by the recomputed ones, with the upstream versions reached recorded as
//! Delta `txn` actions in the same commit — so a crash cannot make a run count twice, and
//! recomputing keys twice is harmless.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use basin_core::TableRef;
use basin_sql::Engine;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, JoinOperator, Query, SelectItem, SetExpr, SetOperator, Statement,
    TableFactor, TableWithJoins, Visit, VisitMut, Visitor, VisitorMut,
};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::project::ModelSpec;
use crate::{PipelineError, Result};

/// Functions whose value changes without any upstream change.
const VOLATILE: &[&str] = &[
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "today",
    "random",
    "uuid",
];

/// Aggregate functions (a SELECT using one without GROUP BY aggregates all rows).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "median",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var_pop",
    "var_samp",
    "variance",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "first_value",
    "last_value",
];

/// Why a model's query cannot be maintained by recomputing its changed keys (`None`: it can).
/// `query` is the model's query with its tables qualified.
pub fn why_not(query: &str, key: &[String]) -> Option<String> {
    let statement = match Engine::parse_query(query, "a model") {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let Statement::Query(q) = &statement else {
        return Some("it is not a query".into());
    };
    let mut finder = Unmaintainable::default();
    let _ = statement.visit(&mut finder);
    if let Some(why) = finder.why {
        return Some(why);
    }
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return Some("LIMIT keeps rows by their rank among all rows".into());
    }
    top_selects(&q.body)
        .and_then(|selects| {
            selects
                .iter()
                .find_map(|s| key_not_grouped(s, key))
                .map_or(Ok(()), Err)
        })
        .err()
}

/// Finds what makes a row depend on rows of other keys (or on nothing upstream).
#[derive(Default)]
struct Unmaintainable {
    why: Option<String>,
    depth: usize,
    read: HashSet<String>,
}

impl Visitor for Unmaintainable {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let Some(name) = factor_name(factor)
            && !self.read.insert(name.clone())
        {
            self.why = Some(format!(
                "it reads {name} twice (a self-join), and the changes of one side meet those of the other"
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 {
            if q.limit_clause.is_some() || q.fetch.is_some() {
                self.why = Some("a subquery with LIMIT keeps rows by their rank".into());
                return ControlFlow::Break(());
            }
            let aggregates = |s: &datafusion::sql::sqlparser::ast::Select| {
                !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
                    || s.projection.iter().any(has_aggregate)
            };
            if top_selects(&q.body)
                .unwrap_or_default()
                .iter()
                .any(|s| aggregates(s))
            {
                self.why =
                    Some("a subquery or CTE aggregates: only the outer query may GROUP BY".into());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        let why = match e {
            Expr::Function(f) if f.over.is_some() => Some(format!(
                "the window function {}() reads rows of other keys",
                f.name
            )),
            Expr::Function(f) if VOLATILE.contains(&lower_name(&f.name).as_str()) => {
                Some(format!("{}() changes without any upstream change", f.name))
            }
            Expr::Subquery(_) => Some("a scalar subquery reads rows of every key".into()),
            Expr::InSubquery { negated: true, .. } | Expr::Exists { negated: true, .. } => {
                Some("NOT IN / NOT EXISTS: a row removed upstream can add rows".into())
            }
            _ => None,
        };
        match why {
            Some(why) => {
                self.why = Some(why);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

fn lower_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> String {
    name.to_string().to_lowercase()
}

fn has_aggregate(item: &SelectItem) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e
                && f.over.is_none()
                && AGGREGATES.contains(&lower_name(&f.name).as_str())
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        // A subquery's aggregates are its own.
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    let mut f = Finder(false);
    let _ = item.visit(&mut f);
    f.0
}

/// The SELECTs whose rows are the query's: one, or the branches of a UNION.
fn top_selects(
    body: &SetExpr,
) -> std::result::Result<Vec<&datafusion::sql::sqlparser::ast::Select>, String> {
    match body {
        SetExpr::Select(s) => Ok(vec![s]),
        SetExpr::Query(q) => top_selects(&q.body),
        SetExpr::SetOperation {
            op: SetOperator::Union,
            left,
            right,
            ..
        } => {
            let mut all = top_selects(left)?;
            all.extend(top_selects(right)?);
            Ok(all)
        }
        SetExpr::SetOperation { op, .. } => Err(format!(
            "{op}: a row removed from one side can add rows to the result"
        )),
        _ => Err("the query is not a SELECT".into()),
    }
}

/// Why `key` does not pick out whole groups of an aggregating SELECT (`None`: it does).
fn key_not_grouped(s: &datafusion::sql::sqlparser::ast::Select, key: &[String]) -> Option<String> {
    let groups: Vec<String> = match &s.group_by {
        GroupByExpr::Expressions(e, _) => e.iter().map(|e| e.to_string().to_lowercase()).collect(),
        GroupByExpr::All(_) => return None,
    };
    if groups.is_empty() {
        return s
            .projection
            .iter()
            .any(has_aggregate)
            .then(|| "it aggregates all rows into one (no GROUP BY)".to_string());
    }
    for k in key {
        let item = s
            .projection
            .iter()
            .enumerate()
            .find_map(|(i, item)| match item {
                SelectItem::ExprWithAlias { expr, alias }
                    if alias.value.eq_ignore_ascii_case(k) =>
                {
                    Some((i, expr.clone()))
                }
                SelectItem::UnnamedExpr(e @ Expr::Identifier(id))
                    if id.value.eq_ignore_ascii_case(k) =>
                {
                    Some((i, e.clone()))
                }
                SelectItem::UnnamedExpr(e @ Expr::CompoundIdentifier(ids))
                    if ids
                        .last()
                        .is_some_and(|id| id.value.eq_ignore_ascii_case(k)) =>
                {
                    Some((i, e.clone()))
                }
                _ => None,
            });
        let Some((position, expr)) = item else {
            return Some(format!(
                "the unique key column '{k}' is not a column it selects"
            ));
        };
        let grouped = groups.contains(&expr.to_string().to_lowercase())
            || groups.contains(&k.to_lowercase())
            || groups.contains(&(position + 1).to_string());
        if !grouped {
            return Some(format!(
                "the unique key column '{k}' is not one of its GROUP BY expressions"
            ));
        }
    }
    None
}

/// The app id of the Delta `txn` action that records how far a model has read `upstream`: it
/// names the query and key, so a changed model starts over with a full build.
pub(crate) fn state_id(query: &str, key: &[String], upstream: &str) -> String {
    let digest = Sha256::digest(format!("{query}\n{}", key.join(",")));
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("basin-model-{hex}-{upstream}")
}

/// The name of a table factor as Basin reads it (unquoted parts in lower case), dot-joined.
fn factor_name(factor: &TableFactor) -> Option<String> {
    // A table pinned to a version (as the rewrite reads it) is not the query's own.
    let TableFactor::Table {
        name,
        args: None,
        version: None,
        ..
    } = factor
    else {
        return None;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) if i.quote_style.is_some() => i.value.clone(),
            Some(i) => i.value.to_lowercase(),
            None => p.to_string(),
        })
        .collect();
    Some(parts.join("."))
}

/// How a table of the query is read in a rewritten query.
#[derive(Clone, Copy)]
enum Source {
    /// At a version.
    At(i64),
    /// Its rows changed by versions `from..=to`.
    Changes(i64, i64),
}

/// Rewrites the query's table factors: each upstream table read as `sources` says.
struct Rewriter<'a> {
    sources: &'a BTreeMap<String, Source>,
    error: Option<crate::PipelineError>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        inner_joins_for_changes(&mut q.body, self.sources);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let Some(name) = factor_name(factor) else {
            return ControlFlow::Continue(());
        };
        let Some(source) = self.sources.get(&name) else {
            return ControlFlow::Continue(());
        };
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        // The alias the query uses, or the table's own name (which column references use).
        let alias = alias
            .as_ref()
            .map(|a| a.name.clone())
            .or_else(|| name.0.last().and_then(|p| p.as_ident().cloned()))
            .unwrap_or_else(|| Ident::new("t"));
        let read = match *source {
            Source::At(v) => format!("SELECT * FROM {name} VERSION AS OF {v}"),
            Source::Changes(from, to) => format!(
                "SELECT * EXCLUDE ({}) FROM table_changes('{}', {from}, {to})",
                basin_sql::CHANGE_COLUMNS.join(", "),
                name.to_string().replace('\'', "''"),
            ),
        };
        match derived(&format!("SELECT * FROM ({read}) AS {alias}")) {
            Ok(d) => *factor = d,
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The FROM item of a one-table SELECT text.
fn derived(sql: &str) -> Result<TableFactor> {
    let statement = Engine::parse_query(sql, "a rewritten model")?;
    let Statement::Query(q) = statement else {
        unreachable!("parse_query returns a query");
    };
    match *q.body {
        SetExpr::Select(s) => Ok(s.from[0].relation.clone()),
        _ => unreachable!("the text is a SELECT"),
    }
}

/// In `A LEFT JOIN B`, a change of B can only touch the rows of A it matches: the join of A
/// with B's changed rows is made an inner one (kept outer, it would yield every row of A).
fn inner_joins_for_changes(body: &mut SetExpr, sources: &BTreeMap<String, Source>) {
    let changed = |f: &TableFactor| {
        factor_name(f).is_some_and(|n| matches!(sources.get(&n), Some(Source::Changes(..))))
    };
    match body {
        SetExpr::Select(s) => {
            for TableWithJoins { relation, joins } in &mut s.from {
                let mut left_changed = changed(relation);
                for join in joins.iter_mut() {
                    let right_changed = changed(&join.relation);
                    let op = &mut join.join_operator;
                    *op = match std::mem::replace(op, JoinOperator::CrossApply) {
                        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) if right_changed => {
                            JoinOperator::Inner(c)
                        }
                        JoinOperator::Right(c) | JoinOperator::RightOuter(c) if left_changed => {
                            JoinOperator::Inner(c)
                        }
                        JoinOperator::FullOuter(c) if right_changed => JoinOperator::RightOuter(c),
                        JoinOperator::FullOuter(c) if left_changed => JoinOperator::LeftOuter(c),
                        other => other,
                    };
                    left_changed |= right_changed;
                }
            }
        }
        SetExpr::Query(q) => inner_joins_for_changes(&mut q.body, sources),
        SetExpr::SetOperation { left, right, .. } => {
            inner_joins_for_changes(left, sources);
            inner_joins_for_changes(right, sources);
        }
        _ => {}
    }
}

fn rewrite(query: &str, sources: &BTreeMap<String, Source>) -> Result<Statement> {
    let mut statement = Engine::parse_query(query, "a model")?;
    let mut rewriter = Rewriter {
        sources,
        error: None,
    };
    let _ = VisitMut::visit(&mut statement, &mut rewriter);
    match rewriter.error {
        Some(e) => Err(e),
        None => Ok(statement),
    }
}

/// The query with every upstream table read at the version `versions` gives it.
pub(crate) fn at_versions(query: &str, versions: &BTreeMap<String, i64>) -> Result<String> {
    let sources = versions
        .iter()
        .map(|(t, v)| (t.clone(), Source::At(*v)))
        .collect();
    Ok(rewrite(query, &sources)?.to_string())
}

/// The distinct keys that the changes of `changed` (versions `from..=to`) can touch, with the
/// other tables at the versions `others` gives.
pub(crate) fn keys_query(
    query: &str,
    key: &[String],
    changed: &str,
    (from, to): (i64, i64),
    others: &BTreeMap<String, i64>,
) -> Result<String> {
    let mut sources: BTreeMap<String, Source> = others
        .iter()
        .map(|(t, v)| (t.clone(), Source::At(*v)))
        .collect();
    sources.insert(changed.to_string(), Source::Changes(from, to));
    let mut statement = rewrite(query, &sources)?;
    // HAVING judges whole groups; over changed rows alone it could hide a touched key.
    if let Statement::Query(q) = &mut statement {
        drop_having(&mut q.body);
    }
    let columns: Vec<String> = key.iter().map(|k| quote(k)).collect();
    Ok(format!(
        "SELECT DISTINCT {} FROM ({statement}) AS basin_changed",
        columns.join(", ")
    ))
}

fn drop_having(body: &mut SetExpr) {
    match body {
        SetExpr::Select(s) => s.having = None,
        SetExpr::Query(q) => drop_having(&mut q.body),
        SetExpr::SetOperation { left, right, .. } => {
            drop_having(left);
            drop_having(right);
        }
        _ => {}
    }
}

/// An identifier, quoted.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The most keys a run recomputes; beyond, a full rebuild is about as cheap.
pub(crate) const MAX_KEYS: usize = 100_000;

/// How a run builds its table.
#[derive(Debug)]
pub(crate) enum Refresh {
    /// Not incremental: the model's query as it is.
    Plain,
    /// Nothing upstream changed since the last run.
    UpToDate,
    /// Rebuilt in full, each upstream table read at the version `versions` gives (recorded
    /// with the commit; empty when the model reads a view, which has no versions).
    Full {
        why: String,
        versions: BTreeMap<String, i64>,
    },
    /// The rows of the keys that match `predicate` recomputed and replaced.
    Keys {
        predicate: String,
        keys: usize,
        changed: Vec<String>,
        versions: BTreeMap<String, i64>,
    },
}

impl Refresh {
    /// What the run records about it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Refresh::Plain => String::new(),
            Refresh::UpToDate => "up to date: nothing it reads changed".into(),
            Refresh::Full { why, .. } => format!("full: {why}"),
            Refresh::Keys { keys, changed, .. } => format!(
                "incremental: {keys} key{} recomputed after changes to {}",
                if *keys == 1 { "" } else { "s" },
                changed.join(", ")
            ),
        }
    }

    /// The query whose rows the run writes.
    pub(crate) fn query(&self, spec: &ModelSpec) -> Result<String> {
        Ok(match self {
            Refresh::Plain | Refresh::UpToDate => spec.query.clone(),
            Refresh::Full { versions, .. } => at_versions(&spec.query, versions)?,
            Refresh::Keys {
                predicate,
                versions,
                ..
            } => format!(
                "SELECT * FROM ({}) AS basin_model WHERE {predicate}",
                at_versions(&spec.query, versions)?
            ),
        })
    }

    /// The Delta `txn` actions committed with the rows: how far each upstream table was read.
    pub(crate) fn transactions(&self, spec: &ModelSpec) -> Vec<(String, i64)> {
        match self {
            Refresh::Full { versions, .. } | Refresh::Keys { versions, .. } => versions
                .iter()
                .map(|(t, v)| (state_id(&spec.query, &spec.unique_key, t), *v))
                .collect(),
            Refresh::Plain | Refresh::UpToDate => Vec::new(),
        }
    }
}

/// How the next run of the incremental model `spec` builds `target`: the upstream changes
/// since the versions its last commit recorded, turned into the keys to recompute.
pub(crate) async fn refresh(
    engine: &Engine,
    target: &TableRef,
    spec: &ModelSpec,
    full: bool,
) -> Result<Refresh> {
    let tables = engine.tables();
    let catalog = engine.catalog();
    let mut now = BTreeMap::new();
    for u in spec.reads() {
        match catalog.table(&u).await? {
            Some(entry) if !entry.is_view() => {
                now.insert(u.to_string(), tables.progress(&u, &[]).await?.0);
            }
            _ => {
                return Ok(Refresh::Full {
                    why: format!("it reads {u}, a view (views have no versions to follow)"),
                    versions: BTreeMap::new(),
                });
            }
        }
    }
    let rebuild = |why: String| {
        Ok(Refresh::Full {
            why,
            versions: now.clone(),
        })
    };
    if full {
        return rebuild("asked for".into());
    }
    if let Some(why) = why_not(&spec.query, &spec.unique_key) {
        return rebuild(format!("not maintainable incrementally: {why}"));
    }
    let Some(entry) = catalog.table(target).await? else {
        return rebuild("first build".into());
    };
    if let Some(k) = spec.unique_key.iter().find(|k| {
        entry
            .columns
            .iter()
            .any(|c| &c.name == *k && entry.is_pii(c))
    }) {
        return rebuild(format!("the key column '{k}' is PII (stored encrypted)"));
    }
    let ids: Vec<String> = now
        .keys()
        .map(|u| state_id(&spec.query, &spec.unique_key, u))
        .collect();
    let (_, done) = tables.progress(target, &ids).await?;
    let mut before = BTreeMap::new();
    for ((u, _), v) in now.iter().zip(done) {
        match v {
            Some(v) => before.insert(u.clone(), v),
            None => return rebuild("first build of this definition".into()),
        };
    }
    let changed: Vec<String> = now
        .iter()
        .filter(|(u, v)| before.get(*u) != Some(v))
        .map(|(u, _)| u.clone())
        .collect();
    if changed.is_empty() {
        return Ok(Refresh::UpToDate);
    }
    let mut keys = Keys::new(spec.unique_key.len());
    for u in &changed {
        let range = (before[u] + 1, now[u]);
        for others in [&before, &now] {
            let sql = keys_query(&spec.query, &spec.unique_key, u, range, others)?;
            let mut rows = engine.stream(&sql).await?;
            while let Some(batch) = rows
                .try_next()
                .await
                .map_err(|e| PipelineError::Run(e.to_string()))?
            {
                if let Err(why) = keys.add(&batch) {
                    return rebuild(why);
                }
                if keys.tuples.len() > MAX_KEYS {
                    return rebuild(format!(
                        "the changes touch more than {MAX_KEYS} keys, where a full rebuild costs about as much"
                    ));
                }
            }
        }
    }
    if keys.tuples.is_empty() {
        // No row of the model can differ, but the versions read are recorded all the same.
        return Ok(Refresh::Keys {
            predicate: "FALSE".into(),
            keys: 0,
            changed,
            versions: now,
        });
    }
    Ok(Refresh::Keys {
        predicate: keys.predicate(&spec.unique_key),
        keys: keys.tuples.len(),
        changed,
        versions: now,
    })
}

/// The distinct keys found, as SQL literals per column.
struct Keys {
    tuples: HashSet<Vec<Option<String>>>,
    columns: Vec<BTreeSet<String>>,
    nulls: Vec<bool>,
}

impl Keys {
    fn new(n: usize) -> Self {
        Keys {
            tuples: HashSet::new(),
            columns: vec![BTreeSet::new(); n],
            nulls: vec![false; n],
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> std::result::Result<(), String> {
        for row in 0..batch.num_rows() {
            let mut tuple = Vec::with_capacity(batch.num_columns());
            for (i, column) in batch.columns().iter().enumerate() {
                let value = literal(column, row)?;
                match &value {
                    Some(v) => {
                        self.columns[i].insert(v.clone());
                    }
                    None => self.nulls[i] = true,
                }
                tuple.push(value);
            }
            self.tuples.insert(tuple);
        }
        Ok(())
    }

    /// A predicate over the key columns true for every key found (and, with several key
    /// columns, for the other combinations of their values: recomputing those too is harmless).
    fn predicate(&self, key: &[String]) -> String {
        let parts: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let column = quote(k);
                let values: Vec<&str> = self.columns[i].iter().map(String::as_str).collect();
                let listed =
                    (!values.is_empty()).then(|| format!("{column} IN ({})", values.join(", ")));
                let null = self.nulls[i].then(|| format!("{column} IS NULL"));
                match (listed, null) {
                    (Some(l), Some(n)) => format!("({l} OR {n})"),
                    (Some(l), None) => l,
                    (None, Some(n)) => n,
                    (None, None) => "FALSE".into(),
                }
            })
            .collect();
        parts.join(" AND ")
    }
}

/// A key value as an SQL literal (`None` for NULL); an error for a type keys cannot have.
fn literal(column: &ArrayRef, row: usize) -> std::result::Result<Option<String>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    let text = || {
        arrow::util::display::array_value_to_string(column, row)
            .map_err(|e| format!("a key value cannot be read ({e})"))
    };
    let quoted = |s: String| format!("'{}'", s.replace('\'', "''"));
    Ok(Some(match column.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Boolean => text()?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => quoted(text()?),
        DataType::Date32 | DataType::Date64 => format!("DATE {}", quoted(text()?)),
        DataType::Timestamp(_, None) => format!("TIMESTAMP {}", quoted(text()?)),
        DataType::Timestamp(_, Some(_)) => format!("CAST({} AS TIMESTAMPTZ)", quoted(text()?)),
        other => {
            return Err(format!(
                "the key has a column of type {other}; incremental models need whole numbers, decimals, text, booleans, dates or timestamps as keys"
            ));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Vec<String> {
        k.split(',').map(|s| s.trim().to_string()).collect()
    }

    #[test]
    fn joins_filters_and_group_by_keys_are_maintained() {
        let q = "SELECT o.product_id, p.category, count(*) AS n, sum(o.amount) AS revenue \
                 FROM main.source.orders o JOIN main.source.products p ON o.product_id = p.id \
                 WHERE o.amount > 0 GROUP BY o.product_id, p.category HAVING count(*) > 1";
        assert_eq!(why_not(q, &key("product_id, category")), None);
        let q = "WITH o AS (SELECT * FROM main.s.orders WHERE amount > 0) \
                 SELECT day, sum(amount) AS total FROM o GROUP BY day";
        assert_eq!(why_not(q, &key("day")), None);
        assert_eq!(
            why_not("SELECT id, lower(name) AS name FROM main.s.t", &key("id")),
            None
        );
    }

    #[test]
    fn what_cannot_be_maintained_says_why() {
        let cases = [
            (
                "SELECT id, rank() OVER (ORDER BY v) AS r FROM main.s.t",
                "id",
                "window function",
            ),
            ("SELECT id FROM main.s.t LIMIT 10", "id", "LIMIT"),
            ("SELECT id, now() AS at FROM main.s.t", "id", "now()"),
            (
                "SELECT count(*) AS n FROM main.s.t",
                "n",
                "all rows into one",
            ),
            (
                "SELECT day, max(id) AS top FROM main.s.t GROUP BY day",
                "top",
                "not one of its GROUP BY",
            ),
            (
                "SELECT day FROM main.s.t GROUP BY day",
                "nope",
                "not a column it selects",
            ),
            (
                "SELECT id FROM main.s.t WHERE id NOT IN (SELECT id FROM main.s.u)",
                "id",
                "NOT IN",
            ),
            (
                "SELECT id, v / (SELECT sum(v) FROM main.s.t) AS share FROM main.s.t",
                "id",
                "scalar subquery",
            ),
            (
                "SELECT id FROM main.s.t EXCEPT SELECT id FROM main.s.u",
                "id",
                "EXCEPT",
            ),
            (
                "SELECT d, n FROM (SELECT d, count(*) AS n FROM main.s.t GROUP BY d) AS x",
                "d",
                "only the outer query",
            ),
            (
                "SELECT a.id FROM main.s.t a JOIN main.s.t b ON a.parent = b.id",
                "id",
                "self-join",
            ),
        ];
        for (q, k, why) in cases {
            let got = why_not(q, &key(k)).unwrap_or_default();
            assert!(got.contains(why), "{q}: {got}");
        }
    }

    #[test]
    fn a_changed_table_is_read_from_its_changes_and_outer_joins_to_it_become_inner() {
        let q = "SELECT o.id, c.name FROM main.s.orders AS o LEFT JOIN main.s.customers AS c ON o.customer = c.id";
        let others = BTreeMap::from([("main.s.orders".to_string(), 4)]);
        let sql = keys_query(q, &key("id"), "main.s.customers", (3, 5), &others).unwrap();
        assert!(
            sql.contains("table_changes('main.s.customers', 3, 5)) AS c"),
            "{sql}"
        );
        assert!(
            sql.contains("(SELECT * FROM main.s.orders VERSION AS OF 4) AS o"),
            "{sql}"
        );
        assert!(sql.contains(" JOIN ") && !sql.contains("LEFT"), "{sql}");
        assert!(sql.starts_with("SELECT DISTINCT \"id\" FROM ("), "{sql}");
    }
}
