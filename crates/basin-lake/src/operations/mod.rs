//! Lake operations, one per module, each a builder that ends in exactly one Delta commit.

pub mod add_columns;
pub mod create;
pub mod delete;
pub mod merge;
pub mod restore;
pub mod update;
pub mod write;

use datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;

use crate::table::{LOAD_ID_KEY, LakeTable, load_app_id};

/// Commit properties that record Basin's operation and, for a load, its id as a Delta `txn`
/// action (so a repeated load is recognised from the table's own log, atomically with the data).
pub(crate) fn commit_properties(operation: &str, load_id: Option<&str>) -> CommitProperties {
    let mut metadata = vec![(
        "basin.operation".to_string(),
        serde_json::Value::from(operation),
    )];
    let mut props = CommitProperties::default();
    if let Some(id) = load_id {
        metadata.push((LOAD_ID_KEY.to_string(), serde_json::Value::from(id)));
        props = props.with_application_transaction(Transaction::new(load_app_id(id), 1));
    }
    props.with_metadata(metadata)
}

/// A DataFusion session (with delta-rs's planner) able to read `table`.
pub(crate) fn session_for(table: &LakeTable) -> SessionContext {
    let ctx = deltalake::delta_datafusion::create_session().into_inner();
    // Registration only fails for an unknown URL scheme, which opening the table already ruled out.
    let _ = table.delta.update_datafusion_session(&ctx.state());
    ctx
}
