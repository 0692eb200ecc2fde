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
use crate::engine::{Engine, QueryOutput};
use crate::{Result, SqlError};

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
    if policy.row_filter.is_some() {
        let lake = LakeTable::open(&entry.location).await?;
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
