//! `ALTER TABLE … ADD COLUMN …`.

use basin_tables::Write;
use datafusion::sql::sqlparser::ast::{AlterTable, AlterTableOperation};

use super::create::sql_types;
use super::ident_name;
use crate::access;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};
use basin_catalog::access::Privilege;

pub(super) async fn run(engine: &Engine, alter: AlterTable) -> Result<QueryOutput> {
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
        let data_type = sql_types(engine, &[(name.clone(), column_def.data_type.to_string())])
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
