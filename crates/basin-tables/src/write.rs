//! [`Tables::commit`]: decide → encrypt PII → Delta operation → sync catalog → audit → event.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use basin_catalog::access::{Action, Privilege};
use basin_catalog::{Column, Table};
use basin_core::TableRef;
use basin_lake::evolution::Evolution;
use basin_lake::{LakeError, LakeTable, MergeClause, MergeTable, WriteMode};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, Expr};
use futures::StreamExt;
use serde_json::json;

use crate::keys;
use crate::pii::{self, Direction};
use crate::sequencer::{self, Answer};
use crate::{Actor, CommitEvent, Result, Tables, TablesError};

/// One write to one table: what it does, not how it is committed.
pub enum Write {
    /// Rows added (SQL `INSERT`, loads, uploads). `within_row_filter`: the caller has checked
    /// every row against the actor's row filter (SQL does, `WITH CHECK`); rows that were not
    /// checked may only go into a table the actor sees without a row filter.
    Append {
        rows: SendableRecordBatchStream,
        load_id: Option<String>,
        operation: &'static str,
        within_row_filter: bool,
        /// A Delta `txn` action `(app id, version)` committed with the rows (a Kafka source's
        /// offset of a partition), so that the table and that position never disagree.
        transaction: Option<(String, i64)>,
    },
    /// Rows replacing the whole table, or the rows matching `predicate`.
    Overwrite {
        rows: SendableRecordBatchStream,
        predicate: Option<String>,
        load_id: Option<String>,
        operation: &'static str,
        /// Delta `txn` actions committed with the rows (how far an incremental model has read
        /// each table it reads).
        transactions: Vec<(String, i64)>,
    },
    /// Rows merged by key: new keys inserted, existing keys updated with every source column.
    Upsert {
        source: DataFrame,
        key: Vec<String>,
        load_id: Option<String>,
    },
    /// `UPDATE … SET column = value … WHERE predicate` (SQL text over the table's columns,
    /// already confined to the actor's rows).
    Update {
        predicate: Option<String>,
        set: Vec<(String, String)>,
    },
    /// `DELETE … WHERE predicate` (already confined to the actor's rows).
    Delete { predicate: Option<String> },
    /// `MERGE INTO`: the source's columns that share a name with a PII column are encrypted, so
    /// conditions compare tokens.
    Merge {
        source: DataFrame,
        on: String,
        target_alias: String,
        source_alias: String,
        clauses: Vec<MergeClause>,
    },
    /// The table as it was at `version`.
    Restore { version: i64 },
    /// New columns (NULL in existing rows).
    AddColumns { columns: Vec<(String, DataType)> },
    /// Every row removed (`TRUNCATE`): a new version, so time travel still reads the old rows.
    Truncate,
    /// The table's rows and schema replaced in one commit (`CREATE OR REPLACE TABLE`): columns
    /// named like a PII column are encrypted; grants, policies and tags stay with the table.
    Replace {
        rows: SendableRecordBatchStream,
        primary_key: Vec<String>,
        partition_columns: Vec<String>,
        /// Delta `txn` actions committed with the rows.
        transactions: Vec<(String, i64)>,
        /// What history shows (`replace table`, `model`).
        operation: &'static str,
    },
    /// A column renamed or dropped, as one commit that rewrites every row with the new schema
    /// (delta-rs cannot write column mapping): keys, grants, masks, row filters and tags follow
    /// a rename; a drop of a column they need is refused.
    AlterColumn(ColumnChange),
    /// Encrypts PII columns in place: `newly_pii` columns were just tagged (every value is
    /// encrypted); the other PII columns move to the hub key's current version (rotation).
    Protect { newly_pii: Vec<String> },
    /// Small files compacted into files of about `target_size` bytes (Z-ordered by `zorder`
    /// when given); no row changes.
    Optimize {
        target_size: Option<u64>,
        zorder: Vec<String>,
    },
    /// Files and log no version within `retention` needs removed from storage.
    Vacuum {
        retention: Option<std::time::Duration>,
    },
}

/// The commit of a compaction or vacuum; `skipped` (no event) when it changed no file.
fn maintained(before: &LakeTable, m: basin_lake::Maintenance) -> Committed {
    Committed {
        version: m.version,
        skipped: m.version == before.version() && m.files_deleted == 0,
        maintenance: Some(m),
        ..Default::default()
    }
}

/// A change of one column of a table.
#[derive(Debug, Clone)]
pub enum ColumnChange {
    Rename { from: String, to: String },
    Drop(String),
}

/// What a write needs of the actor's policy on the table.
#[derive(Debug, Clone)]
pub struct WriteNeeds {
    pub operation: &'static str,
    pub privilege: Privilege,
    /// A view of every row and column in clear (writes that may replace or match rows the actor
    /// cannot see).
    pub full_view: bool,
    /// Rows that nobody checked against the actor's row filter (files): they may only go where
    /// the actor sees every row and column.
    pub rows_unchecked: bool,
    /// Only administrators may make it.
    pub administer: bool,
    /// The columns the write puts values into.
    pub columns: Vec<String>,
}

/// What a commit did.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The version the commit made (the current version when nothing was written).
    pub version: i64,
    /// Rows written, changed or removed.
    pub rows: u64,
    /// Counts of a merge or upsert (inserted, updated, deleted).
    pub merged: Option<(u64, u64, u64)>,
    /// True when the load id had been committed before, so nothing was written.
    pub skipped: bool,
    /// How the table's schema changed.
    pub evolution: Option<Evolution>,
    /// What a compaction or vacuum did to the table's files.
    pub maintenance: Option<basin_lake::Maintenance>,
}

impl Write {
    /// The name of the operation, as history and the audit log show it.
    pub fn operation(&self) -> &'static str {
        match self {
            Write::Append { operation, .. } | Write::Overwrite { operation, .. } => operation,
            Write::Upsert { .. } => "upsert",
            Write::Update { .. } => "update",
            Write::Delete { .. } => "delete",
            Write::Merge { .. } => "merge into",
            Write::Restore { .. } => "restore",
            Write::AddColumns { .. } => "add columns",
            Write::Truncate => "truncate",
            Write::Replace { operation, .. } => operation,
            Write::AlterColumn(ColumnChange::Rename { .. }) => "rename column",
            Write::AlterColumn(ColumnChange::Drop(_)) => "drop column",
            Write::Protect { .. } => "encrypt pii",
            Write::Optimize { .. } => "optimize",
            Write::Vacuum { .. } => "vacuum",
        }
    }

    /// Whether the write is one commit and nothing else (so that finding its commit in the log
    /// means it happened whole); a restore that encrypts again, a replacement that reshapes the
    /// catalog entry or a column change is more.
    fn is_one_commit(&self) -> bool {
        !matches!(
            self,
            Write::Restore { .. }
                | Write::Replace { .. }
                | Write::AlterColumn(_)
                | Write::Protect { .. }
        )
    }

    /// The same write again, for a retry on a newer snapshot: `None` for writes whose rows
    /// come as a stream, which can be read only once (delta-rs itself rebases plain appends).
    fn replay(&self) -> Option<Write> {
        Some(match self {
            Write::Append { .. } | Write::Overwrite { .. } | Write::Replace { .. } => return None,
            Write::Upsert {
                source,
                key,
                load_id,
            } => Write::Upsert {
                source: source.clone(),
                key: key.clone(),
                load_id: load_id.clone(),
            },
            Write::Update { predicate, set } => Write::Update {
                predicate: predicate.clone(),
                set: set.clone(),
            },
            Write::Delete { predicate } => Write::Delete {
                predicate: predicate.clone(),
            },
            Write::Merge {
                source,
                on,
                target_alias,
                source_alias,
                clauses,
            } => Write::Merge {
                source: source.clone(),
                on: on.clone(),
                target_alias: target_alias.clone(),
                source_alias: source_alias.clone(),
                clauses: clauses.clone(),
            },
            Write::Restore { version } => Write::Restore { version: *version },
            Write::AddColumns { columns } => Write::AddColumns {
                columns: columns.clone(),
            },
            Write::Truncate => Write::Truncate,
            Write::AlterColumn(change) => Write::AlterColumn(change.clone()),
            Write::Protect { newly_pii } => Write::Protect {
                newly_pii: newly_pii.clone(),
            },
            Write::Optimize {
                target_size,
                zorder,
            } => Write::Optimize {
                target_size: *target_size,
                zorder: zorder.clone(),
            },
            Write::Vacuum { retention } => Write::Vacuum {
                retention: *retention,
            },
        })
    }

    /// What the write needs of the actor's policy.
    pub fn needs(&self) -> WriteNeeds {
        let (privilege, full_view) = match self {
            Write::Append { .. } | Write::Update { .. } | Write::Delete { .. } => {
                (Privilege::Modify, false)
            }
            Write::Overwrite { .. }
            | Write::Upsert { .. }
            | Write::Merge { .. }
            | Write::Truncate => (Privilege::Modify, true),
            Write::Restore { .. } | Write::Replace { .. } | Write::AlterColumn(_) => {
                (Privilege::Manage, true)
            }
            Write::AddColumns { .. }
            | Write::Protect { .. }
            | Write::Optimize { .. }
            | Write::Vacuum { .. } => (Privilege::Manage, false),
        };
        WriteNeeds {
            operation: self.operation(),
            privilege,
            full_view,
            rows_unchecked: matches!(
                self,
                Write::Append {
                    within_row_filter: false,
                    ..
                }
            ),
            administer: matches!(self, Write::Protect { .. }),
            columns: self.columns_written(),
        }
    }

    /// The columns the write puts values into.
    fn columns_written(&self) -> Vec<String> {
        let names = |schema: &datafusion::common::DFSchema| -> Vec<String> {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };
        match self {
            Write::Append { rows, .. } | Write::Overwrite { rows, .. } => rows
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            Write::Upsert { source, .. } => names(source.schema()),
            Write::Update { set, .. } => set.iter().map(|(c, _)| c.clone()).collect(),
            Write::Merge {
                source, clauses, ..
            } => {
                let mut columns = Vec::new();
                for clause in clauses {
                    match clause {
                        MergeClause::MatchedUpdate { set, .. }
                        | MergeClause::NotMatchedBySourceUpdate { set, .. }
                        | MergeClause::NotMatchedInsert { values: set, .. } => {
                            if set.is_empty() {
                                // UPDATE SET * / INSERT *: every column of the source.
                                columns.extend(names(source.schema()));
                            } else {
                                columns.extend(set.iter().map(|(c, _)| c.clone()));
                            }
                        }
                        _ => {}
                    }
                }
                columns.sort();
                columns.dedup();
                columns
            }
            // A replacement or column change names new columns; what it needs is a full view
            // of the table (and MANAGE), checked by `needs`.
            _ => Vec::new(),
        }
    }
}

impl Tables {
    /// Makes one write on one table for `actor`, as one Delta commit (which small appends
    /// arriving together share, see [`crate::sequencer`]), and records it: the
    /// catalog's columns follow the table's schema, the audit log gets a row (also for a refused
    /// or failed write), and a [`CommitEvent`] goes out on the bus. A refused or failed write
    /// leaves the table as it was.
    pub async fn commit(&self, actor: &Actor, t: &TableRef, write: Write) -> Result<Committed> {
        let started = std::time::Instant::now();
        let operation = write.operation();
        // Boxed: the state of every kind of write is large, and callers' stacks are not.
        let result = Box::pin(self.commit_unrecorded(actor, t, write))
            .await
            .map_err(|e| e.about(t));
        self.record(actor, "commit", t, operation, &result).await;
        crate::log::commit(actor, t, operation, started, &result);
        if let Ok(c) = &result
            && !c.skipped
        {
            self.announce(actor, t, operation, c);
        }
        result
    }

    /// Takes the write's turn on the table (see [`crate::sequencer`]): a small append joins
    /// the table's next group commit; every other write runs alone on the latest snapshot and,
    /// when it loses to another process, runs again on the new one (as PostgreSQL's READ
    /// COMMITTED re-evaluates a row) when it can be replayed.
    async fn commit_unrecorded(
        &self,
        actor: &Actor,
        t: &TableRef,
        write: Write,
    ) -> Result<Committed> {
        // A refused write does not wait for a turn.
        let entry = self.entry(t).await?;
        self.decide(actor, &entry, &write.needs()).await?;
        not_a_view(&entry)?;
        // Every write but an append sees the streamed records acknowledged before it.
        if !matches!(write, Write::Append { .. }) {
            self.flush_stream(t).await?;
        }
        let mut write = match write {
            Write::Append {
                rows,
                load_id: None,
                operation,
                within_row_filter,
                transaction: None,
            } => match buffer(rows, &entry.location).await? {
                Buffered::Whole(schema, batches) => {
                    let job = self.pending(entry, schema, batches, operation)?;
                    return Box::pin(self.append_grouped(t, job)).await;
                }
                Buffered::Large(rows) => Write::Append {
                    rows,
                    load_id: None,
                    operation,
                    within_row_filter,
                    transaction: None,
                },
            },
            other => other,
        };
        let _turn = self.sequencer.turn(&t.to_string()).await?;
        let mut attempt = 0;
        loop {
            let replay = write.replay();
            match (Box::pin(self.apply(actor, t, write)).await, replay) {
                (Err(e), Some(again)) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(sequencer::backoff(attempt)).await;
                    write = again;
                }
                (result, _) => return result,
            }
        }
    }

    /// The PII columns a write to `entry` encrypts (with `incoming` columns, when it brings
    /// rows) and the key that encrypts them.
    pub(crate) fn protection(
        &self,
        entry: &Table,
        incoming: Option<SchemaRef>,
    ) -> Result<(Vec<String>, Option<basin_keys::HubKey>)> {
        let mut pii = pii::columns(entry);
        if let Some(schema) = incoming {
            // New text columns of a table or dataset tagged pii are PII from their first value.
            pii.extend(pii::new_text_columns(
                &entry.inherited_tags(),
                &entry.columns,
                &schema,
            ));
        }
        let key = if pii.is_empty() {
            None
        } else {
            Some(self.hub_key(&entry.hub)?)
        };
        Ok((pii, key))
    }

    /// An append whose rows are all in memory, ready for a group commit.
    fn pending(
        &self,
        entry: Table,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        operation: &'static str,
    ) -> Result<Pending> {
        let (pii, key) = self.protection(&entry, Some(schema.clone()))?;
        Ok(Pending {
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            entry,
            schema,
            batches,
            operation,
            key,
            pii,
        })
    }

    /// Appends rows that are all in memory through the table's group commit.
    async fn append_grouped(&self, t: &TableRef, job: Pending) -> Result<Committed> {
        let (tables, table) = (self.clone(), t.clone());
        self.sequencer
            .join(&t.to_string(), job, Pending::joins, move |group| {
                Box::pin(async move { tables.commit_group(&table, group).await })
            })
            .await
    }

    /// Commits a group of appends as one Delta version and answers each. When the group
    /// fails, each append is committed alone, so one request's rows (a duplicate key, a value
    /// that does not fit) fail only that request.
    async fn commit_group(&self, t: &TableRef, group: Vec<(Pending, Answer<Committed>)>) {
        let (jobs, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let results = match self.append_jobs(t, &jobs).await {
            Ok(c) => {
                // The columns change only when the append evolved the schema.
                if c.evolution.is_some() {
                    self.columns_after_commit(t, &jobs[0].entry.location, c.version)
                        .await;
                }
                jobs.iter()
                    .map(|j| {
                        Ok(Committed {
                            rows: j.rows,
                            ..c.clone()
                        })
                    })
                    .collect()
            }
            Err(e) if jobs.len() == 1 => vec![Err(e)],
            Err(_) => {
                let mut results = Vec::new();
                for j in &jobs {
                    let alone = self.append_jobs(t, std::slice::from_ref(j)).await;
                    if let Ok(c) = &alone
                        && c.evolution.is_some()
                    {
                        self.columns_after_commit(t, &j.entry.location, c.version)
                            .await;
                    }
                    results.push(alone);
                }
                results
            }
        };
        for (answer, result) in answers.into_iter().zip(results) {
            let _ = answer.send(result);
        }
    }

    /// Brings the catalog's copy of a table's columns up to date after a commit. The commit has
    /// landed whatever happens here: when the catalog cannot be reached, the write is still
    /// answered as done (it is), and the next write syncs the columns.
    async fn columns_after_commit(&self, t: &TableRef, location: &str, version: i64) {
        if let Err(e) = self.sync_columns(t, location).await {
            tracing::error!(
                table = %t,
                version,
                "the commit landed, but its columns were not synced to the catalog (the next write syncs them): {e}"
            );
        }
    }

    /// One Delta commit of the rows of `jobs` (each encrypted with its own PII columns),
    /// retried on the new snapshot when another process committed first.
    async fn append_jobs(&self, t: &TableRef, jobs: &[Pending]) -> Result<Committed> {
        let entry = &jobs[0].entry;
        let mut attempt = 0;
        loop {
            let lake = LakeTable::open(&entry.location).await?;
            let streams: Vec<SendableRecordBatchStream> = jobs
                .iter()
                .map(|j| {
                    let rows = in_memory(j.schema.clone(), j.batches.clone());
                    match &j.key {
                        Some(key) => pii::encrypt_stream(rows, key.clone(), j.pii.clone()),
                        None => rows,
                    }
                })
                .collect();
            let schema = streams[0].schema();
            let rows = Rows {
                rows: Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::iter(streams).flatten(),
                )),
                load_id: None,
                operation: jobs[0].operation,
                transactions: Vec::new(),
            };
            let (read, mark) = (lake.version(), commit_mark());
            let write = write_rows(&lake, entry, rows, WriteMode::Append, None, &[]);
            match basin_lake::marked(mark.clone(), write).await {
                Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(sequencer::backoff(attempt)).await;
                }
                Err(e) if !is_conflict(&e) => {
                    return landed_anyway(t, &entry.location, &mark, read, e.about(t)).await;
                }
                result => return result.map_err(|e| e.about(t)),
            }
        }
    }

    /// One attempt at a write, on the table's latest snapshot.
    async fn apply(&self, actor: &Actor, t: &TableRef, write: Write) -> Result<Committed> {
        let entry = self.entry(t).await?;
        self.decide(actor, &entry, &write.needs()).await?;
        not_a_view(&entry)?;
        let incoming = match &write {
            Write::Append { rows, .. } | Write::Overwrite { rows, .. } => Some(rows.schema()),
            Write::Upsert { source, .. } => Some(source.schema().inner().clone()),
            _ => None,
        };
        let (pii, key) = self.protection(&entry, incoming)?;
        let lake = LakeTable::open(&entry.location).await?;
        let (read, mark, one_commit) = (lake.version(), commit_mark(), write.is_one_commit());
        let attempt = async {
            Ok(match write {
                Write::Append {
                    rows,
                    load_id,
                    operation,
                    transaction,
                    ..
                } => {
                    let rows = Rows {
                        rows,
                        load_id,
                        operation,
                        transactions: transaction.into_iter().collect(),
                    };
                    write_rows(&lake, &entry, rows, WriteMode::Append, key, &pii).await?
                }
                Write::Overwrite {
                    rows,
                    predicate,
                    load_id,
                    operation,
                    transactions,
                } => {
                    let mode = WriteMode::Overwrite(predicate);
                    let rows = Rows {
                        rows,
                        load_id,
                        operation,
                        transactions,
                    };
                    write_rows(&lake, &entry, rows, mode, key, &pii).await?
                }
                Write::Upsert {
                    source,
                    key: columns,
                    load_id,
                } => {
                    keys::check_unique(t, &columns, &source, keys::Checked::Upsert).await?;
                    let source = encrypt_frame(source, key.as_ref(), &pii)?;
                    merged(
                        MergeTable::upsert(&lake, source, &columns)?
                            .with_load_id(load_id)
                            .execute()
                            .await?,
                    )
                }
                Write::Update { predicate, set } => {
                    if set.iter().any(|(c, _)| entry.primary_key.contains(c)) {
                        let after =
                            keys::keys_after_update(&lake, &entry.primary_key, &predicate, &set)
                                .await?;
                        keys::check_unique(t, &entry.primary_key, &after, keys::Checked::Update)
                            .await?;
                    }
                    let mut op = lake.update();
                    if let Some(p) = predicate {
                        op = op.with_predicate(p);
                    }
                    for (column, value) in set {
                        op = op.set(column, value);
                    }
                    let (version, rows) = op.execute().await?;
                    Committed {
                        version,
                        rows,
                        ..Default::default()
                    }
                }
                Write::Delete { predicate } => {
                    let mut op = lake.delete();
                    if let Some(p) = predicate {
                        op = op.with_predicate(p);
                    }
                    let (version, rows) = op.execute().await?;
                    Committed {
                        version,
                        rows,
                        ..Default::default()
                    }
                }
                Write::Merge {
                    source,
                    on,
                    target_alias,
                    source_alias,
                    clauses,
                } => {
                    check_merge_pii(&clauses, &pii, &target_alias, &source_alias)?;
                    let source = encrypt_frame(source, key.as_ref(), &pii)?;
                    let inserts = keys::MergeInserts {
                        source: &source,
                        on: &on,
                        target_alias: &target_alias,
                        source_alias: &source_alias,
                        clauses: &clauses,
                    };
                    keys::check_merge_inserts(t, &entry.primary_key, &lake, inserts).await?;
                    let mut op = lake
                        .merge(source, on)
                        .with_aliases(&target_alias, &source_alias);
                    for clause in clauses {
                        op = op.with_clause(clause);
                    }
                    merged(op.execute().await?)
                }
                Write::Restore { version } => {
                    check_restorable(&lake, t, version).await?;
                    let restored = lake.restore(version).execute().await?;
                    match &key {
                        // The old version may hold values from before a column became PII: they
                        // are encrypted again at once, so no clear value stays current.
                        Some(key) => {
                            let lake = LakeTable::open(&entry.location).await?;
                            protect(&lake, &entry, key, &pii, &[]).await?
                        }
                        None => Committed {
                            version: restored,
                            ..Default::default()
                        },
                    }
                }
                Write::AddColumns { columns } => {
                    let mut op = lake.add_columns();
                    for (name, data_type) in columns {
                        op = op.column(name, data_type);
                    }
                    Committed {
                        version: op.execute().await?,
                        ..Default::default()
                    }
                }
                Write::Truncate => {
                    let (version, rows) =
                        lake.delete().with_operation("truncate").execute().await?;
                    Committed {
                        version,
                        rows,
                        ..Default::default()
                    }
                }
                Write::Replace {
                    rows,
                    primary_key,
                    partition_columns,
                    transactions,
                    operation,
                } => {
                    let incoming = rows.schema();
                    if let Some(k) = primary_key
                        .iter()
                        .find(|k| incoming.field_with_name(k).is_err())
                    {
                        return Err(TablesError::Invalid(format!(
                            "column '{k}' (a key column) is not a column of the new '{t}'"
                        )));
                    }
                    let gone: Vec<String> = entry
                        .columns
                        .iter()
                        .filter(|c| incoming.field_with_name(&c.name).is_err())
                        .map(|c| c.name.clone())
                        .collect();
                    check_policies_need(&self.catalog, &entry, &gone).await?;
                    let mode = WriteMode::Replace(partition_columns.clone());
                    // The keys checked are the new table's.
                    let replaced = Table {
                        primary_key: primary_key.clone(),
                        ..entry.clone()
                    };
                    let rows = Rows {
                        rows,
                        load_id: None,
                        operation,
                        transactions,
                    };
                    let done = write_rows(&lake, &replaced, rows, mode, key, &pii).await?;
                    self.catalog
                        .reshape_table(t, &primary_key, &partition_columns, &[], &|e| e.to_string())
                        .await?;
                    done
                }
                Write::AlterColumn(change) => {
                    alter_column(&self.catalog, &lake, &entry, change).await?
                }
                Write::Protect { newly_pii } => {
                    let Some(key) = key else {
                        return Ok(Committed {
                            version: lake.version(),
                            skipped: true,
                            ..Default::default()
                        });
                    };
                    protect(&lake, &entry, &key, &pii, &newly_pii).await?
                }
                Write::Optimize {
                    target_size,
                    zorder,
                } => {
                    let mut op = lake.optimize().with_zorder(zorder);
                    if let Some(bytes) = target_size {
                        op = op.with_target_size(bytes);
                    }
                    maintained(&lake, op.execute().await?)
                }
                Write::Vacuum { retention } => {
                    let mut op = lake.vacuum();
                    if let Some(r) = retention {
                        op = op.with_retention(r);
                    }
                    maintained(&lake, op.execute().await?)
                }
            })
        };
        let committed = match basin_lake::marked(mark.clone(), attempt).await {
            Ok(c) => c,
            Err(e) if one_commit => landed_anyway(t, &entry.location, &mark, read, e).await?,
            Err(e) => return Err(e),
        };
        // Compaction and vacuum leave the schema as it was.
        if !committed.skipped && committed.maintenance.is_none() {
            self.columns_after_commit(t, &entry.location, committed.version)
                .await;
        }
        Ok(committed)
    }

    /// Whether `actor` may make a write with these needs on table `t`: the check a surface can
    /// run before it starts reading a large input. [`Tables::commit`] decides again.
    pub async fn check(&self, actor: &Actor, t: &TableRef, needs: &WriteNeeds) -> Result<()> {
        let entry = self.entry(t).await?;
        self.decide(actor, &entry, needs).await?;
        not_a_view(&entry)
    }

    /// The decision for a write; the trusted operator may make every write.
    pub(crate) async fn decide(
        &self,
        actor: &Actor,
        entry: &Table,
        needs: &WriteNeeds,
    ) -> Result<()> {
        let Some(p) = &actor.principal else {
            return Ok(());
        };
        let t = entry.table_ref();
        let snapshot = self.catalog.access_snapshot().await?;
        let dataset = self.catalog.require_dataset(&t.dataset_ref()).await?;
        let policy =
            snapshot
                .table_policy(p, &dataset, entry)
                .ok_or_else(|| TablesError::NotFound {
                    kind: "table",
                    name: t.to_string(),
                })?;
        let operation = needs.operation.to_uppercase();
        let privilege = needs.privilege;
        if needs.administer && !snapshot.may(p, Action::Administer) {
            return Err(TablesError::Denied(format!(
                "permission denied: {operation} on '{t}' is for administrators"
            )));
        }
        if !policy.allows(privilege) {
            return Err(TablesError::Denied(format!(
                "permission denied: {operation} on '{t}' needs {privilege} on it; ask its owner for a grant"
            )));
        }
        if needs.full_view && !policy.sees_everything() {
            return Err(TablesError::Denied(format!(
                "permission denied: {operation} on '{t}' can change rows you cannot see, so it needs a view of all its rows and columns in clear; use INSERT, UPDATE or DELETE"
            )));
        }
        if needs.rows_unchecked && (policy.row_filter.is_some() || !policy.all_columns) {
            return Err(TablesError::Denied(format!(
                "permission denied: loading files into '{t}' needs a view of all its rows and columns; add rows with SQL INSERT, which checks them against your policy"
            )));
        }
        for column in &needs.columns {
            if !policy.columns.iter().any(|c| &c.name == column) {
                // A column the table does not have yet is added by this write (a load's schema
                // evolution); to one who sees every column that reveals nothing.
                let new = !entry.columns.iter().any(|c| &c.name == column);
                if new && policy.all_columns {
                    continue;
                }
                return Err(TablesError::NotFound {
                    kind: "column",
                    name: format!("{t}.{column}"),
                });
            }
            if !policy.may_write_column(column) {
                return Err(TablesError::Denied(format!(
                    "permission denied: column '{column}' of '{t}' is personal data (pii); writing it needs UNMASK on it, which only an administrator can grant"
                )));
            }
        }
        Ok(())
    }

    /// The catalog entry of a table ("not found" for a missing one).
    /// The latest version of `t`, its Delta table id and, for each app id, the version of its
    /// last Delta `txn` action (how far a writer that feeds the table in steps has got). Table
    /// metadata, not rows: callers that act on it for a principal check that principal's
    /// access themselves.
    pub async fn progress(
        &self,
        t: &TableRef,
        app_ids: &[String],
    ) -> Result<(i64, String, Vec<Option<i64>>)> {
        let lake = LakeTable::open(&self.entry(t).await?.location).await?;
        let mut done = Vec::new();
        for id in app_ids {
            done.push(lake.transaction_version(id).await?);
        }
        Ok((lake.version(), lake.table_id()?, done))
    }

    pub(crate) async fn entry(&self, t: &TableRef) -> Result<Table> {
        self.catalog
            .table(t)
            .await?
            .ok_or_else(|| TablesError::NotFound {
                kind: "table",
                name: t.to_string(),
            })
    }

    /// Sends the [`CommitEvent`] of a commit that landed; nobody listening is fine.
    pub(crate) fn announce(&self, actor: &Actor, t: &TableRef, operation: &str, c: &Committed) {
        let _ = self.events.send(CommitEvent {
            table: t.to_string(),
            version: c.version,
            operation: operation.to_string(),
            rows: c.rows,
            principal: actor.name().to_string(),
        });
    }

    /// Reads the table's schema and records its columns in the catalog.
    pub(crate) async fn sync_columns(&self, t: &TableRef, location: &str) -> Result<()> {
        let lake = LakeTable::open(location).await?;
        self.catalog.sync_columns(t, &columns_of(&lake)?).await?;
        Ok(())
    }

    /// Writes the audit row of a write (or a table's creation).
    pub(crate) async fn record<T>(
        &self,
        actor: &Actor,
        action: &str,
        t: &TableRef,
        operation: &str,
        result: &Result<T>,
    ) where
        T: Recorded,
    {
        let (outcome, detail) = match result {
            Ok(done) => ("ok", done.detail(operation)),
            Err(TablesError::Denied(e)) => ("denied", json!({"operation": operation, "error": e})),
            Err(e @ TablesError::NotFound { .. }) => (
                "denied",
                json!({"operation": operation, "error": e.to_string()}),
            ),
            Err(e) => (
                "error",
                json!({"operation": operation, "error": e.to_string()}),
            ),
        };
        self.audit(actor, action, &t.to_string(), outcome, detail)
            .await;
    }
}

/// Views have no rows of their own to write.
pub(crate) fn not_a_view(entry: &Table) -> Result<()> {
    match entry.is_view() {
        true => Err(TablesError::Invalid(format!(
            "'{}' is a view: it has no rows of its own; write to the tables it reads",
            entry.table_ref()
        ))),
        false => Ok(()),
    }
}

/// Results that leave an audit row.
pub(crate) trait Recorded {
    fn detail(&self, operation: &str) -> serde_json::Value;
}

impl Recorded for Committed {
    fn detail(&self, operation: &str) -> serde_json::Value {
        json!({"operation": operation, "version": self.version, "rows": self.rows, "skipped": self.skipped})
    }
}

/// In a MERGE, a PII column may only take the value of a column of the same name (the
/// source's, which the write path encrypts, or its own): any other expression would store a
/// clear value where tokens belong.
fn check_merge_pii(
    clauses: &[MergeClause],
    pii: &[String],
    target_alias: &str,
    source_alias: &str,
) -> Result<()> {
    let allowed = |column: &str, value: &str| {
        let value = value.trim().trim_matches('"');
        value == column
            || value == format!("{source_alias}.{column}")
            || value == format!("{target_alias}.{column}")
            || value.eq_ignore_ascii_case("null")
    };
    for clause in clauses {
        let pairs = match clause {
            MergeClause::MatchedUpdate { set, .. }
            | MergeClause::NotMatchedBySourceUpdate { set, .. } => set,
            MergeClause::NotMatchedInsert { values, .. } => values,
            _ => continue,
        };
        for (column, value) in pairs {
            if pii.contains(column) && !allowed(column, value) {
                return Err(TablesError::Invalid(format!(
                    "column '{column}' is personal data (pii) and stored encrypted: MERGE can set it only from the source column of the same name, e.g. {column} = {source_alias}.{column}"
                )));
            }
        }
    }
    Ok(())
}

/// Times a write that lost to another process's commit runs again before it reports the
/// conflict: with the backoff (up to about 2.5 s a try) a write keeps trying for about 15 s,
/// so that a busy writer in another process does not starve it.
const CONFLICT_RETRIES: u32 = 10;

/// Appends up to this size (in memory) join group commits; larger ones commit alone.
const GROUP_BYTES: usize = 8 << 20;

/// A fresh mark for a commit (see [`basin_lake::marked`]).
fn commit_mark() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The answer to a one-commit write that reported `error`: delta-rs fails a write whose work
/// after the commit fails (reloading the table, a checkpoint), though the commit landed. When the
/// log holds the commit marked `mark` (made after version `read`), the write happened and is
/// answered as done, with the counts its commit recorded, so that no client retries a write that
/// happened; otherwise the error stands.
async fn landed_anyway(
    t: &TableRef,
    location: &str,
    mark: &str,
    read: i64,
    error: TablesError,
) -> Result<Committed> {
    let Ok(Some((version, metrics))) = LakeTable::find_marked(location, mark, read).await else {
        return Err(error);
    };
    tracing::warn!(
        table = %t,
        version,
        "the write committed, but reported a failure after its commit: {error}"
    );
    let count = |key: &str| metrics.get(key).and_then(|v| v.as_u64());
    let merged = match (
        count("num_target_rows_inserted"),
        count("num_target_rows_updated"),
        count("num_target_rows_deleted"),
    ) {
        (Some(i), Some(u), Some(d)) => Some((i, u, d)),
        _ => None,
    };
    let rows = merged.map(|(i, u, d)| i + u + d).or_else(|| {
        ["num_added_rows", "num_updated_rows", "num_deleted_rows"]
            .into_iter()
            .find_map(count)
    });
    Ok(Committed {
        version,
        rows: rows.unwrap_or(0),
        merged,
        ..Default::default()
    })
}

fn is_conflict(e: &TablesError) -> bool {
    matches!(e, TablesError::Lake(LakeError::Conflict { .. }))
}

/// An append waiting for its group commit: its rows, in clear, and how to protect them.
pub(crate) struct Pending {
    entry: Table,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    operation: &'static str,
    key: Option<basin_keys::HubKey>,
    pii: Vec<String>,
    rows: u64,
}

impl Pending {
    /// Appends share a commit when they bring the same columns to the same table in the same
    /// way (the commit has one operation name).
    fn joins(a: &Pending, b: &Pending) -> bool {
        a.entry.location == b.entry.location && a.operation == b.operation && a.schema == b.schema
    }
}

/// An append's rows: all of them in memory, or a large input still streaming.
enum Buffered {
    Whole(SchemaRef, Vec<RecordBatch>),
    Large(SendableRecordBatchStream),
}

/// Reads an append's rows into memory up to [`GROUP_BYTES`]; a failure of its input reads as
/// a failed write to the table at `location`.
async fn buffer(mut rows: SendableRecordBatchStream, location: &str) -> Result<Buffered> {
    let schema = rows.schema();
    let mut batches = Vec::new();
    let mut size = 0;
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(|source| LakeError::DataFusion {
            action: format!("writing to table at {location}"),
            source,
        })?;
        size += batch.get_array_memory_size();
        batches.push(batch);
        if size > GROUP_BYTES {
            let read = futures::stream::iter(batches.into_iter().map(Ok));
            return Ok(Buffered::Large(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                read.chain(rows),
            ))));
        }
    }
    Ok(Buffered::Whole(schema, batches))
}

pub(crate) fn in_memory(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}

/// The rows of an append or overwrite.
pub(crate) struct Rows {
    pub(crate) rows: SendableRecordBatchStream,
    pub(crate) load_id: Option<String>,
    pub(crate) operation: &'static str,
    /// Delta `txn` actions committed with them (see [`crate::stream`]).
    pub(crate) transactions: Vec<(String, i64)>,
}

/// Appends or overwrites rows, their PII columns encrypted and their primary key checked (on
/// the stored values, tokens included) against each other and the rows that stay.
pub(crate) async fn write_rows(
    lake: &LakeTable,
    entry: &Table,
    Rows {
        rows,
        load_id,
        operation,
        transactions,
    }: Rows,
    mode: WriteMode,
    key: Option<basin_keys::HubKey>,
    pii: &[String],
) -> Result<Committed> {
    let rows = match key {
        Some(key) => pii::encrypt_stream(rows, key, pii.to_vec()),
        None => rows,
    };
    let violation = Arc::new(Mutex::new(None));
    let t = entry.table_ref();
    let schema = match &mode {
        WriteMode::Replace(_) => rows.schema(),
        _ => lake.schema()?,
    };
    let rows = match keys::KeyCheck::new(&t, &entry.primary_key, schema.as_ref())? {
        Some(check) => {
            let (table, kept) = match &mode {
                WriteMode::Append => (Some(lake.provider().await?), None),
                WriteMode::Overwrite(Some(p)) => (Some(lake.provider().await?), Some(p.clone())),
                WriteMode::Overwrite(None) | WriteMode::Replace(_) => (None, None),
            };
            keys::checked(rows, check, table, kept, operation, violation.clone())
        }
        None => rows,
    };
    let mut write = lake
        .write(rows)
        .with_mode(mode)
        .with_load_id(load_id)
        .with_operation(operation);
    for (app_id, version) in transactions {
        write = write.with_transaction(app_id, version);
    }
    let outcome = write.execute().await;
    // A key violation ended the input: it explains the failed write best.
    if let Some(e) = violation.lock().ok().and_then(|mut v| v.take()) {
        return Err(e);
    }
    Ok(written(outcome?))
}

/// A source with its columns named like PII columns encrypted (when the table has any).
fn encrypt_frame(
    source: DataFrame,
    key: Option<&basin_keys::HubKey>,
    pii: &[String],
) -> Result<DataFrame> {
    Ok(match key {
        Some(key) => pii::encrypt_frame(source, key, pii)?,
        None => source,
    })
}

/// Rewrites the table with its PII columns protected, in one commit: newly tagged columns
/// have every value encrypted, columns that were PII already move to the current key version.
async fn protect(
    lake: &LakeTable,
    entry: &Table,
    key: &basin_keys::HubKey,
    pii: &[String],
    newly_pii: &[String],
) -> Result<Committed> {
    if let Some(c) = entry
        .columns
        .iter()
        .find(|c| pii.contains(&c.name) && c.data_type != "VARCHAR")
    {
        return Err(TablesError::Invalid(format!(
            "column '{}' of '{}' is {}: only text (VARCHAR) columns can be tagged pii",
            c.name,
            entry.table_ref(),
            c.data_type
        )));
    }
    let ctx = datafusion::prelude::SessionContext::new();
    let rows = ctx.read_table(lake.provider().await?)?;
    let encrypt = pii::udf(key.clone(), Direction::Encrypt);
    let reencrypt = pii::udf(key.clone(), Direction::Reencrypt);
    let exprs: Vec<Expr> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = datafusion::prelude::col(format!("\"{}\"", f.name()));
            if newly_pii.contains(f.name()) {
                encrypt.call(vec![c]).alias(f.name())
            } else if pii.contains(f.name()) {
                reencrypt.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    let rows = rows.select(exprs)?.execute_stream().await?;
    Ok(written(
        lake.write(rows)
            .with_mode(WriteMode::Overwrite(None))
            .with_operation("encrypt pii")
            .execute()
            .await?,
    ))
}

fn written(w: basin_lake::WriteOutcome) -> Committed {
    Committed {
        version: w.version,
        rows: w.rows,
        merged: None,
        skipped: w.skipped,
        evolution: w.evolution,
        ..Default::default()
    }
}

fn merged(m: basin_lake::MergeOutcome) -> Committed {
    Committed {
        version: m.version,
        rows: m.inserted + m.updated + m.deleted,
        merged: Some((m.inserted, m.updated, m.deleted)),
        ..Default::default()
    }
}

/// The catalog's view of a table's schema.
pub(crate) fn columns_of(lake: &LakeTable) -> Result<Vec<Column>> {
    Ok(basin_lake::types::describe(lake.schema()?.as_ref())
        .into_iter()
        .map(Column::from)
        .collect())
}

/// A restore goes to an earlier version that is still in the table's log; the error names the
/// table and the versions it may go to.
async fn check_restorable(lake: &LakeTable, t: &TableRef, version: i64) -> Result<()> {
    let current = lake.version();
    let first = if (0..current).contains(&version) {
        // The oldest commit still in the log (older ones may have been cleaned up).
        lake.history(None).await?.last().map_or(0, |c| c.version)
    } else {
        0
    };
    if version >= first && version < current {
        return Ok(());
    }
    Err(TablesError::Invalid(if current <= first {
        format!(
            "cannot restore table '{t}' to version {version}: it has no earlier version (it is at version {current})"
        )
    } else {
        format!(
            "cannot restore table '{t}' to version {version}: pick a version from {first} to {} (the current version is {current}); `basin table history {t}` lists them",
            current - 1
        )
    }))
}

/// Renames or drops a column by rewriting every row (the stored values, tokens included, as
/// they are) with the new schema in one commit, then updates what the catalog says about it.
async fn alter_column(
    catalog: &basin_catalog::Catalog,
    lake: &LakeTable,
    entry: &Table,
    change: ColumnChange,
) -> Result<Committed> {
    let t = entry.table_ref();
    let schema = lake.schema()?;
    let column = match &change {
        ColumnChange::Rename { from, .. } => from,
        ColumnChange::Drop(c) => c,
    };
    if schema.field_with_name(column).is_err() {
        return Err(TablesError::NotFound {
            kind: "column",
            name: format!("{t}.{column}"),
        });
    }
    let mut primary_key = entry.primary_key.clone();
    let mut partition_columns = lake.partition_columns()?;
    let col = |name: &str| datafusion::prelude::col(format!("\"{name}\""));
    let (exprs, renamed): (Vec<Expr>, Vec<(String, String)>) = match &change {
        ColumnChange::Rename { from, to } => {
            if schema.field_with_name(to).is_ok() {
                return Err(TablesError::Invalid(format!(
                    "table '{t}' has a column '{to}' already; choose another name"
                )));
            }
            for c in primary_key.iter_mut().chain(partition_columns.iter_mut()) {
                if c == from {
                    *c = to.clone();
                }
            }
            let exprs = schema
                .fields()
                .iter()
                .map(|f| match f.name() == from {
                    true => col(from).alias(to),
                    false => col(f.name()),
                })
                .collect();
            (exprs, vec![(from.clone(), to.clone())])
        }
        ColumnChange::Drop(c) => {
            check_droppable(catalog, entry, c, &partition_columns).await?;
            let exprs = schema
                .fields()
                .iter()
                .filter(|f| f.name() != c)
                .map(|f| col(f.name()))
                .collect();
            (exprs, Vec::new())
        }
    };
    let ctx = datafusion::prelude::SessionContext::new();
    let rows = ctx
        .read_table(lake.provider().await?)?
        .select(exprs)?
        .execute_stream()
        .await?;
    let operation = Write::AlterColumn(change.clone()).operation();
    let done = written(
        lake.write(rows)
            .with_mode(WriteMode::Replace(partition_columns.clone()))
            .with_operation(operation)
            .execute()
            .await?,
    );
    let rewrite = |e: &str| match &change {
        ColumnChange::Rename { from, to } => rename_in_expression(e, from, to),
        ColumnChange::Drop(_) => e.to_string(),
    };
    catalog
        .reshape_table(&t, &primary_key, &partition_columns, &renamed, &rewrite)
        .await?;
    Ok(done)
}

/// A column may be dropped when no key, partition, row filter or mask of its table needs it.
async fn check_droppable(
    catalog: &basin_catalog::Catalog,
    entry: &Table,
    column: &str,
    partition_columns: &[String],
) -> Result<()> {
    let t = entry.table_ref();
    let refuse = |what: String| {
        Err(TablesError::Invalid(format!(
            "cannot drop column '{column}' of '{t}': {what}"
        )))
    };
    if entry.primary_key.iter().any(|k| k == column) {
        return refuse("it is part of the primary key".into());
    }
    if partition_columns.iter().any(|k| k == column) {
        return refuse("the table is partitioned by it; recreate the table with CREATE OR REPLACE TABLE … AS SELECT".into());
    }
    check_policies_need(catalog, entry, &[column.to_string()]).await
}

/// Refuses a change that removes `columns` while a row filter or mask of the table reads one
/// of them (a query under that policy could no longer run).
pub(crate) async fn check_policies_need(
    catalog: &basin_catalog::Catalog,
    entry: &Table,
    columns: &[String],
) -> Result<()> {
    let t = entry.table_ref();
    for column in columns {
        for f in catalog.row_filters().await? {
            if f.table == t && names_column(&f.expression, column) {
                return Err(TablesError::Invalid(format!(
                    "column '{column}' of '{t}' is read by the row filter of '{}'; drop or change that row filter first",
                    f.grantee
                )));
            }
        }
        for m in catalog.column_masks().await? {
            let reads = match &m.mask {
                basin_catalog::access::Mask::Expr(e) => names_column(e, column),
                _ => false,
            };
            if m.table == t && (&m.column == column || reads) {
                return Err(TablesError::Invalid(format!(
                    "column '{column}' of '{t}' is used by the mask of column '{}' for '{}'; drop that mask first",
                    m.column, m.grantee
                )));
            }
        }
    }
    Ok(())
}

/// Whether a SQL expression names `column` (as an identifier, not inside a string); an
/// expression that cannot be read counts as naming it.
fn names_column(expression: &str, column: &str) -> bool {
    match tokens(expression) {
        Some(tokens) => tokens.iter().any(|t| is_column(t, column)),
        None => true,
    }
}

/// `expression` with the identifier `from` renamed to `to`.
fn rename_in_expression(expression: &str, from: &str, to: &str) -> String {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let Some(tokens) = tokens(expression) else {
        return expression.to_string();
    };
    tokens
        .into_iter()
        .map(|t| match &t {
            Token::Word(w) if is_column(&t, from) => {
                Token::make_word(to, w.quote_style).to_string()
            }
            _ => t.to_string(),
        })
        .collect()
}

fn tokens(expression: &str) -> Option<Vec<datafusion::sql::sqlparser::tokenizer::Token>> {
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&dialect, expression)
        .tokenize()
        .ok()
}

fn is_column(token: &datafusion::sql::sqlparser::tokenizer::Token, column: &str) -> bool {
    match token {
        datafusion::sql::sqlparser::tokenizer::Token::Word(w) => match w.quote_style {
            None => w.value.eq_ignore_ascii_case(column),
            Some(_) => w.value == column,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_follow_a_renamed_column() {
        assert_eq!(
            rename_in_expression(
                "region = 'region' AND t.Region <> \"region\"",
                "region",
                "area"
            ),
            "area = 'region' AND t.area <> \"area\""
        );
        assert!(names_column("upper(region) = 'x'", "region"));
        assert!(!names_column("country = 'region'", "region"));
    }
}
