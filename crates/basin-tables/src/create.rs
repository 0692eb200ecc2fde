//! [`Tables::create`]: a new table, the same way from every surface.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::Schema;
use basin_catalog::access::Action;
use basin_catalog::{CatalogError, NewTable};
use basin_core::TableRef;
use basin_lake::{CreateTable, LakeTable, WriteTable};
use datafusion::execution::SendableRecordBatchStream;

use crate::keys::{self, KeyCheck};
use crate::write::columns_of;
use crate::{Actor, Committed, Result, Tables, TablesError};

/// A table to create.
pub struct NewTableSpec {
    pub table: TableRef,
    /// The columns of an empty table (a table created with rows takes theirs).
    pub schema: Option<Schema>,
    pub primary_key: Vec<String>,
    pub partition_columns: Vec<String>,
    pub description: String,
    /// Makes the first write idempotent (loads).
    pub load_id: Option<String>,
    /// Delta `txn` actions committed with the first rows (see `Write::Append`).
    pub transactions: Vec<(String, i64)>,
    /// The operation history shows (`create table`, `create table as select`, `ingest`).
    pub operation: &'static str,
}

impl Tables {
    /// Creates a table in its dataset — empty, or with `rows` as its first version, in one
    /// commit — records it in the catalog and makes the actor its owner (SELECT, MODIFY,
    /// MANAGE on it), whatever the surface. Needs CREATE on the dataset; a dataset the actor
    /// cannot see answers like a missing one. Holders of CREATE learn that a name is taken.
    pub async fn create(
        &self,
        actor: &Actor,
        spec: NewTableSpec,
        rows: Option<SendableRecordBatchStream>,
    ) -> Result<Committed> {
        let t = spec.table.clone();
        let operation = spec.operation;
        let result = self.create_unrecorded(actor, spec, rows).await;
        self.record(actor, "create", &t, operation, &result).await;
        if let Ok(c) = &result {
            self.announce(actor, &t, operation, c);
        }
        result
    }

    /// Whether `actor` may create tables in the dataset of `t`: `Ok` when it may, else the error
    /// to answer with (hidden datasets answer like missing ones).
    pub async fn check_create(&self, actor: &Actor, t: &TableRef) -> Result<()> {
        let dataset_ref = t.dataset_ref();
        let Some(p) = actor.principal.as_ref().filter(|p| !p.is_admin()) else {
            // Administrators see everything: the catalog's error may suggest a name.
            self.catalog.require_dataset(&dataset_ref).await?;
            return Ok(());
        };
        let dataset = self.catalog.dataset(&dataset_ref).await?;
        let snapshot = self.catalog.access_snapshot().await?;
        match dataset {
            Some(d) if snapshot.may(p, Action::CreateTable(&d)) => Ok(()),
            Some(d) if snapshot.dataset_visible(p, &d) => Err(TablesError::Denied(format!(
                "permission denied: you need CREATE on dataset '{dataset_ref}' to create table '{}' in it; ask its owner for a grant",
                t.table
            ))),
            _ => Err(TablesError::NotFound {
                kind: "dataset",
                name: dataset_ref.to_string(),
            }),
        }
    }

    async fn create_unrecorded(
        &self,
        actor: &Actor,
        spec: NewTableSpec,
        rows: Option<SendableRecordBatchStream>,
    ) -> Result<Committed> {
        let t = &spec.table;
        self.check_create(actor, t).await?;
        if self.catalog.table(t).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "table",
                name: t.to_string(),
            }
            .into());
        }
        let columns = match (&rows, &spec.schema) {
            (Some(rows), _) => rows.schema().as_ref().clone(),
            (None, Some(schema)) => schema.clone(),
            (None, None) => Schema::empty(),
        };
        for k in spec.primary_key.iter().chain(&spec.partition_columns) {
            if columns.field_with_name(k).is_err() {
                return Err(TablesError::Invalid(format!(
                    "column '{k}' (a key or partition column) is not a column of '{t}'"
                )));
            }
        }
        let hub = self.catalog.require_hub(t.hub.as_str()).await?;
        let location = format!(
            "{}/{}/{}",
            hub.storage_root.trim_end_matches('/'),
            t.dataset,
            t.table
        );
        clear_orphan(t, &location).await?;
        let committed = match (rows, &spec.schema) {
            (Some(rows), _) => {
                // A dataset tagged pii makes the text columns of its new tables PII.
                let dataset = self.catalog.require_dataset(&t.dataset_ref()).await?;
                let pii = crate::pii::new_text_columns(&dataset.tags, &[], &columns);
                let rows = if pii.is_empty() {
                    rows
                } else {
                    crate::pii::encrypt_stream(rows, self.hub_key(t.hub.as_str())?, pii)
                };
                let violation = Arc::new(Mutex::new(None));
                let rows = match KeyCheck::new(t, &spec.primary_key, &columns)? {
                    Some(check) => {
                        keys::checked(rows, check, None, None, spec.operation, violation.clone())
                    }
                    None => rows,
                };
                let mut w = WriteTable::new_table(&location, spec.partition_columns.clone(), rows)?
                    .with_load_id(spec.load_id.clone())
                    .with_operation(spec.operation);
                for (app_id, version) in spec.transactions.clone() {
                    w = w.with_transaction(app_id, version);
                }
                let w = w.execute().await;
                if let Some(e) = violation.lock().ok().and_then(|mut v| v.take()) {
                    return Err(e);
                }
                let w = w?;
                Committed {
                    version: w.version,
                    rows: w.rows,
                    ..Default::default()
                }
            }
            (None, Some(schema)) => {
                let created = CreateTable::new(&location, schema)
                    .with_partition_columns(spec.partition_columns.clone())
                    .with_name(t.table.as_str())
                    .with_description(spec.description.clone())
                    .execute()
                    .await?;
                Committed {
                    version: created.version(),
                    ..Default::default()
                }
            }
            (None, None) => {
                return Err(TablesError::Invalid(format!(
                    "table '{t}' needs columns or rows to be created"
                )));
            }
        };
        // The entry and the owner's grants in one catalog transaction: if the catalog goes away
        // now, neither is there, and the Delta table just created is an orphan that the next
        // attempt clears (`clear_orphan`).
        let lake = LakeTable::open(&location).await?;
        self.catalog
            .create_owned_table(
                NewTable {
                    table: t.clone(),
                    location,
                    description: spec.description,
                    primary_key: spec.primary_key,
                    partition_columns: spec.partition_columns,
                    columns: columns_of(&lake)?,
                },
                actor.principal.as_ref().map(|p| p.name.as_str()),
            )
            .await?;
        Ok(committed)
    }
}

/// How old an unregistered Delta table at a new table's location must be before a creation
/// removes it. A creation registers its table right after its Delta commit (a few catalog
/// statements); one younger than this may still be on its way and is left alone.
const ORPHAN_AGE: Duration = Duration::from_secs(30);

/// Clears what a creation cut short left at `location` — a Delta table the catalog does not know
/// (the caller has checked), committed but never registered because the catalog went away — so
/// that creating the table again works. A Delta table written less than [`ORPHAN_AGE`] ago may
/// belong to a creation still under way: the answer is then "try again shortly".
async fn clear_orphan(t: &TableRef, location: &str) -> Result<()> {
    let Ok(orphan) = LakeTable::open(location).await else {
        return Ok(()); // nothing there (or nothing readable as a table)
    };
    let written = orphan
        .history(Some(1))
        .await?
        .first()
        .and_then(|c| c.timestamp)
        .unwrap_or_default();
    let age = (chrono::Utc::now() - written).to_std().unwrap_or_default();
    if age < ORPHAN_AGE {
        return Err(TablesError::Creating {
            table: t.to_string(),
            retry_after: (ORPHAN_AGE - age).as_secs() + 1,
        });
    }
    tracing::warn!(table = %t, location, "removing the files of a creation cut short");
    orphan.drop_files().execute().await?;
    Ok(())
}
