//! `CREATE [OR REPLACE] VIEW … AS SELECT …`: a stored query, expanded when a query reads it,
//! under the querying principal's policies (see `resolve::view_provider`).

use basin_catalog::Column;
use basin_core::TableRef;
use datafusion::sql::sqlparser::ast::{CreateView, Statement};

use crate::engine::{Engine, QueryOutput, parse};
use crate::resolve::{table_ref_of, tables_named};
use crate::{Result, SqlError};

pub(super) async fn run(engine: &Engine, create: CreateView) -> Result<QueryOutput> {
    if create.materialized {
        return Err(SqlError::Unsupported(
            "CREATE MATERIALIZED VIEW is not supported; use CREATE TABLE … AS SELECT".into(),
        ));
    }
    if !create.columns.is_empty() {
        return Err(SqlError::Unsupported(
            "a column list after the view's name is not supported; name the columns in the SELECT (… AS name)".into(),
        ));
    }
    let view = table_ref_of(&create.name)?;
    if create.if_not_exists && engine.catalog().table(&view).await?.is_some() {
        return QueryOutput::write_summary("create view", 0, -1);
    }
    let definition = create.query.to_string();
    if reads(engine, &definition, &view, 0).await? {
        return Err(SqlError::Invalid(format!(
            "view '{view}' would read itself (through the tables and views it names)"
        )));
    }
    // Planned as its creator: a view may only name what its creator may read. The stored
    // text keeps `current_user()` and `user_attribute()` for the principal who queries it.
    let mut statement = Statement::Query(create.query);
    crate::principal_sql::bind_statement(&mut statement, engine.principal())?;
    let df = engine.plan(statement).await?;
    let schema = df.schema().as_arrow().clone();
    for f in schema.fields() {
        basin_core::Name::parse("column", f.name())?;
    }
    let columns: Vec<Column> = basin_lake::types::describe(&schema)
        .into_iter()
        .map(Column::from)
        .collect();
    engine
        .tables()
        .create_view(
            &engine.actor(),
            &view,
            &definition,
            &columns,
            create.or_replace,
        )
        .await?;
    QueryOutput::write_summary("create view", 0, -1)
}

/// Whether `sql` reads `view`, directly or through the views it names.
async fn reads(engine: &Engine, sql: &str, view: &TableRef, depth: usize) -> Result<bool> {
    if depth > 32 {
        return Ok(true);
    }
    for statement in parse(sql)? {
        for t in tables_named(&statement)? {
            if &t == view {
                return Ok(true);
            }
            if let Some(entry) = engine.catalog().table(&t).await?
                && entry.is_view()
                && Box::pin(reads(engine, &entry.definition, view, depth + 1)).await?
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
