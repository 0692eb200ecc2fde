//! `DROP TABLE [IF EXISTS] …`.

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
    if object_type != ObjectType::Table {
        return Err(SqlError::Unsupported(format!(
            "DROP {object_type} is not supported; Basin drops tables (DROP TABLE)"
        )));
    }
    let mut dropped = 0;
    for name in &names {
        let table = table_ref_of(name)?;
        // A table the principal cannot see answers like a missing one, IF EXISTS included.
        match engine.tables().drop(&engine.actor(), &table).await {
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
    QueryOutput::write_summary("drop table", dropped, -1)
}
