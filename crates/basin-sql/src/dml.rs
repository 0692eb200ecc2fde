//! Statements that change tables, each routed to one basin-lake operation (one Delta commit),
//! with the catalog kept in step.

use std::ops::ControlFlow;

use basin_catalog::{Column, NewTable};
use basin_core::TableRef;
use basin_lake::{AddColumns, CreateTable, LakeTable, MergeClause, WriteMode, WriteTable};
use datafusion::common::{Column as DfColumn, ScalarValue};
use datafusion::prelude::{DataFrame, Expr as DfExpr, cast};
use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, Assignment, AssignmentTarget, ColumnOption, CreateTable as SqlCreateTable,
    Expr, FromTable, Ident, MergeAction, MergeClauseKind, MergeInsertKind, ObjectName, Query,
    Statement, TableConstraint, TableFactor, TableObject, TableWithJoins, VisitMut, VisitorMut,
};

use crate::access;
use crate::engine::{Engine, QueryOutput, parse};
use crate::principal_sql::bind_principal;
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::{Grant, Privilege, Securable, TablePolicy, is_pii};

pub(crate) async fn run(engine: &Engine, statement: Statement) -> Result<QueryOutput> {
    match statement {
        Statement::Insert(insert) => {
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
        Statement::Update(update) => {
            if update.from.is_some() || update.returning.is_some() {
                return Err(SqlError::Unsupported(
                    "UPDATE … FROM / RETURNING is not supported; use MERGE INTO".into(),
                ));
            }
            let (entry, policy) = target(engine, &update.table).await?;
            let lake = LakeTable::open(&entry.location).await?;
            let mut op = lake.update();
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
                let updated = updated_rows(engine, &lake, predicate.as_deref(), &set).await?;
                check_rows_visible(engine, &policy, &entry.table_ref(), updated).await?;
            }
            if let Some(p) = predicate {
                op = op.with_predicate(p);
            }
            for (column, value) in set {
                op = op.set(column, value);
            }
            let (version, rows) = op.execute().await?;
            QueryOutput::write_summary("update", rows, version)
        }
        Statement::Delete(delete) => {
            if delete.using.is_some() || delete.returning.is_some() || delete.tables.len() > 1 {
                return Err(SqlError::Unsupported(
                    "DELETE … USING / RETURNING is not supported; use MERGE INTO".into(),
                ));
            }
            let from = match &delete.from {
                FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
            };
            let [from] = from.as_slice() else {
                return Err(SqlError::Unsupported(
                    "DELETE from several tables is not supported".into(),
                ));
            };
            let (entry, policy) = target(engine, from).await?;
            let mut op = LakeTable::open(&entry.location).await?.delete();
            if let Some(p) = &delete.selection {
                check_usable(&entry, &policy, &columns_in(p))?;
            }
            if let Some(p) = governed_predicate(engine, &policy, delete.selection)? {
                op = op.with_predicate(p);
            }
            let (version, rows) = op.execute().await?;
            QueryOutput::write_summary("delete", rows, version)
        }
        Statement::Merge(merge) => merge_into(engine, merge).await,
        Statement::CreateTable(create) => create_table(engine, create).await,
        Statement::AlterTable(alter) => {
            let table = table_ref_of(&alter.name)?;
            let (entry, policy) = access::table_policy(engine, &table).await?;
            access::require(&policy, Privilege::Manage, &table)?;
            let mut op: AddColumns = LakeTable::open(&entry.location).await?.add_columns();
            for operation in alter.operations {
                let AlterTableOperation::AddColumn { column_def, .. } = operation else {
                    return Err(SqlError::Unsupported(format!(
                        "ALTER TABLE supports ADD COLUMN only, not '{operation}'"
                    )));
                };
                let name = ident_name(&column_def.name);
                basin_core::Name::parse("column", &name)?;
                let data_type =
                    sql_types(engine, &[(name.clone(), column_def.data_type.to_string())])
                        .await?
                        .remove(0)
                        .1;
                op = op.column(name, data_type);
            }
            let version = op.execute().await?;
            sync_columns(engine, &table, &entry.location).await?;
            QueryOutput::write_summary("alter table", 0, version)
        }
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

async fn insert_into(
    engine: &Engine,
    name: &ObjectName,
    columns: &[String],
    source: Query,
    overwrite: bool,
) -> Result<QueryOutput> {
    let table = table_ref_of(name)?;
    let (entry, policy) = access::table_policy(engine, &table).await?;
    access::require(&policy, Privilege::Modify, &table)?;
    if overwrite && !policy.sees_everything() {
        return Err(SqlError::Denied(format!(
            "permission denied: INSERT OVERWRITE replaces every row of '{table}' and needs a view of all its rows and columns in clear; use INSERT, UPDATE or DELETE"
        )));
    }
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
        exprs.push(cast(column, field.data_type().clone()).alias(target));
    }
    let df = df.select(exprs)?;
    if policy.row_filter.is_some() {
        let stored = stored_rows(engine, &entry, &schema, df.clone())?;
        check_rows_visible(engine, &policy, &table, stored).await?;
    }
    let mode = if overwrite {
        WriteMode::Overwrite(None)
    } else {
        WriteMode::Append
    };
    let input = encrypt_pii(engine, &entry, df.execute_stream().await?)?;
    let outcome = lake
        .write(input)
        .with_mode(mode)
        .with_operation(if overwrite {
            "insert overwrite"
        } else {
            "insert"
        })
        .execute()
        .await?;
    QueryOutput::write_summary(
        if overwrite {
            "insert overwrite"
        } else {
            "insert"
        },
        outcome.rows,
        outcome.version,
    )
}

async fn merge_into(
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
    access::require(&policy, Privilege::Modify, &table)?;
    if !policy.sees_everything() {
        return Err(SqlError::Denied(format!(
            "permission denied: MERGE INTO '{table}' needs a view of all its rows and columns in clear; use INSERT, UPDATE or DELETE"
        )));
    }
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
    let source_df: DataFrame = encrypt_pii_columns(
        engine,
        &entry,
        engine.plan(parse(&source_sql)?.remove(0)).await?,
    )?;
    let table_columns: Vec<String> = lake
        .schema()?
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut op = lake
        .merge(source_df, merge.on.to_string())
        .with_aliases(&target_alias, &source_alias);
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
        op = op.with_clause(lake_clause);
    }
    let outcome = op.execute().await?;
    sync_columns(engine, &table, &entry.location).await?;
    QueryOutput::write_summary(
        "merge",
        outcome.inserted + outcome.updated + outcome.deleted,
        outcome.version,
    )
}

async fn create_table(engine: &Engine, create: SqlCreateTable) -> Result<QueryOutput> {
    if create.external || create.temporary || create.or_replace {
        return Err(SqlError::Unsupported(
            "CREATE EXTERNAL / TEMPORARY / OR REPLACE TABLE is not supported; use CREATE TABLE [IF NOT EXISTS] … [AS SELECT …]".into(),
        ));
    }
    let table = table_ref_of(&create.name)?;
    if engine.catalog().table(&table).await?.is_some() {
        if create.if_not_exists {
            return QueryOutput::write_summary("create table", 0, -1);
        }
        return Err(basin_catalog::CatalogError::AlreadyExists {
            kind: "table",
            name: table.to_string(),
        }
        .into());
    }
    let dataset = engine
        .catalog()
        .require_dataset(&table.dataset_ref())
        .await?;
    if let Some(p) = engine.principal() {
        let snapshot = engine.catalog().access_snapshot().await?;
        if !snapshot.allows_on_dataset(p, Privilege::Create, &dataset) {
            return Err(SqlError::Denied(format!(
                "permission denied: you need CREATE on dataset '{}' to create tables in it",
                table.dataset_ref()
            )));
        }
    }
    let hub = engine.catalog().require_hub(table.hub.as_str()).await?;
    let location = format!(
        "{}/{}/{}",
        hub.storage_root.trim_end_matches('/'),
        table.dataset,
        table.table
    );
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
    let (version, rows) = match create.query {
        Some(query) => {
            let df = engine.plan(Statement::Query(query)).await?;
            for f in df.schema().fields() {
                basin_core::Name::parse("column", f.name())?;
            }
            let outcome = WriteTable::new_table(&location, vec![], df.execute_stream().await?)?
                .with_operation("create table as select")
                .execute()
                .await?;
            (outcome.version, outcome.rows)
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
                    primary_key.push(name.clone());
                }
                defs.push((name, c.data_type.to_string()));
            }
            let fields: Vec<arrow::datatypes::Field> = sql_types(engine, &defs)
                .await?
                .into_iter()
                .map(|(n, t)| arrow::datatypes::Field::new(n, t, true))
                .collect();
            let created = CreateTable::new(&location, &arrow::datatypes::Schema::new(fields))
                .with_name(table.table.as_str())
                .execute()
                .await?;
            (created.version(), 0)
        }
    };
    let lake = LakeTable::open(&location).await?;
    engine
        .catalog()
        .create_table(NewTable {
            table: table.clone(),
            location,
            description: String::new(),
            primary_key,
            partition_columns: vec![],
            columns: columns_of(&lake)?,
        })
        .await?;
    if let Some(p) = engine.principal() {
        for privilege in [Privilege::Select, Privilege::Modify, Privilege::Manage] {
            engine
                .catalog()
                .grant(&Grant {
                    grantee: p.name.clone(),
                    privilege,
                    object: Securable::table(&table),
                    column: None,
                    granted_by: p.name.clone(),
                    granted_at: String::new(),
                })
                .await?;
        }
    }
    QueryOutput::write_summary("create table", rows, version)
}

/// Arrow types for SQL type names, as DataFusion maps them (`SELECT CAST(NULL AS <type>)`).
async fn sql_types(
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

fn columns_of(lake: &LakeTable) -> Result<Vec<Column>> {
    Ok(basin_lake::types::describe(lake.schema()?.as_ref())
        .into_iter()
        .map(Column::from)
        .collect())
}

async fn sync_columns(engine: &Engine, table: &TableRef, location: &str) -> Result<()> {
    let lake = LakeTable::open(location).await?;
    engine
        .catalog()
        .sync_columns(table, &columns_of(&lake)?)
        .await?;
    Ok(())
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
    Ok((entry, policy))
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
    datafusion::sql::sqlparser::parser::Parser::new(&crate::dialect::BasinDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Parse(e.to_string()))
}

/// The names of a table's PII columns.
fn pii_columns(entry: &basin_catalog::Table) -> Vec<String> {
    entry
        .columns
        .iter()
        .filter(|c| is_pii(&c.tags))
        .map(|c| c.name.clone())
        .collect()
}

/// Encrypts the PII columns of rows on their way into a table.
fn encrypt_pii(
    engine: &Engine,
    entry: &basin_catalog::Table,
    input: datafusion::execution::SendableRecordBatchStream,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    let columns = pii_columns(entry);
    if columns.is_empty() {
        return Ok(input);
    }
    let key = engine.hub_key(&entry.hub)?;
    Ok(basin_lake::crypto::encrypt_stream(input, key, columns))
}

/// Encrypts a MERGE source's columns that share a name with the target's PII columns, so that
/// conditions compare ciphertexts (encryption is deterministic).
fn encrypt_pii_columns(
    engine: &Engine,
    entry: &basin_catalog::Table,
    df: DataFrame,
) -> Result<DataFrame> {
    let columns = pii_columns(entry);
    if columns.is_empty() {
        return Ok(df);
    }
    let udf = basin_lake::crypto::encrypt_udf(engine.hub_key(&entry.hub)?);
    let exprs: Vec<DfExpr> = df
        .schema()
        .iter()
        .map(|(q, f)| {
            let c = DfExpr::Column(DfColumn::new(q.cloned(), f.name()));
            if columns.contains(f.name()) {
                udf.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    Ok(df.select(exprs)?)
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
