//! Lake operations, one per module, each a builder that ends in exactly one Delta commit.

pub mod add_columns;
pub mod create;
pub mod delete;
pub mod drop;
pub mod merge;
pub mod optimize;
pub mod restore;
pub mod update;
pub mod vacuum;
pub mod write;

use datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;

use crate::table::{LOAD_ID_KEY, LakeTable, MARK_KEY, load_app_id};

tokio::task_local! {
    /// The mark of the commits made in this scope, see [`marked`].
    static COMMIT_MARK: String;
}

/// Runs `write` with its commit marked `mark` (in the commit's info), so that
/// [`LakeTable::find_marked`] tells whether it landed when `write` reports a failure: delta-rs
/// reports a failure of its work after the commit (reloading the table, a checkpoint) as the
/// write's own, though the commit is in the log.
pub async fn marked<F: std::future::Future>(mark: String, write: F) -> F::Output {
    COMMIT_MARK.scope(mark, write).await
}

/// Commit properties that record Basin's operation, the scope's mark (see [`marked`]) and, for a
/// load, its id as a Delta `txn` action (so a repeated load is recognised from the table's own
/// log, atomically with the data).
pub(crate) fn commit_properties(operation: &str, load_id: Option<&str>) -> CommitProperties {
    let mut metadata = vec![(
        "basin.operation".to_string(),
        serde_json::Value::from(operation),
    )];
    if let Ok(mark) = COMMIT_MARK.try_with(String::clone) {
        metadata.push((MARK_KEY.to_string(), serde_json::Value::from(mark)));
    }
    let mut props = CommitProperties::default();
    if let Some(id) = load_id {
        metadata.push((LOAD_ID_KEY.to_string(), serde_json::Value::from(id)));
        props = props.with_application_transaction(Transaction::new(load_app_id(id), 1));
    }
    props.with_metadata(metadata)
}

/// The properties of every new table: its change data feed is recorded, so that `UPDATE`,
/// `DELETE` and `MERGE` write the rows they change and readers of changes (incremental models,
/// `table_changes`) read those rows rather than whole rewritten files.
pub(crate) const NEW_TABLE_PROPERTIES: [(&str, Option<&str>); 1] =
    [("delta.enableChangeDataFeed", Some("true"))];

/// A DataFusion session (with delta-rs's planner) able to read `table`.
pub(crate) fn session_for(table: &LakeTable) -> SessionContext {
    let ctx = deltalake::delta_datafusion::create_session().into_inner();
    let state = ctx.state();
    let rules = crate::with_multiset_rule(&state.analyzer().rules);
    let ctx = datafusion::prelude::SessionContext::new_with_state(
        datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_analyzer_rules(rules)
            .build(),
    );
    // Registration only fails for an unknown URL scheme, which opening the table already ruled out.
    let _ = table.delta.update_datafusion_session(&ctx.state());
    ctx
}

/// Checks what a new table at `location` with `schema` needs, creates its local directory, and
/// returns its URL.
pub(crate) fn prepare_new_table(
    location: &str,
    schema: &arrow::datatypes::Schema,
    partition_columns: &[String],
) -> crate::Result<url::Url> {
    use crate::LakeError;
    for p in partition_columns {
        if schema.field_with_name(p).is_err() {
            return Err(LakeError::UnknownColumn {
                column: p.clone(),
                context: "the data (partition columns must be columns of the data)".into(),
                suggestion: basin_core::closest(
                    p,
                    schema.fields().iter().map(|f| f.name().as_str()),
                )
                .map(str::to_string),
            });
        }
    }
    if !partition_columns.is_empty() && partition_columns.len() == schema.fields().len() {
        return Err(LakeError::InvalidInput(
            "every column is a partition column; a table needs at least one column that is not"
                .into(),
        ));
    }
    let url = crate::location_url(location)?;
    if url.scheme() == "file"
        && let Ok(path) = url.to_file_path()
    {
        std::fs::create_dir_all(&path).map_err(|e| {
            LakeError::InvalidInput(format!(
                "cannot create table directory {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(url)
}
