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
use datafusion::common::ScalarValue;
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
    let mut finder = Unmaintainable {
        key: key.to_vec(),
        ..Default::default()
    };
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
    /// `IN (subquery)` and `EXISTS` that are conjuncts of a WHERE or ON (semi-joins): a
    /// changed row of the subquery's table touches the keys of the rows it matches.
    semi_joins: HashSet<*const Expr>,
    key: Vec<String>,
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
        let selects = match top_selects(&q.body) {
            Ok(s) => s,
            Err(why) => {
                self.why = Some(why);
                return ControlFlow::Break(());
            }
        };
        for select in &selects {
            for e in select.selection.iter().chain(join_conditions(select)) {
                for c in conjuncts(e) {
                    if matches!(
                        c,
                        Expr::InSubquery { negated: false, .. }
                            | Expr::Exists { negated: false, .. }
                    ) {
                        self.semi_joins.insert(c as *const Expr);
                    }
                }
            }
            let key = if self.depth == 1 {
                self.key.as_slice()
            } else {
                &[]
            };
            if let Some(why) = outer_join_filtered(select, key) {
                self.why = Some(why);
                return ControlFlow::Break(());
            }
        }
        if self.depth > 1 {
            if q.limit_clause.is_some() || q.fetch.is_some() {
                self.why = Some("a subquery with LIMIT keeps rows by their rank".into());
                return ControlFlow::Break(());
            }
            let aggregates = |s: &datafusion::sql::sqlparser::ast::Select| {
                !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
                    || s.projection.iter().any(has_aggregate)
            };
            if selects.iter().any(|s| aggregates(s)) {
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
            Expr::InSubquery { .. } | Expr::Exists { .. }
                if !self.semi_joins.contains(&(e as *const Expr)) =>
            {
                Some("a subquery test other than `AND x IN (SELECT …)` / `AND EXISTS (…)` (such as NOT IN or NOT EXISTS): a row removed upstream can add rows".into())
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

/// The ON conditions of a SELECT's joins.
fn join_conditions(s: &datafusion::sql::sqlparser::ast::Select) -> impl Iterator<Item = &Expr> {
    s.from
        .iter()
        .flat_map(|t| &t.joins)
        .filter_map(|j| join_constraint(&j.join_operator))
}

fn join_constraint(op: &JoinOperator) -> Option<&Expr> {
    use datafusion::sql::sqlparser::ast::JoinConstraint;
    let c = match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => c,
        _ => return None,
    };
    match c {
        JoinConstraint::On(e) => Some(e),
        _ => None,
    }
}

/// The parts of an AND chain.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// Why an outer join of the SELECT cannot be maintained: the columns of its null-extended side
/// may only be selected (or aggregated) — and tested in that join's own ON — since a filter, a
/// later join, a GROUP BY or a key on them would change which rows carry NULLs there when that
/// side changes. With an outer join, those clauses must name each column's table.
fn outer_join_filtered(
    s: &datafusion::sql::sqlparser::ast::Select,
    key: &[String],
) -> Option<String> {
    let mut nullable: Vec<String> = Vec::new();
    let mut judged: Vec<(&Expr, Vec<String>)> = Vec::new();
    for t in &s.from {
        let mut left = vec![relation_name(&t.relation)];
        for j in &t.joins {
            let right = relation_name(&j.relation);
            // This join's ON may test what it makes nullable, not what earlier joins did.
            if let Some(on) = join_constraint(&j.join_operator) {
                judged.push((on, nullable.clone()));
            }
            match &j.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => nullable.push(right.clone()),
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
                    nullable.extend(left.clone())
                }
                JoinOperator::FullOuter(_) => {
                    nullable.push(right.clone());
                    nullable.extend(left.clone());
                }
                _ => {}
            }
            left.push(right);
        }
    }
    if nullable.is_empty() {
        return None;
    }
    let groups: Vec<&Expr> = match &s.group_by {
        GroupByExpr::Expressions(e, _) => e.iter().collect(),
        GroupByExpr::All(_) => Vec::new(),
    };
    let keys = s.projection.iter().filter_map(|item| match item {
        SelectItem::ExprWithAlias { expr, alias }
            if key.iter().any(|k| alias.value.eq_ignore_ascii_case(k)) =>
        {
            Some(expr)
        }
        SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
            let name = e.to_string().to_lowercase();
            let last = name.rsplit('.').next().unwrap_or_default().to_string();
            key.iter().any(|k| k.to_lowercase() == last).then_some(e)
        }
        _ => None,
    });
    for e in s
        .selection
        .iter()
        .chain(s.having.iter())
        .chain(groups)
        .chain(keys)
    {
        judged.push((e, nullable.clone()));
    }
    for (e, forbidden) in judged {
        let mut why = None;
        let _ = e.visit(&mut ColumnsOf(|qualifier: Option<&str>| match qualifier {
            Some(q) if forbidden.iter().any(|n| n.eq_ignore_ascii_case(q)) => {
                why = Some(format!(
                    "the columns of '{q}', the nullable side of an outer join, are used in a filter, a later join, a GROUP BY or the key"
                ));
            }
            None if why.is_none() && !forbidden.is_empty() => {
                why = Some("with an outer join, the columns in WHERE, ON, GROUP BY and the key must name their table (o.amount)".into());
            }
            _ => {}
        }));
        if why.is_some() {
            return why;
        }
    }
    None
}

/// The alias of a FROM item, or its table's own name.
fn relation_name(f: &TableFactor) -> String {
    alias_of(f).map(|i| i.value).unwrap_or_default()
}

/// The name columns of a FROM item are qualified with: its alias, or its table's own name.
fn alias_of(f: &TableFactor) -> Option<Ident> {
    match f {
        TableFactor::Table { name, alias, .. } => alias
            .as_ref()
            .map(|a| a.name.clone())
            .or_else(|| name.0.last().and_then(|p| p.as_ident().cloned())),
        TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| a.name.clone()),
        _ => None,
    }
}

/// Calls its function with the qualifier of each column an expression reads (outside
/// subqueries).
struct ColumnsOf<F>(F);

impl<F: FnMut(Option<&str>)> Visitor for ColumnsOf<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(_) => (self.0)(None),
            Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                (self.0)(Some(ids[ids.len() - 2].value.as_str()))
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        ControlFlow::Break(())
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
    Some(basin_sql::name_parts(name).join("."))
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
        let normalized = name;
        let TableFactor::Table { name, .. } = &*factor else {
            return ControlFlow::Continue(());
        };
        let alias = alias_of(factor).unwrap_or_else(|| Ident::new("t"));
        let read = match *source {
            Source::At(v) => format!("SELECT * FROM {name} VERSION AS OF {v}"),
            Source::Changes(from, to) => format!(
                "SELECT * EXCLUDE ({}) FROM table_changes('{}', {from}, {to})",
                basin_sql::CHANGE_COLUMNS.join(", "),
                normalized.replace('\'', "''"),
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
        state: Vec<(String, i64)>,
    },
    /// The rows of the keys that match `predicate` recomputed and replaced.
    Keys {
        predicate: String,
        keys: usize,
        changed: Vec<String>,
        versions: BTreeMap<String, i64>,
        state: Vec<(String, i64)>,
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
    pub(crate) fn transactions(&self) -> Vec<(String, i64)> {
        match self {
            Refresh::Full { state, .. } | Refresh::Keys { state, .. } => state.clone(),
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
    // Each upstream table's version now, and the app id that records how far the model read
    // it: named after the model's definition and the table's Delta id, so that a changed model
    // or a table dropped and created again starts over with a full build.
    let mut now = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for u in spec.reads() {
        match catalog.table(&u).await? {
            Some(entry) if !entry.is_view() => {
                let (version, table_id, _) = tables.progress(&u, &[]).await?;
                let id = state_id(&spec.query, &spec.unique_key, &format!("{u}-{table_id}"));
                now.insert(u.to_string(), version);
                ids.insert(u.to_string(), id);
            }
            _ => {
                return Ok(Refresh::Full {
                    why: format!("it reads {u}, a view (views have no versions to follow)"),
                    versions: BTreeMap::new(),
                    state: Vec::new(),
                });
            }
        }
    }
    let state: Vec<(String, i64)> = now.iter().map(|(u, v)| (ids[u].clone(), *v)).collect();
    let rebuild = |why: String| {
        Ok(Refresh::Full {
            why,
            versions: now.clone(),
            state: state.clone(),
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
    if let Some(why) = changed_outside(engine, target).await? {
        return rebuild(why);
    }
    let app_ids: Vec<String> = ids.values().cloned().collect();
    let (_, _, done) = tables.progress(target, &app_ids).await?;
    let mut before = BTreeMap::new();
    for ((u, v1), v0) in now.iter().zip(done) {
        match v0 {
            Some(v0) if v0 <= *v1 => before.insert(u.clone(), v0),
            _ => return rebuild("first build of this definition".into()),
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
        // With no other table changed, the other tables read the same at both versions.
        let sides = if changed.len() > 1 {
            vec![&before, &now]
        } else {
            vec![&now]
        };
        for others in sides {
            let sql = keys_query(&spec.query, &spec.unique_key, u, range, others)?;
            // Changes that cannot be read any more (a vacuum removed them) mean a full build.
            let mut rows = match engine.stream(&sql).await {
                Ok(rows) => rows,
                Err(e) => return rebuild(format!("the changes of {u} cannot be read ({e})")),
            };
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
            state,
        });
    }
    Ok(Refresh::Keys {
        predicate: keys.predicate(&spec.unique_key, LISTED_VALUES),
        keys: keys.tuples.len(),
        changed,
        versions: now,
        state,
    })
}

/// The operations a model writes its table with (`basin.operation` of the commit).
const MODEL_WRITES: &[&str] = &["model", "model incremental"];

/// Commits read back to find the model's last build.
const HISTORY: usize = 20;

/// Why the table's rows may not be the model's own: a commit since its last build that the
/// model did not make (a change by hand, a restore). Compaction and vacuum change no row.
async fn changed_outside(engine: &Engine, target: &TableRef) -> Result<Option<String>> {
    for c in basin_sql::access::table_history(engine, target, Some(HISTORY)).await? {
        let parameters: serde_json::Value = serde_json::from_str(&c.parameters).unwrap_or_default();
        let operation = parameters["basin.operation"].as_str().unwrap_or_default();
        if MODEL_WRITES.contains(&operation) {
            return Ok(None);
        }
        let maintenance = ["OPTIMIZE", "VACUUM"]
            .iter()
            .any(|m| c.operation.to_uppercase().starts_with(m));
        if !maintenance {
            let what = if operation.is_empty() {
                c.operation.as_str()
            } else {
                operation
            };
            return Ok(Some(format!(
                "version {} changed the table outside the model ({what})",
                c.version
            )));
        }
    }
    Ok(Some(format!(
        "its last build is not among the table's last {HISTORY} commits"
    )))
}

/// Key columns with more distinct values than this are bounded by their range in a run's
/// predicate (while another key column stays listed): delta-rs turns every listed value into a
/// comparison of its own, and a list of 1,000 values made each commit about 45 ms slower.
const LISTED_VALUES: usize = 64;

/// The distinct keys found, as SQL literals per column, with each column's smallest and largest.
struct Keys {
    tuples: HashSet<Vec<Option<String>>>,
    columns: Vec<BTreeSet<String>>,
    bounds: Vec<Option<(Bound, Bound)>>,
    nulls: Vec<bool>,
}

/// A key value, ordered by its type (not by its literal's text), with its literal.
#[derive(Clone)]
struct Bound {
    value: ScalarValue,
    literal: String,
}

impl Keys {
    fn new(n: usize) -> Self {
        Keys {
            tuples: HashSet::new(),
            columns: vec![BTreeSet::new(); n],
            bounds: vec![None; n],
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
                        if self.columns[i].insert(v.clone()) {
                            self.widen(i, column, row, v)?;
                        }
                    }
                    None => self.nulls[i] = true,
                }
                tuple.push(value);
            }
            self.tuples.insert(tuple);
        }
        Ok(())
    }

    /// Stretches column `i`'s range to hold the value at `row` (its literal `literal`).
    fn widen(
        &mut self,
        i: usize,
        column: &ArrayRef,
        row: usize,
        literal: &str,
    ) -> std::result::Result<(), String> {
        let value = ScalarValue::try_from_array(column, row)
            .map_err(|e| format!("a key value cannot be read ({e})"))?;
        let bound = Bound {
            value,
            literal: literal.to_string(),
        };
        let (low, high) = self.bounds[i].get_or_insert_with(|| (bound.clone(), bound.clone()));
        // Values of two types (a column widened between the versions read) have no order: a
        // range could miss a key, so the run rebuilds in full.
        let (Some(below), Some(above)) = (
            bound.value.partial_cmp(&low.value),
            bound.value.partial_cmp(&high.value),
        ) else {
            return Err("the key's values changed type between the versions read".into());
        };
        if below.is_lt() {
            *low = bound;
        } else if above.is_gt() {
            *high = bound;
        }
        Ok(())
    }

    /// A predicate over the key columns true for every key found (and, with several key
    /// columns, for the other combinations of their values: recomputing those too is harmless).
    /// A column with more than `listed` values is bounded by its range instead of listed, as
    /// long as another column stays listed to keep the predicate narrow.
    fn predicate(&self, key: &[String], listed: usize) -> String {
        let ranged = |i: usize| self.columns[i].len() > listed;
        let any_listed = (0..key.len()).any(|i| !ranged(i));
        let parts: Vec<String> =
            key.iter()
                .enumerate()
                .map(|(i, k)| {
                    let column = quote(k);
                    let values: Vec<&str> = self.columns[i].iter().map(String::as_str).collect();
                    let listed = match &self.bounds[i] {
                        Some((low, high)) if any_listed && ranged(i) => Some(format!(
                            "{column} BETWEEN {} AND {}",
                            low.literal, high.literal
                        )),
                        _ => (!values.is_empty())
                            .then(|| format!("{column} IN ({})", values.join(", "))),
                    };
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
        let semi = "SELECT o.id FROM main.s.orders o WHERE o.amount > 0 AND o.customer IN (SELECT id FROM main.s.vip)";
        assert_eq!(why_not(semi, &key("id")), None);
        let outer = "SELECT o.id, c.region FROM main.s.orders o LEFT JOIN main.s.customers c ON o.cust = c.id WHERE o.amount > 0";
        assert_eq!(why_not(outer, &key("id")), None);
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
            (
                "SELECT c.id, c.name FROM main.s.customers c LEFT JOIN main.s.orders o ON o.customer_id = c.id WHERE o.customer_id IS NULL",
                "id",
                "nullable side",
            ),
            (
                "SELECT c.region AS region, count(*) AS n FROM main.s.orders o LEFT JOIN main.s.customers c ON o.cust = c.id GROUP BY c.region",
                "region",
                "nullable side",
            ),
            (
                "SELECT o.id FROM main.s.orders o LEFT JOIN main.s.customers c ON o.cust = c.id WHERE amount > 0",
                "id",
                "must name their table",
            ),
            (
                "WITH x AS (SELECT id FROM main.s.a EXCEPT SELECT id FROM main.s.b) SELECT id FROM x",
                "id",
                "EXCEPT",
            ),
            (
                "SELECT a.id FROM main.s.a a WHERE NOT (a.id IN (SELECT id FROM main.s.b))",
                "id",
                "NOT IN",
            ),
            (
                "SELECT a.id FROM main.s.a a WHERE a.id IN (SELECT id FROM main.s.b) = false",
                "id",
                "NOT IN",
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

    #[test]
    fn a_key_column_with_many_values_is_bounded_by_its_range_while_another_is_listed() {
        use arrow::array::{Int64Array, StringArray};
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter([
            (
                "day",
                Arc::new(StringArray::from(vec!["d1", "d1", "d1", "d1"])) as ArrayRef,
            ),
            (
                "product_id",
                Arc::new(Int64Array::from(vec![Some(9), Some(40), Some(5), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut keys = Keys::new(2);
        keys.add(&batch).unwrap();
        // Ordered as numbers, not as text ('40' < '5').
        assert_eq!(
            keys.predicate(&key("day, product_id"), 2),
            "\"day\" IN ('d1') AND (\"product_id\" BETWEEN 5 AND 40 OR \"product_id\" IS NULL)"
        );
        assert_eq!(
            keys.predicate(&key("day, product_id"), 3),
            "\"day\" IN ('d1') AND (\"product_id\" IN (40, 5, 9) OR \"product_id\" IS NULL)"
        );
        // With no column listed the predicate would hold every key: the values stay listed.
        let mut one = Keys::new(1);
        one.add(&RecordBatch::try_from_iter([("product_id", batch.column(1).clone())]).unwrap())
            .unwrap();
        assert_eq!(
            one.predicate(&key("product_id"), 2),
            "(\"product_id\" IN (40, 5, 9) OR \"product_id\" IS NULL)"
        );
        // A key column read as INT at one version and BIGINT at the other has no range.
        let narrow = RecordBatch::try_from_iter([(
            "product_id",
            Arc::new(arrow::array::Int32Array::from(vec![7])) as ArrayRef,
        )])
        .unwrap();
        assert!(one.add(&narrow).unwrap_err().contains("changed type"));
    }
}
