//! Statements that change tables: each is checked against the principal's policy (visible
//! columns, rows inside its row filter) and handed to the write path as one [`Write`].

use std::ops::ControlFlow;

use basin_core::TableRef;
use basin_lake::{LakeTable, MergeClause};
use basin_tables::pii::{self, Direction};
use basin_tables::{NewTableSpec, Write};
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
use basin_catalog::access::{Privilege, TablePolicy, is_pii};

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
            if let Some(p) = &delete.selection {
                check_usable(&entry, &policy, &columns_in(p))?;
            }
            let predicate = governed_predicate(engine, &policy, delete.selection)?;
            let done = engine
                .tables()
                .commit(
                    &engine.actor(),
                    &entry.table_ref(),
                    Write::Delete { predicate },
                )
                .await?;
            QueryOutput::write_summary("delete", done.rows, done.version)
        }
        Statement::Merge(merge) => merge_into(engine, merge).await,
        Statement::CreateTable(create) => create_table(engine, create).await,
        Statement::AlterTable(alter) => {
            let table = table_ref_of(&alter.name)?;
            let (_, policy) = access::table_policy(engine, &table).await?;
            access::require(&policy, Privilege::Manage, &table)?;
            let mut columns = Vec::new();
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
                columns.push((name, data_type));
            }
            let done = engine
                .tables()
                .commit(&engine.actor(), &table, Write::AddColumns { columns })
                .await?;
            QueryOutput::write_summary("alter table", 0, done.version)
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
    let rows = df.execute_stream().await?;
    let write = if overwrite {
        Write::Overwrite {
            rows,
            predicate: None,
            load_id: None,
            operation: "insert overwrite",
        }
    } else {
        Write::Append {
            rows,
            load_id: None,
            operation: "insert",
            within_row_filter: true,
        }
    };
    let operation = write.operation();
    let done = engine
        .tables()
        .commit(&engine.actor(), &table, write)
        .await?;
    QueryOutput::write_summary(operation, done.rows, done.version)
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

async fn create_table(engine: &Engine, create: SqlCreateTable) -> Result<QueryOutput> {
    if create.external || create.temporary || create.or_replace {
        return Err(SqlError::Unsupported(
            "CREATE EXTERNAL / TEMPORARY / OR REPLACE TABLE is not supported; use CREATE TABLE [IF NOT EXISTS] … [AS SELECT …]".into(),
        ));
    }
    let table = table_ref_of(&create.name)?;
    let actor = engine.actor();
    engine.tables().check_create(&actor, &table).await?;
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
        partition_columns: vec![],
        description: String::new(),
        load_id: None,
        operation: "create table",
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
    let done = engine.tables().create(&actor, spec, rows).await?;
    QueryOutput::write_summary("create table", done.rows, done.version)
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

/// Encrypts the columns that share a name with the target's PII columns, as the write path
/// stores them (encryption is deterministic), so that a row filter can be checked on them.
fn encrypt_pii_columns(
    engine: &Engine,
    entry: &basin_catalog::Table,
    df: DataFrame,
) -> Result<DataFrame> {
    let columns = pii_columns(entry);
    if columns.is_empty() {
        return Ok(df);
    }
    let udf = pii::udf(engine.hub_key(&entry.hub)?, Direction::Encrypt);
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
