//! `DROP TABLE | VIEW [IF EXISTS] …`.

use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType};

use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};

pub(super) async fn run(
    engine: &Engine,
    object_type: ObjectType,
    if_exists: bool,
    names: Vec<ObjectName>,
) -> Result<QueryOutput> {
    let view = match object_type {
        ObjectType::Table => false,
        ObjectType::View => true,
        other => {
            return Err(SqlError::Unsupported(format!(
                "DROP {other} is not supported; Basin drops tables and views (DROP TABLE, DROP VIEW)"
            )));
        }
    };
    let operation = if view { "drop view" } else { "drop table" };
    let mut dropped = 0;
    for name in &names {
        let table = table_ref_of(name)?;
        // A table the principal cannot see answers like a missing one, IF EXISTS included.
        match engine.tables().drop(&engine.actor(), &table, view).await {
            Ok(_) => dropped += 1,
            Err(basin_tables::TablesError::NotFound { kind: "table", .. }) if if_exists => {}
            Err(basin_tables::TablesError::NotFound { kind: "table", .. }) => {
                return Err(crate::access::table_policy(engine, &table)
                    .await
                    .err()
                    .unwrap_or_else(|| SqlError::NotFound {
                        kind: "table",
                        name: table.to_string(),
                        suggestion: None,
                    }));
            }
            Err(e) => return Err(e.into()),
        }
    }
    QueryOutput::write_summary(operation, dropped, -1)
}
