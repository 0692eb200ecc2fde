//! `DELETE FROM … WHERE …`, confined to the rows the principal may see.

use basin_tables::Write;
use datafusion::sql::sqlparser::ast::{Delete, FromTable};

use super::{check_usable, columns_in, governed_predicate, target};
use crate::engine::{Engine, QueryOutput};
use crate::{Result, SqlError};

pub(super) async fn run(engine: &Engine, delete: Delete) -> Result<QueryOutput> {
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
