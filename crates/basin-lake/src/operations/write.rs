use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::{Column, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, Expr, cast, lit, not};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use arrow::datatypes::SchemaRef;
use deltalake::DeltaTableBuilder;

use crate::error::Context;
use crate::evolution::{self, Evolution};
use crate::stream::one_shot_table;
use crate::types::storable_schema;
use crate::{LakeTable, Result};

/// What a write does with the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Keep them and add the new rows.
    #[default]
    Append,
    /// Replace all of them (`None`) or only those matching a SQL predicate, e.g. a partition
    /// (`Some("day = '2024-01-01'")`); the new rows must then match the predicate too.
    Overwrite(Option<String>),
    /// Replace all of them and the table's schema: the new rows' columns, partitioned by these
    /// columns (`CREATE OR REPLACE TABLE`, a column renamed or dropped). Old versions keep
    /// their schema for time travel.
    Replace(Vec<String>),
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The table version the write created (or the current one, when skipped).
    pub version: i64,
    /// Rows written.
    pub rows: u64,
    /// True when the load id had been committed before, so nothing was written.
    pub skipped: bool,
    /// How the table's schema changed.
    pub evolution: Option<Evolution>,
}

/// Writes a stream of batches into a table in one commit, evolving its schema as needed.
pub struct WriteTable {
    table: LakeTable,
    input: SendableRecordBatchStream,
    mode: WriteMode,
    load_id: Option<String>,
    /// Delta `txn` actions committed with the rows (application id, version).
    transactions: Vec<(String, i64)>,
    operation: String,
    /// For a table that does not exist yet: its partition columns.
    new_partition_columns: Option<Vec<String>>,
}

impl WriteTable {
    pub(crate) fn new(table: LakeTable, input: SendableRecordBatchStream) -> Self {
        WriteTable {
            table,
            input,
            mode: WriteMode::Append,
            load_id: None,
            transactions: Vec::new(),
            operation: "write".into(),
            new_partition_columns: None,
        }
    }

    /// Writes `input` as the first version of a new table at `location`: the table and its
    /// data appear in one commit, or not at all.
    pub fn new_table(
        location: &str,
        partition_columns: Vec<String>,
        input: SendableRecordBatchStream,
    ) -> Result<Self> {
        let url = super::prepare_new_table(location, &input.schema(), &partition_columns)?;
        let delta = DeltaTableBuilder::from_url(url)
            .and_then(|b| b.build())
            .ctx(|| format!("preparing table at {location}"))?;
        let mut write = WriteTable::new(LakeTable::from_delta(delta, location), input);
        write.new_partition_columns = Some(partition_columns);
        Ok(write)
    }

    /// Appends or overwrites.
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Makes the write idempotent: if a commit with this load id exists, nothing is written.
    pub fn with_load_id(mut self, load_id: Option<String>) -> Self {
        self.load_id = load_id;
        self
    }

    /// Commits a Delta `txn` action `(app_id, version)` with the rows, atomically: a writer
    /// that feeds a table in sequence (a stream) records how far it got, see
    /// [`LakeTable::transaction_version`].
    pub fn with_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.transactions.push((app_id.into(), version));
        self
    }

    /// Names the operation in the commit metadata (`ingest`, `insert`, …).
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = operation.into();
        self
    }

    /// Runs the write.
    pub async fn execute(self) -> Result<WriteOutcome> {
        let WriteTable {
            table,
            input,
            mode,
            load_id,
            transactions,
            operation,
            new_partition_columns,
        } = self;
        let mut properties = super::commit_properties(&operation, load_id.as_deref());
        for (app_id, version) in transactions {
            properties = properties
                .with_application_transaction(deltalake::kernel::Transaction::new(app_id, version));
        }
        let location = table.location().to_string();
        let replace = match &mode {
            WriteMode::Replace(partition_columns) => {
                // The same checks as for a new table; the directory exists already.
                super::prepare_new_table(&location, &input.schema(), partition_columns)?;
                Some(partition_columns.clone())
            }
            _ => None,
        };
        if let Some(partition_columns) = new_partition_columns.clone().or(replace) {
            let target = storable_schema(&input.schema());
            let (input, rows) = conformed(input, target.clone());
            let ctx = super::session_for(&table);
            let source = ctx
                .read_table(one_shot_table(input).ctx(|| "reading the input".into())?)
                .ctx(|| "planning the write".into())?;
            let builder = table
                .delta
                .write(Vec::new())
                .with_input_plan(source.into_unoptimized_plan())
                .with_session_state(Arc::new(ctx.state()))
                .with_partition_columns(partition_columns)
                .with_commit_properties(properties);
            let delta = if new_partition_columns.is_some() {
                builder
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_configuration(super::NEW_TABLE_PROPERTIES)
                    .await
                    .ctx(|| format!("creating table at {location}"))?
            } else {
                builder
                    .with_save_mode(SaveMode::Overwrite)
                    .with_schema_mode(SchemaMode::Overwrite)
                    .await
                    .ctx(|| format!("replacing table at {location}"))?
            };
            return Ok(WriteOutcome {
                version: crate::table::version_of(&delta),
                rows: rows.load(Ordering::Relaxed),
                skipped: false,
                evolution: None,
            });
        }
        if let Some(id) = &load_id {
            if table.has_load(id).await? {
                return Ok(WriteOutcome {
                    version: table.version(),
                    rows: 0,
                    skipped: true,
                    evolution: None,
                });
            }
        }
        let evolution = evolution::plan(table.schema()?.as_ref(), &input.schema())?;
        let target = evolution.target.clone();

        let (input, rows) = conformed(input, target.clone());

        let ctx = super::session_for(&table);
        let new_rows = ctx
            .read_table(one_shot_table(input).ctx(|| "reading the input".into())?)
            .ctx(|| "planning the write".into())?;
        let rewrite = !evolution.widened.is_empty();
        let (source, save_mode, predicate, schema_mode) = if rewrite {
            // A column widens: the kept rows are rewritten with the new type in the same commit.
            let source = match &mode {
                WriteMode::Overwrite(None) => new_rows,
                WriteMode::Overwrite(Some(p)) => {
                    let old = ctx
                        .read_table(table.provider().await?)
                        .ctx(|| "reading the table".into())?;
                    let replaced = old
                        .parse_sql_expr(p)
                        .ctx(|| format!("parsing the overwrite predicate '{p}'"))?;
                    let kept = old
                        .filter(not(coalesce(vec![replaced, lit(false)])))
                        .ctx(|| "planning the rewrite".into())?;
                    cast_to(kept, &target)?
                        .union(new_rows)
                        .ctx(|| "planning the rewrite".into())?
                }
                WriteMode::Replace(_) => unreachable!("a replacement is written above"),
                WriteMode::Append => {
                    let old = ctx
                        .read_table(table.provider().await?)
                        .ctx(|| "reading the table".into())?;
                    cast_to(old, &target)?
                        .union(new_rows)
                        .ctx(|| "planning the rewrite".into())?
                }
            };
            (
                source,
                SaveMode::Overwrite,
                None,
                Some(SchemaMode::Overwrite),
            )
        } else {
            let schema_mode = evolution.changes_schema().then_some(SchemaMode::Merge);
            match &mode {
                WriteMode::Append => (new_rows, SaveMode::Append, None, schema_mode),
                WriteMode::Overwrite(p) => (new_rows, SaveMode::Overwrite, p.clone(), schema_mode),
                WriteMode::Replace(_) => unreachable!("a replacement is written above"),
            }
        };

        let mut builder = table
            .delta
            .clone()
            .write(Vec::new())
            .with_input_plan(source.into_unoptimized_plan())
            .with_session_state(Arc::new(ctx.state()))
            .with_save_mode(save_mode)
            .with_partition_columns(table.partition_columns()?)
            .with_commit_properties(properties);
        if let Some(mode) = schema_mode {
            builder = builder.with_schema_mode(mode);
        }
        if let Some(p) = predicate {
            builder = builder.with_replace_where(p);
        }
        let delta = builder
            .await
            .ctx(|| format!("writing to table at {location}"))?;
        Ok(WriteOutcome {
            version: crate::table::version_of(&delta),
            rows: rows.load(Ordering::Relaxed),
            skipped: false,
            evolution: evolution.changes_schema().then_some(evolution),
        })
    }
}

/// `input` conformed to `target`, and a counter of the rows that went through.
fn conformed(
    input: SendableRecordBatchStream,
    target: SchemaRef,
) -> (SendableRecordBatchStream, Arc<AtomicU64>) {
    let rows = Arc::new(AtomicU64::new(0));
    let counter = rows.clone();
    let conform_to = target.clone();
    let stream = input.map(move |batch| {
        let batch = evolution::conform(&batch?, &conform_to)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        counter.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(batch)
    });
    (
        Box::pin(RecordBatchStreamAdapter::new(target, stream)),
        rows,
    )
}

fn cast_to(df: DataFrame, target: &SchemaRef) -> Result<DataFrame> {
    let exprs: Vec<Expr> = target
        .fields()
        .iter()
        .map(|f| {
            let value = if df.schema().field_with_unqualified_name(f.name()).is_ok() {
                Expr::Column(Column::from_name(f.name()))
            } else {
                lit(ScalarValue::Null)
            };
            cast(value, f.data_type().clone()).alias(f.name())
        })
        .collect();
    df.select(exprs).ctx(|| "planning the rewrite".into())
}
