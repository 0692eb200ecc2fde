//! `INSERT INTO … VALUES | SELECT` and `INSERT OVERWRITE`.

use basin_tables::Write;
use basin_tables::pii;
use datafusion::common::{Column as DfColumn, ScalarValue};
use datafusion::prelude::{DataFrame, Expr as DfExpr};
use datafusion::sql::sqlparser::ast::{Insert, ObjectName, Query, Statement, TableObject};

use super::{check_rows_visible, check_visible, last_ident};
use crate::access;
use crate::assign::assign;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::Privilege;
use basin_lake::LakeTable;

pub(super) async fn run(engine: &Engine, insert: Insert) -> Result<QueryOutput> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::Unsupported(
            "INSERT INTO a table function is not supported".into(),
        ));
    };
    if insert.returning.is_some() || insert.on.is_some() {
        return Err(SqlError::Unsupported(
            "INSERT … RETURNING / ON CONFLICT is not supported; use MERGE INTO".into(),
        ));
    }
    let source = insert
        .source
        .ok_or_else(|| SqlError::Invalid("INSERT needs VALUES or a SELECT".into()))?;
    let columns: Vec<String> = insert.columns.iter().map(last_ident).collect();
    insert_into(engine, name, &columns, *source, insert.overwrite).await
}

async fn insert_into(
    engine: &Engine,
    name: &ObjectName,
    columns: &[String],
    source: Query,
    overwrite: bool,
) -> Result<QueryOutput> {
    let table = table_ref_of(name)?;
    let (entry, policy) = access::table_policy(engine, &table).await?;
    super::not_a_view(&entry)?;
    // Checked before the source runs; the write path decides the rest as it commits.
    access::require(&policy, Privilege::Modify, &table)?;
    if columns.is_empty() && !policy.all_columns {
        return Err(SqlError::Invalid(format!(
            "INSERT into '{table}' must name its columns: INSERT INTO {table} (a, b) …"
        )));
    }
    check_visible(&entry, &policy, columns)?;
    let lake = LakeTable::open(&entry.location).await?;
    let schema = lake.schema()?;
    let df = engine.plan(Statement::Query(Box::new(source))).await?;
    let targets: Vec<String> = if columns.is_empty() {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        columns.to_vec()
    };
    let produced = df.schema().fields().len();
    if produced > targets.len() || (!columns.is_empty() && produced != targets.len()) {
        return Err(SqlError::Invalid(format!(
            "INSERT into '{table}' has {produced} value(s) per row but {} target column(s)",
            targets.len()
        )));
    }
    // Values take the types of the columns they go to, as SQL assignment does.
    let mut exprs = Vec::with_capacity(produced);
    for (i, target) in targets.iter().take(produced).enumerate() {
        let field = schema
            .field_with_name(target)
            .map_err(|_| SqlError::NotFound {
                kind: "column",
                name: format!("{table}.{target}"),
                suggestion: basin_core::closest(
                    target,
                    schema.fields().iter().map(|f| f.name().as_str()),
                )
                .map(str::to_string),
            })?;
        let (qualifier, source_field) = df.schema().qualified_field(i);
        let column = DfExpr::Column(DfColumn::new(qualifier.cloned(), source_field.name()));
        let value = if source_field.data_type() == field.data_type() {
            column
        } else {
            assign(column, &format!("{table}.{target}"), field.data_type())
        };
        exprs.push(value.alias(target));
    }
    let df = df.select(exprs)?;
    if policy.row_filter.is_some() {
        let stored = stored_rows(engine, &entry, &schema, df.clone())?;
        check_rows_visible(engine, &policy, &table, stored).await?;
    }
    let rows = df.execute_stream().await?;
    let write = if overwrite {
        Write::Overwrite {
            rows,
            predicate: None,
            load_id: None,
            operation: "insert overwrite",
            transactions: Vec::new(),
        }
    } else {
        Write::Append {
            rows,
            load_id: None,
            operation: "insert",
            within_row_filter: true,
            transaction: None,
        }
    };
    let operation = write.operation();
    let done = engine
        .tables()
        .commit(&engine.actor(), &table, write)
        .await?;
    QueryOutput::write_summary(operation, done.rows, done.version)
}

/// Inserted rows as the table will store them: every column (NULL where the INSERT names
/// none), PII encrypted.
fn stored_rows(
    engine: &Engine,
    entry: &basin_catalog::Table,
    schema: &arrow::datatypes::Schema,
    inserted: DataFrame,
) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        columns.push(
            if inserted.schema().has_column_with_unqualified_name(name) {
                DfExpr::Column(DfColumn::new_unqualified(name))
            } else {
                DfExpr::Literal(ScalarValue::try_from(field.data_type())?, None).alias(name)
            },
        );
    }
    encrypt_pii_columns(engine, entry, inserted.select(columns)?)
}

/// Encrypts the columns that share a name with the target's PII columns, as the write path
/// stores them, so that a row filter can be checked on them.
fn encrypt_pii_columns(
    engine: &Engine,
    entry: &basin_catalog::Table,
    df: DataFrame,
) -> Result<DataFrame> {
    let columns = pii::columns(entry);
    if columns.is_empty() {
        return Ok(df);
    }
    Ok(pii::encrypt_frame(
        df,
        &engine.hub_key(&entry.hub)?,
        &columns,
    )?)
}
