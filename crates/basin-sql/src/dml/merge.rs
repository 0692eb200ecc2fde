//! `MERGE INTO target USING source ON … WHEN …`.

use basin_lake::{LakeTable, MergeClause};
use basin_tables::Write;
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{MergeAction, MergeClauseKind, MergeInsertKind, TableFactor};

use super::{assignments, ident_name, last_ident};
use crate::access;
use crate::assign::check_assignable;
use crate::engine::parse;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::Privilege;
use datafusion::logical_expr::ExprSchemable;

pub(super) async fn run(
    engine: &Engine,
    merge: datafusion::sql::sqlparser::ast::Merge,
) -> Result<QueryOutput> {
    let TableFactor::Table { name, alias, .. } = &merge.table else {
        return Err(SqlError::Unsupported(
            "MERGE INTO needs a table as its target".into(),
        ));
    };
    let table = table_ref_of(name)?;
    let (entry, policy) = access::table_policy(engine, &table).await?;
    super::not_a_view(&entry)?;
    // Checked before the source is planned; the write path decides the rest as it commits.
    access::require(&policy, Privilege::Modify, &table)?;
    let lake = LakeTable::open(&entry.location).await?;
    let target_alias = alias
        .as_ref()
        .map(|a| ident_name(&a.name))
        .unwrap_or_else(|| table.table.to_string());
    let mut source = merge.source.clone();
    let source_alias = match &mut source {
        TableFactor::Table { name, alias, .. } => alias
            .take()
            .map(|a| ident_name(&a.name))
            .unwrap_or_else(|| last_ident(name)),
        TableFactor::Derived { alias, .. } => {
            alias.take().map(|a| ident_name(&a.name)).ok_or_else(|| {
                SqlError::Invalid("a subquery in MERGE … USING needs an alias".into())
            })?
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "MERGE … USING {other} is not supported"
            )));
        }
    };
    let source_sql = format!("SELECT * FROM {source}");
    let source_df: DataFrame = engine.plan(parse(&source_sql)?.remove(0)).await?;
    let table_columns: Vec<String> = lake
        .schema()?
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut clauses = Vec::new();
    for clause in merge.clauses {
        let predicate = clause.predicate.map(|p| p.to_string());
        let lake_clause = match (clause.clause_kind, clause.action) {
            (MergeClauseKind::Matched, MergeAction::Update(u)) => MergeClause::MatchedUpdate {
                predicate,
                set: assignments(u.assignments, false)?,
            },
            (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                MergeClause::MatchedDelete { predicate }
            }
            (
                MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                MergeAction::Insert(i),
            ) => {
                let columns: Vec<String> = if i.columns.is_empty() {
                    table_columns.clone()
                } else {
                    i.columns.iter().map(last_ident).collect()
                };
                let values = match i.kind {
                    MergeInsertKind::Values(v) => {
                        let [row] = v.rows.as_slice() else {
                            return Err(SqlError::Invalid(
                                "MERGE … INSERT VALUES takes exactly one row".into(),
                            ));
                        };
                        if row.len() != columns.len() {
                            return Err(SqlError::Invalid(format!(
                                "MERGE … INSERT has {} value(s) for {} column(s)",
                                row.len(),
                                columns.len()
                            )));
                        }
                        columns
                            .into_iter()
                            .zip(row.iter().map(|e| e.to_string()))
                            .collect()
                    }
                    MergeInsertKind::Row => vec![],
                };
                MergeClause::NotMatchedInsert { predicate, values }
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Update(u)) => {
                MergeClause::NotMatchedBySourceUpdate {
                    predicate,
                    set: assignments(u.assignments, false)?,
                }
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                MergeClause::NotMatchedBySourceDelete { predicate }
            }
            (kind, action) => {
                return Err(SqlError::Invalid(format!(
                    "MERGE clause 'WHEN {kind} THEN {action}' is not valid"
                )));
            }
        };
        clauses.push(lake_clause);
    }
    check_merge_values(
        engine,
        &lake,
        &table,
        (&target_alias, &source_alias),
        &source_df,
        &clauses,
    )
    .await?;
    let done = engine
        .tables()
        .commit(
            &engine.actor(),
            &table,
            Write::Merge {
                source: source_df,
                on: merge.on.to_string(),
                target_alias,
                source_alias,
                clauses,
            },
        )
        .await?;
    QueryOutput::write_summary("merge", done.rows, done.version)
}

/// Refuses a MERGE whose values cannot be assigned to their columns (a number into a TIMESTAMP
/// column, …), naming the column and the value, before anything runs.
async fn check_merge_values(
    engine: &Engine,
    lake: &LakeTable,
    table: &basin_core::TableRef,
    (target_alias, source_alias): (&str, &str),
    source: &DataFrame,
    clauses: &[MergeClause],
) -> Result<()> {
    let schema = lake.schema()?;
    let both = engine
        .read(lake.provider().await?)?
        .alias(target_alias)?
        .join_on(
            source.clone().alias(source_alias)?,
            datafusion::common::JoinType::Inner,
            [datafusion::prelude::lit(true)],
        )?;
    for clause in clauses {
        let values: &[(String, String)] = match clause {
            MergeClause::MatchedUpdate { set, .. }
            | MergeClause::NotMatchedBySourceUpdate { set, .. } => set,
            MergeClause::NotMatchedInsert { values, .. } => values,
            _ => &[],
        };
        for (column, value) in values {
            // Unknown columns are the write path's error to report.
            let Ok(field) = schema.field_with_name(column) else {
                continue;
            };
            let from = both.parse_sql_expr(value)?.get_type(both.schema())?;
            check_assignable(
                value,
                &from,
                &format!("{table}.{column}"),
                field.data_type(),
            )?;
        }
    }
    Ok(())
}
