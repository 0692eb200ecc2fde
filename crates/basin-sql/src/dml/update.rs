//! `UPDATE … SET … WHERE …`, confined to the rows the principal may see.

use basin_lake::LakeTable;
use basin_tables::Write;
use datafusion::common::Column as DfColumn;
use datafusion::prelude::{DataFrame, Expr as DfExpr};
use datafusion::sql::sqlparser::ast::Update;

use super::{
    assignments, check_rows_visible, check_usable, columns_in, governed_predicate, parse_expr,
    target,
};
use crate::assign::assign;
use crate::engine::{Engine, QueryOutput};
use crate::{Result, SqlError};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::ExprSchemable;

pub(super) async fn run(engine: &Engine, update: Update) -> Result<QueryOutput> {
    if update.from.is_some() || update.returning.is_some() {
        return Err(SqlError::Unsupported(
            "UPDATE … FROM / RETURNING is not supported; use MERGE INTO".into(),
        ));
    }
    let (entry, policy) = target(engine, &update.table).await?;
    let set = assignments(update.assignments, true)?;
    let mut used: Vec<String> = set.iter().map(|(c, _)| c.clone()).collect();
    for (_, value) in &set {
        used.extend(columns_in(&parse_expr(value)?));
    }
    if let Some(p) = &update.selection {
        used.extend(columns_in(p));
    }
    check_usable(&entry, &policy, &used)?;
    let predicate = governed_predicate(engine, &policy, update.selection)?;
    let lake = LakeTable::open(&entry.location).await?;
    let set = check_values(engine, &lake, &entry.table_ref(), predicate.as_deref(), set).await?;
    if policy.row_filter.is_some() {
        let updated = updated_rows(engine, &lake, predicate.as_deref(), &set).await?;
        check_rows_visible(engine, &policy, &entry.table_ref(), updated).await?;
    }
    let done = engine
        .tables()
        .commit(
            &engine.actor(),
            &entry.table_ref(),
            Write::Update { predicate, set },
        )
        .await?;
    QueryOutput::write_summary("update", done.rows, done.version)
}

/// Evaluates the new values on the rows the UPDATE changes, in the engine's session, before
/// anything is written: an integer overflow, or a value that does not fit its column, fails
/// here with the column's name (the write path evaluates the same expressions without these
/// checks). Returns the assignments as the write path must run them: a fractional number
/// assigned to an integer column rounded, as an INSERT does.
async fn check_values(
    engine: &Engine,
    lake: &LakeTable,
    table: &basin_core::TableRef,
    predicate: Option<&str>,
    set: Vec<(String, String)>,
) -> Result<Vec<(String, String)>> {
    let schema = lake.schema()?;
    let mut rows = engine.read(lake.provider().await?)?;
    if let Some(p) = predicate {
        rows = rows.clone().filter(rows.parse_sql_expr(p)?)?;
    }
    let mut checks = Vec::new();
    let mut out = Vec::with_capacity(set.len());
    for (column, value) in set {
        // An unknown column is the write path's error to report.
        if let Ok(field) = schema.field_with_name(&column) {
            let expr = rows.parse_sql_expr(&value)?;
            let from = expr.get_type(rows.schema())?;
            let target = field.data_type();
            checks.push(count(assign(expr, &format!("{table}.{column}"), target)));
            if from.is_floating() && target.is_integer() {
                out.push((column, format!("round({value})")));
                continue;
            }
        }
        out.push((column, value));
    }
    if !checks.is_empty() {
        rows.aggregate(vec![], checks)?.collect().await?;
    }
    Ok(out)
}

/// The rows an UPDATE selects, with its assignments applied.
async fn updated_rows(
    engine: &Engine,
    lake: &LakeTable,
    predicate: Option<&str>,
    set: &[(String, String)],
) -> Result<DataFrame> {
    let mut rows = engine.read(lake.provider().await?)?;
    if let Some(p) = predicate {
        rows = rows.clone().filter(rows.parse_sql_expr(p)?)?;
    }
    let mut columns = Vec::new();
    for field in rows.schema().fields() {
        let name = field.name();
        columns.push(match set.iter().find(|(c, _)| c == name) {
            Some((_, value)) => rows.parse_sql_expr(value)?.alias(name),
            None => DfExpr::Column(DfColumn::new_unqualified(name)),
        });
    }
    Ok(rows.select(columns)?)
}
