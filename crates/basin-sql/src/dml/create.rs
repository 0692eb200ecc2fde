//! `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] … (columns) | AS SELECT … [PARTITIONED BY (…)]`.

use basin_tables::{NewTableSpec, Write};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable as SqlCreateTable, HiveDistributionStyle, Statement, TableConstraint,
};

use super::ident_name;
use crate::access;
use crate::engine::parse;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};

pub(super) async fn run(engine: &Engine, create: SqlCreateTable) -> Result<QueryOutput> {
    if create.external || create.temporary {
        return Err(SqlError::Unsupported(
            "CREATE EXTERNAL / TEMPORARY TABLE is not supported; use CREATE [OR REPLACE] TABLE [IF NOT EXISTS] … [AS SELECT …]".into(),
        ));
    }
    if create.or_replace && create.if_not_exists {
        return Err(SqlError::Invalid(
            "CREATE OR REPLACE TABLE and IF NOT EXISTS contradict each other; use one".into(),
        ));
    }
    if create.partition_by.is_some() {
        return Err(SqlError::Unsupported(
            "PARTITION BY <expression> is not supported; name the columns: PARTITIONED BY (col, …)"
                .into(),
        ));
    }
    let partition_columns: Vec<String> = match &create.hive_distribution {
        HiveDistributionStyle::NONE => Vec::new(),
        HiveDistributionStyle::PARTITIONED { columns } => {
            columns.iter().map(|c| ident_name(&c.name)).collect()
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "'{other:?}' is not supported; use PARTITIONED BY (col, …)"
            )));
        }
    };
    let table = table_ref_of(&create.name)?;
    let actor = engine.actor();
    // OR REPLACE of a table the principal sees replaces it (the write path needs MANAGE);
    // a hidden one answers like any taken name: "already exists", to holders of CREATE only.
    let replace = create.or_replace && access::table_policy(engine, &table).await.is_ok();
    if !replace {
        engine.tables().check_create(&actor, &table).await?;
    }
    if create.if_not_exists && engine.catalog().table(&table).await?.is_some() {
        return QueryOutput::write_summary("create table", 0, -1);
    }
    let mut primary_key: Vec<String> = Vec::new();
    for c in &create.constraints {
        if let TableConstraint::PrimaryKey(pk) = c {
            primary_key.extend(
                pk.columns
                    .iter()
                    .map(|c| c.column.expr.to_string().trim_matches('"').to_string()),
            );
        }
    }
    let mut spec = NewTableSpec {
        table: table.clone(),
        schema: None,
        primary_key,
        partition_columns,
        description: String::new(),
        load_id: None,
        operation: "create table",
        transactions: Vec::new(),
    };
    let rows = match create.query {
        Some(query) => {
            let df = engine.plan(Statement::Query(query)).await?;
            for f in df.schema().fields() {
                basin_core::Name::parse("column", f.name())?;
            }
            spec.operation = "create table as select";
            Some(df.execute_stream().await?)
        }
        None => {
            let mut defs = Vec::new();
            for c in &create.columns {
                let name = ident_name(&c.name);
                basin_core::Name::parse("column", &name)?;
                if c.options
                    .iter()
                    .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
                {
                    spec.primary_key.push(name.clone());
                }
                defs.push((name, c.data_type.to_string()));
            }
            let fields: Vec<arrow::datatypes::Field> = sql_types(engine, &defs)
                .await?
                .into_iter()
                .map(|(n, t)| arrow::datatypes::Field::new(n, t, true))
                .collect();
            spec.schema = Some(arrow::datatypes::Schema::new(fields));
            None
        }
    };
    if replace {
        let rows = match (rows, spec.schema) {
            (Some(rows), _) => rows,
            // No rows: an empty stream gives the new schema.
            (None, schema) => Box::pin(RecordBatchStreamAdapter::new(
                std::sync::Arc::new(schema.unwrap_or_else(arrow::datatypes::Schema::empty)),
                futures::stream::empty(),
            )),
        };
        let write = Write::Replace {
            rows,
            primary_key: spec.primary_key,
            partition_columns: spec.partition_columns,
            transactions: Vec::new(),
            operation: "replace table",
        };
        let done = engine.tables().commit(&actor, &table, write).await?;
        return QueryOutput::write_summary("replace table", done.rows, done.version);
    }
    let done = engine.tables().create(&actor, spec, rows).await?;
    QueryOutput::write_summary("create table", done.rows, done.version)
}

/// Arrow types for SQL type names, as DataFusion maps them (`SELECT CAST(NULL AS <type>)`).
pub(super) async fn sql_types(
    engine: &Engine,
    defs: &[(String, String)],
) -> Result<Vec<(String, arrow::datatypes::DataType)>> {
    if defs.is_empty() {
        return Err(SqlError::Invalid(
            "a table needs at least one column".into(),
        ));
    }
    let select = defs
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("CAST(NULL AS {t}) AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let df = engine
        .plan(parse(&format!("SELECT {select}"))?.remove(0))
        .await?;
    Ok(defs
        .iter()
        .zip(df.schema().fields())
        .map(|((n, _), f)| (n.clone(), f.data_type().clone()))
        .collect())
}
