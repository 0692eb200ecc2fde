//! `ALTER TABLE … ADD COLUMN … | RENAME COLUMN a TO b | DROP COLUMN c`.

use basin_tables::{ColumnChange, Write};
use datafusion::sql::sqlparser::ast::{AlterTable, AlterTableOperation};

use super::create::sql_types;
use super::{check_visible, ident_name};
use crate::access;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::Privilege;

pub(super) async fn run(engine: &Engine, alter: AlterTable) -> Result<QueryOutput> {
    let table = table_ref_of(&alter.name)?;
    let (entry, policy) = access::table_policy(engine, &table).await?;
    access::require(&policy, Privilege::Manage, &table)?;
    let mut columns = Vec::new();
    let mut changes = Vec::new();
    for operation in alter.operations {
        match operation {
            AlterTableOperation::AddColumn { column_def, .. } => {
                let name = ident_name(&column_def.name);
                basin_core::Name::parse("column", &name)?;
                let data_type =
                    sql_types(engine, &[(name.clone(), column_def.data_type.to_string())])
                        .await?
                        .remove(0)
                        .1;
                columns.push((name, data_type));
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let from = ident_name(&old_column_name);
                let to = ident_name(&new_column_name);
                basin_core::Name::parse("column", &to)?;
                check_visible(&entry, &policy, std::slice::from_ref(&from))?;
                changes.push(ColumnChange::Rename { from, to });
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for c in column_names.iter().map(ident_name) {
                    let exists = entry.columns.iter().any(|e| e.name == c);
                    if if_exists && !exists {
                        continue;
                    }
                    check_visible(&entry, &policy, std::slice::from_ref(&c))?;
                    changes.push(ColumnChange::Drop(c));
                }
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "ALTER TABLE supports ADD COLUMN, RENAME COLUMN and DROP COLUMN, not '{other}'"
                )));
            }
        }
    }
    if !columns.is_empty() && !changes.is_empty() {
        return Err(SqlError::Unsupported(
            "ALTER TABLE cannot add columns and rename or drop columns in one statement; run them one after the other".into(),
        ));
    }
    let actor = engine.actor();
    if !columns.is_empty() {
        let done = engine
            .tables()
            .commit(&actor, &table, Write::AddColumns { columns })
            .await?;
        return QueryOutput::write_summary("alter table", 0, done.version);
    }
    // Each rename or drop rewrites the table in a commit of its own.
    let mut version = -1;
    for change in changes {
        version = engine
            .tables()
            .commit(&actor, &table, Write::AlterColumn(change))
            .await?
            .version;
    }
    QueryOutput::write_summary("alter table", 0, version)
}
