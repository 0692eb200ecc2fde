//! `TRUNCATE [TABLE] …`: every row removed in a new version (time travel still reads the old).

use basin_tables::Write;
use datafusion::sql::sqlparser::ast::Truncate;

use crate::access;
use crate::engine::{Engine, QueryOutput};
use crate::resolve::table_ref_of;
use crate::{Result, SqlError};

pub(super) async fn run(engine: &Engine, truncate: Truncate) -> Result<QueryOutput> {
    if truncate.partitions.is_some() {
        return Err(SqlError::Unsupported(
            "TRUNCATE … PARTITION is not supported; use DELETE FROM … WHERE".into(),
        ));
    }
    let mut rows = 0;
    let mut version = -1;
    for target in &truncate.table_names {
        let table = table_ref_of(&target.name)?;
        match access::table_policy(engine, &table).await {
            Err(SqlError::NotFound { kind: "table", .. }) if truncate.if_exists => continue,
            other => other?,
        };
        // The write path needs MODIFY and a view of every row and column in clear.
        let done = engine
            .tables()
            .commit(&engine.actor(), &table, Write::Truncate)
            .await?;
        rows += done.rows;
        version = done.version;
    }
    QueryOutput::write_summary("truncate", rows, version)
}
