//! Column-level lineage from a query's logical plan: for each output column, the table columns
//! (`hub.dataset.table`, column) it is computed from and how — through projections, aliases,
//! expressions, aggregates, joins, unions, CTEs and subqueries — and the columns that decide
//! which rows there are (filters, join keys, grouping, sorting, window partitions).
//!
//! The plan is the one DataFusion builds before optimizing: it still has every alias and CTE
//! as written, and planning stops before anything is read.

use std::collections::{BTreeMap, BTreeSet};

use basin_core::TableRef;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{Expr, LogicalPlan};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, parse};
use crate::{Result, SqlError, principal_sql};

/// How an upstream column bears on a downstream one (the OpenLineage transformation
/// subtypes). The first three are *direct* (the value comes from the column), the others
/// *indirect* (the column decides which rows there are, for the whole table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnUse {
    /// Passed through as it is, perhaps renamed.
    Identity,
    /// Computed from it by an expression (a function, an operator, a cast, CASE …).
    Transformation,
    /// Aggregated (`sum`, `count`, a window function …).
    Aggregation,
    /// Used in a WHERE or HAVING condition.
    Filter,
    /// Used in a join condition.
    Join,
    /// Used in GROUP BY.
    GroupBy,
    /// Used in ORDER BY.
    Sort,
    /// Used in a window's PARTITION BY or ORDER BY.
    Window,
}

impl ColumnUse {
    /// Whether values flow from the column (rather than the column selecting rows).
    pub fn is_direct(self) -> bool {
        matches!(
            self,
            ColumnUse::Identity | ColumnUse::Transformation | ColumnUse::Aggregation
        )
    }

    /// As `system.column_lineage` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnUse::Identity => "identity",
            ColumnUse::Transformation => "transformation",
            ColumnUse::Aggregation => "aggregation",
            ColumnUse::Filter => "filter",
            ColumnUse::Join => "join",
            ColumnUse::GroupBy => "group_by",
            ColumnUse::Sort => "sort",
            ColumnUse::Window => "window",
        }
    }
}

/// One column edge of a query: `upstream`.`upstream_column` feeds output `column` (direct), or
/// the whole result (indirect: `column` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ColumnEdge {
    /// The output column; `None` for an indirect edge, which bears on every row.
    pub column: Option<String>,
    /// `hub.dataset.table`.
    pub upstream: String,
    pub upstream_column: String,
    pub kind: ColumnUse,
}

/// A query's output columns (name, SQL type) and its column edges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryLineage {
    pub columns: Vec<(String, String)>,
    pub edges: Vec<ColumnEdge>,
}

/// Plans `query` (one SELECT, its tables named `hub.dataset.table`) as `engine`'s principal —
/// who sees only the columns its grants show — and derives its column lineage. Reads no rows.
pub async fn of_query(engine: &Engine, query: &str) -> Result<QueryLineage> {
    let mut statements = parse(query)?;
    if statements.len() != 1
        || !matches!(
            statements[0],
            datafusion::sql::sqlparser::ast::Statement::Query(_)
        )
    {
        return Err(SqlError::Invalid(
            "column lineage is derived from exactly one query (SELECT … or WITH … SELECT …)".into(),
        ));
    }
    let mut statement = statements.remove(0);
    principal_sql::bind_statement(&mut statement, engine.principal())?;
    let df = engine.plan(statement).await?;
    Ok(of_plan(df.logical_plan()))
}

/// The column lineage of an (unoptimized) logical plan.
pub fn of_plan(plan: &LogicalPlan) -> QueryLineage {
    let walked = walk(plan);
    let mut edges = BTreeSet::new();
    let schema = plan.schema();
    for (field, sources) in schema.fields().iter().zip(&walked.fields) {
        for ((upstream, upstream_column), used) in sources {
            edges.insert(ColumnEdge {
                column: Some(field.name().clone()),
                upstream: upstream.clone(),
                upstream_column: upstream_column.clone(),
                kind: *used,
            });
        }
    }
    for (upstream, upstream_column, used) in walked.indirect {
        edges.insert(ColumnEdge {
            column: None,
            upstream,
            upstream_column,
            kind: used,
        });
    }
    QueryLineage {
        columns: schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), crate::sql_type_name(f.data_type())))
            .collect(),
        edges: edges.into_iter().collect(),
    }
}

/// The table columns one column of a plan comes from, each with the strongest direct use
/// (identity < transformation < aggregation).
type Sources = BTreeMap<(String, String), ColumnUse>;

/// What a plan node's output is made of.
#[derive(Default, Clone)]
struct Walked {
    /// Per output column, in schema order.
    fields: Vec<Sources>,
    /// Columns that select rows, with how.
    indirect: BTreeSet<(String, String, ColumnUse)>,
}

/// The inputs an expression's columns resolve against.
type Inputs<'a> = [(&'a DFSchema, &'a Walked)];

fn walk(plan: &LogicalPlan) -> Walked {
    let children: Vec<&LogicalPlan> = plan.inputs();
    let walked: Vec<Walked> = children.iter().map(|c| walk(c)).collect();
    let inputs: Vec<(&DFSchema, &Walked)> = children
        .iter()
        .map(|c| c.schema().as_ref())
        .zip(walked.iter())
        .collect();
    let mut indirect: BTreeSet<(String, String, ColumnUse)> = walked
        .iter()
        .flat_map(|w| w.indirect.iter().cloned())
        .collect();
    let fields = match plan {
        LogicalPlan::TableScan(scan) => {
            let table = table_name(&scan.table_name);
            scan.projected_schema
                .fields()
                .iter()
                .map(|f| match &table {
                    Some(t) => {
                        Sources::from([((t.clone(), f.name().clone()), ColumnUse::Identity)])
                    }
                    None => Sources::new(),
                })
                .collect()
        }
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .map(|e| of_expr(e, &inputs, &mut indirect))
            .collect(),
        LogicalPlan::Filter(f) => {
            note(&f.predicate, &inputs, ColumnUse::Filter, &mut indirect);
            walked[0].fields.clone()
        }
        LogicalPlan::Aggregate(a) => {
            let mut fields = Vec::new();
            for g in grouping_set_to_exprlist(&a.group_expr).unwrap_or_default() {
                note(g, &inputs, ColumnUse::GroupBy, &mut indirect);
                fields.push(of_expr(g, &inputs, &mut indirect));
            }
            if matches!(a.group_expr.as_slice(), [Expr::GroupingSet(_)]) {
                // The internal grouping id comes from no column.
                fields.push(Sources::new());
            }
            for e in &a.aggr_expr {
                fields.push(of_expr(e, &inputs, &mut indirect));
            }
            fields
        }
        LogicalPlan::Window(w) => {
            let mut fields = walked[0].fields.clone();
            for e in &w.window_expr {
                fields.push(of_expr(e, &inputs, &mut indirect));
            }
            fields
        }
        LogicalPlan::Join(j) => {
            for (l, r) in &j.on {
                note(l, &inputs, ColumnUse::Join, &mut indirect);
                note(r, &inputs, ColumnUse::Join, &mut indirect);
            }
            if let Some(f) = &j.filter {
                note(f, &inputs, ColumnUse::Join, &mut indirect);
            }
            by_name(plan.schema(), &inputs)
        }
        LogicalPlan::Sort(s) => {
            for e in &s.expr {
                note(&e.expr, &inputs, ColumnUse::Sort, &mut indirect);
            }
            walked[0].fields.clone()
        }
        // Every input gives the output its rows, column by column.
        LogicalPlan::Union(_) | LogicalPlan::RecursiveQuery(_) => {
            let mut fields = vec![Sources::new(); plan.schema().fields().len()];
            for w in &walked {
                for (into, from) in fields.iter_mut().zip(&w.fields) {
                    merge(into, from);
                }
            }
            fields
        }
        _ => {
            // Aliases, limits, DISTINCT, repartitions …: the input's columns, renamed at most.
            let n = plan.schema().fields().len();
            match walked.as_slice() {
                [one] if one.fields.len() == n => one.fields.clone(),
                _ => by_name(plan.schema(), &inputs),
            }
        }
    };
    Walked { fields, indirect }
}

/// `hub.dataset.table` of a scanned table; `None` for what is not a table of a hub (a CTE's
/// work table, a system table). A table read at a version (time travel) is planned under a
/// name of its own, `table (version n) #i`: its table is the one before the parenthesis.
fn table_name(name: &TableReference) -> Option<String> {
    let TableReference::Full {
        catalog,
        schema,
        table,
    } = name
    else {
        return None;
    };
    let table = table.split(" (").next().unwrap_or(table);
    TableRef::new(catalog, schema, table)
        .ok()
        .map(|t| t.to_string())
}

/// The output columns of a node that keeps its inputs' columns under their names (a join).
fn by_name(schema: &DFSchema, inputs: &Inputs) -> Vec<Sources> {
    schema
        .iter()
        .map(|(q, f)| {
            resolve(&Column::new(q.cloned(), f.name()), inputs)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn resolve<'a>(column: &Column, inputs: &'a Inputs) -> Option<&'a Sources> {
    inputs.iter().find_map(|(schema, walked)| {
        schema
            .maybe_index_of_column(column)
            .and_then(|i| walked.fields.get(i))
    })
}

fn merge(into: &mut Sources, from: &Sources) {
    for (k, used) in from {
        let e = into.entry(k.clone()).or_insert(*used);
        *e = (*e).max(*used);
    }
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        _ => e,
    }
}

/// What an output expression is computed from: a bare column passes its sources on as they
/// are; anything else transforms them, or aggregates them when it holds an aggregate or a
/// window function.
fn of_expr(
    e: &Expr,
    inputs: &Inputs,
    indirect: &mut BTreeSet<(String, String, ColumnUse)>,
) -> Sources {
    let e = strip_alias(e);
    if let Expr::Column(c) = e {
        return resolve(c, inputs).cloned().unwrap_or_default();
    }
    let mut aggregated = false;
    let mut columns: Vec<&Column> = Vec::new();
    let mut scalar_subqueries = Vec::new();
    let _ = e.apply(|node| {
        use datafusion::common::tree_node::TreeNodeRecursion;
        match node {
            Expr::AggregateFunction(_) => aggregated = true,
            Expr::WindowFunction(w) => {
                aggregated = true;
                // Partitioning and ordering select the window's rows: indirect.
                for p in &w.params.partition_by {
                    note(p, inputs, ColumnUse::Window, indirect);
                }
                for o in &w.params.order_by {
                    note(&o.expr, inputs, ColumnUse::Window, indirect);
                }
                for a in &w.params.args {
                    columns.extend(a.column_refs());
                }
                return Ok(TreeNodeRecursion::Jump);
            }
            Expr::Column(c) => columns.push(c),
            Expr::ScalarSubquery(s) => scalar_subqueries.push(s.subquery.clone()),
            Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_) => {
                subquery_rows(node, ColumnUse::Filter, indirect)
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let used = if aggregated {
        ColumnUse::Aggregation
    } else {
        ColumnUse::Transformation
    };
    let mut sources = Sources::new();
    for c in columns {
        if let Some(from) = resolve(c, inputs) {
            for (k, u) in from {
                let e = sources.entry(k.clone()).or_insert(used);
                *e = (*e).max(used).max(*u);
            }
        }
    }
    for plan in scalar_subqueries {
        let walked = walk(&plan);
        indirect.extend(walked.indirect);
        for (k, u) in walked.fields.into_iter().flatten() {
            let e = sources.entry(k).or_insert(used);
            *e = (*e).max(used).max(u);
        }
    }
    sources
}

/// Records the sources of every column `e` names as selecting rows (`used`).
fn note(
    e: &Expr,
    inputs: &Inputs,
    used: ColumnUse,
    indirect: &mut BTreeSet<(String, String, ColumnUse)>,
) {
    for c in e.column_refs() {
        if let Some(from) = resolve(c, inputs) {
            for (t, col) in from.keys() {
                indirect.insert((t.clone(), col.clone(), used));
            }
        }
    }
    let _ = e.apply(|node| {
        match node {
            Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_) => {
                subquery_rows(node, used, indirect)
            }
            Expr::ScalarSubquery(s) => {
                let walked = walk(&s.subquery);
                indirect.extend(walked.indirect);
                for (t, col) in walked.fields.iter().flat_map(|f| f.keys()) {
                    indirect.insert((t.clone(), col.clone(), used));
                }
            }
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
}

/// An `EXISTS`, `IN (subquery)` or `op ANY (subquery)`: the subquery's columns select rows.
fn subquery_rows(e: &Expr, used: ColumnUse, indirect: &mut BTreeSet<(String, String, ColumnUse)>) {
    let sub = match e {
        Expr::Exists(x) => &x.subquery,
        Expr::InSubquery(x) => &x.subquery,
        Expr::SetComparison(x) => &x.subquery,
        _ => return,
    };
    let walked = walk(&sub.subquery);
    indirect.extend(walked.indirect);
    for (t, col) in walked.fields.iter().flat_map(|f| f.keys()) {
        indirect.insert((t.clone(), col.clone(), used));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn lineage(sql: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let schema = Arc::new(MemorySchemaProvider::new());
        let table = |cols: &[(&str, DataType)]| {
            let s = Arc::new(Schema::new(
                cols.iter()
                    .map(|(n, t)| Field::new(*n, t.clone(), true))
                    .collect::<Vec<_>>(),
            ));
            Arc::new(MemTable::try_new(s, vec![vec![]]).unwrap())
        };
        use datafusion::catalog::SchemaProvider;
        schema
            .register_table(
                "orders".into(),
                table(&[
                    ("id", DataType::Int64),
                    ("customer_id", DataType::Int64),
                    ("status", DataType::Utf8),
                    ("amount", DataType::Float64),
                ]),
            )
            .unwrap();
        schema
            .register_table(
                "customers".into(),
                table(&[("id", DataType::Int64), ("name", DataType::Utf8)]),
            )
            .unwrap();
        catalog.register_schema("source", schema).unwrap();
        ctx.register_catalog("main", catalog);
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        // Edges sort indirect ones (no output column, shown `*`) first.
        of_plan(&plan)
            .edges
            .iter()
            .map(|e| {
                format!(
                    "{} <- {}.{} {}",
                    e.column.as_deref().unwrap_or("*"),
                    e.upstream,
                    e.upstream_column,
                    e.kind.as_str()
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn joins_aliases_expressions_aggregates_and_ctes() {
        let got = lineage(
            "WITH o AS (SELECT customer_id AS cid, amount * 2 AS doubled, status FROM main.source.orders WHERE amount > 0)
             SELECT c.name AS customer, upper(o.status) AS status, sum(o.doubled) AS total, count(*) AS n
             FROM o JOIN main.source.customers c ON c.id = o.cid
             GROUP BY c.name, upper(o.status) ORDER BY total",
        )
        .await;
        assert_eq!(
            got,
            [
                "* <- main.source.customers.id join",
                "* <- main.source.customers.name group_by",
                "* <- main.source.orders.amount filter",
                "* <- main.source.orders.amount sort",
                "* <- main.source.orders.customer_id join",
                "* <- main.source.orders.status group_by",
                "customer <- main.source.customers.name identity",
                "status <- main.source.orders.status transformation",
                "total <- main.source.orders.amount aggregation",
            ]
        );
    }

    #[tokio::test]
    async fn unions_subqueries_and_windows() {
        let got = lineage(
            "SELECT id, rank() OVER (PARTITION BY customer_id ORDER BY amount) AS r FROM main.source.orders
             WHERE customer_id IN (SELECT id FROM main.source.customers WHERE name = 'Ada')
             UNION ALL SELECT id, 0 FROM main.source.customers",
        )
        .await;
        assert_eq!(
            got,
            [
                "* <- main.source.customers.id filter",
                "* <- main.source.customers.name filter",
                "* <- main.source.orders.amount window",
                "* <- main.source.orders.customer_id filter",
                "* <- main.source.orders.customer_id window",
                "id <- main.source.customers.id identity",
                "id <- main.source.orders.id identity",
            ]
        );
    }

    #[tokio::test]
    async fn having_and_scalar_subqueries() {
        let got = lineage(
            "SELECT customer_id, sum(amount) AS total, (SELECT max(id) FROM main.source.customers) AS top
             FROM main.source.orders GROUP BY customer_id HAVING sum(amount) > 10",
        )
        .await;
        assert_eq!(
            got,
            [
                "* <- main.source.orders.amount filter",
                "* <- main.source.orders.customer_id group_by",
                "customer_id <- main.source.orders.customer_id identity",
                "top <- main.source.customers.id aggregation",
                "total <- main.source.orders.amount aggregation",
            ]
        );
    }

    #[test]
    fn a_table_read_at_a_version_is_the_table() {
        let at = TableReference::full("main", "source", "orders (version 3) #0");
        assert_eq!(table_name(&at).as_deref(), Some("main.source.orders"));
        assert_eq!(
            table_name(&TableReference::partial("system", "tables")),
            None
        );
    }
}
