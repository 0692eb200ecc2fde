//! Statements that change tables, one module each: every statement is checked against the
//! principal's policy (visible columns, rows inside its row filter) and handed to the write path
//! (basin-tables) as one [`basin_tables::Write`].

mod alter;
mod create;
mod delete;
mod drop;
mod insert;
mod merge;
mod truncate;
mod update;
mod view;

use std::ops::ControlFlow;

use basin_core::TableRef;
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr, Ident, ObjectName, Statement, TableFactor, TableWithJoins,
    VisitMut, VisitorMut,
};

use crate::access;
use crate::engine::{Engine, QueryOutput};
use crate::principal_sql::bind_principal;
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::{Privilege, TablePolicy};

pub(crate) async fn run(engine: &Engine, statement: Statement) -> Result<QueryOutput> {
    match statement {
        Statement::Insert(insert) => insert::run(engine, insert).await,
        Statement::Update(update) => update::run(engine, update).await,
        Statement::Delete(delete) => delete::run(engine, delete).await,
        Statement::Merge(merge) => merge::run(engine, merge).await,
        Statement::CreateTable(create) => create::run(engine, create).await,
        Statement::AlterTable(alter) => alter::run(engine, alter).await,
        Statement::Truncate(truncate) => truncate::run(engine, truncate).await,
        Statement::CreateView(create) => Box::pin(view::run(engine, create)).await,
        Statement::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => drop::run(engine, object_type, if_exists, names).await,
        other => Err(SqlError::Unsupported(format!(
            "statement not supported: {}",
            other
                .to_string()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

async fn target(
    engine: &Engine,
    from: &TableWithJoins,
) -> Result<(basin_catalog::Table, TablePolicy)> {
    let TableFactor::Table { name, .. } = &from.relation else {
        return Err(SqlError::Unsupported(
            "the target of UPDATE / DELETE must be a table".into(),
        ));
    };
    if !from.joins.is_empty() {
        return Err(SqlError::Unsupported(
            "UPDATE / DELETE with joins is not supported; use MERGE INTO".into(),
        ));
    }
    let table = table_ref_of(name)?;
    let (entry, policy) = access::table_policy(engine, &table).await?;
    access::require(&policy, Privilege::Modify, &table)?;
    not_a_view(&entry)?;
    Ok((entry, policy))
}

/// Views have no rows of their own to write.
fn not_a_view(entry: &basin_catalog::Table) -> Result<()> {
    match entry.is_view() {
        true => Err(SqlError::Invalid(format!(
            "'{}' is a view: it has no rows of its own; write to the tables it reads",
            entry.table_ref()
        ))),
        false => Ok(()),
    }
}

/// The predicate of an UPDATE or DELETE, confined to the rows the principal may see.
fn governed_predicate(
    engine: &Engine,
    policy: &TablePolicy,
    selection: Option<Expr>,
) -> Result<Option<String>> {
    let user = selection.map(|p| unqualified(p).to_string());
    let filter = policy
        .row_filter
        .as_deref()
        .map(|f| bind_principal(f, engine.principal()))
        .transpose()?;
    Ok(match (filter, user) {
        (Some(f), Some(u)) => Some(format!("({f}) AND ({u})")),
        (Some(f), None) => Some(f),
        (None, u) => u,
    })
}

/// Refuses a write whose rows the principal could not read back (PostgreSQL's `WITH CHECK`):
/// a row filter must not let a user write rows into other users' views. `rows` are whole rows
/// of the table as they will be stored.
async fn check_rows_visible(
    engine: &Engine,
    policy: &TablePolicy,
    table: &TableRef,
    rows: DataFrame,
) -> Result<()> {
    let Some(filter) = &policy.row_filter else {
        return Ok(());
    };
    let filter = rows.parse_sql_expr(&bind_principal(filter, engine.principal())?)?;
    let outside = rows.filter(filter.is_not_true())?.count().await?;
    if outside == 0 {
        return Ok(());
    }
    Err(SqlError::Denied(format!(
        "permission denied: {outside} row(s) written to '{table}' would fall outside the rows you may see; write only rows that your row filter admits"
    )))
}

/// Fails when a column is not visible to the principal (as if it did not exist).
fn check_visible(
    entry: &basin_catalog::Table,
    policy: &TablePolicy,
    columns: &[String],
) -> Result<()> {
    for c in columns {
        if !policy.columns.iter().any(|p| &p.name == c) {
            return Err(SqlError::NotFound {
                kind: "column",
                name: format!("{}.{c}", entry.table_ref()),
                suggestion: basin_core::closest(c, policy.columns.iter().map(|p| p.name.as_str()))
                    .map(str::to_string),
            });
        }
    }
    Ok(())
}

/// Fails when an UPDATE or DELETE would read a column the principal may not see in clear: the
/// number of rows changed would reveal its values.
fn check_usable(
    entry: &basin_catalog::Table,
    policy: &TablePolicy,
    columns: &[String],
) -> Result<()> {
    check_visible(entry, policy, columns)?;
    for c in columns {
        if let Some(p) = policy.columns.iter().find(|p| &p.name == c)
            && (p.mask.is_some() || p.pii)
        {
            return Err(SqlError::Denied(format!(
                "column '{c}' is protected (masked or encrypted): UPDATE and DELETE cannot use it; use MERGE INTO with UNMASK"
            )));
        }
    }
    Ok(())
}

/// The column names an expression reads.
fn columns_in(expr: &Expr) -> Vec<String> {
    struct Collect(Vec<String>);
    impl datafusion::sql::sqlparser::ast::Visitor for Collect {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(i) => self.0.push(ident_name(i)),
                Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        self.0.push(ident_name(last));
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect(Vec::new());
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(expr, &mut c);
    c.0
}

fn parse_expr(sql: &str) -> Result<Expr> {
    crate::dialect::parse_expr(sql).map_err(|e| SqlError::Parse(e.to_string()))
}

/// `SET column = value` pairs as text. An UPDATE's values lose their table qualifiers (they run
/// against the one target table); a MERGE's keep them (they name the target or the source).
fn assignments(list: Vec<Assignment>, strip_qualifiers: bool) -> Result<Vec<(String, String)>> {
    list.into_iter()
        .map(|a| match a.target {
            AssignmentTarget::ColumnName(name) => {
                let value = if strip_qualifiers {
                    unqualified(a.value)
                } else {
                    a.value
                };
                Ok((last_ident(&name), value.to_string()))
            }
            AssignmentTarget::Tuple(_) => Err(SqlError::Unsupported(
                "SET (a, b) = … is not supported; set each column".into(),
            )),
        })
        .collect()
}

fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .unwrap_or_else(|| name.to_string())
}

/// `t.col` → `col`: UPDATE and DELETE predicates run against the one target table.
fn unqualified(mut expr: Expr) -> Expr {
    struct Strip;
    impl VisitorMut for Strip {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr {
                if let Some(last) = parts.last() {
                    *expr = Expr::Identifier(last.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut Strip);
    expr
}
