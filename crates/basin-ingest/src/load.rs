//! A load: files → validated batches → one commit (append, overwrite or upsert), with bad rows
//! refused or quarantined and the catalog kept in step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use basin_catalog::access::Privilege;
use basin_core::TableRef;
use basin_lake::LakeTable;
use basin_tables::{Actor, NewTableSpec, Tables, TablesError, Write, WriteNeeds};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use crate::infer::{infer_value, merge_schemas, merge_types, timestamp_type};
use crate::inputs::{InputFile, resolve_inputs};
use crate::read::{BadRow, Emit, infer_file_schema, read_file};
use crate::{IngestError, ReadOptions, Result};

/// What a load does with the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadMode {
    #[default]
    Append,
    /// Replace the whole table, or the rows matching a SQL predicate.
    Overwrite(Option<String>),
    /// Insert new keys, update existing ones (by the table's primary key or `key`).
    Upsert,
}

/// Everything a load needs to know.
#[derive(Debug, Clone, Default)]
pub struct LoadRequest {
    pub table: Option<TableRef>,
    /// Files, globs and directories.
    pub inputs: Vec<String>,
    pub read: ReadOptions,
    pub mode: LoadMode,
    /// Primary key (for a table the load creates, or the match key of an upsert).
    pub key: Vec<String>,
    /// Partition columns of a table the load creates.
    pub partition_by: Vec<String>,
    /// How many bad rows may go to the quarantine table instead of refusing the load.
    pub max_bad_rows: u64,
    /// Makes the load idempotent: a second load with this id adds nothing.
    pub load_id: Option<String>,
    /// The folder from which `key=value` folders in an input file's path become columns
    /// (default: the folder given, or the file's own folder).
    pub partition_root: Option<std::path::PathBuf>,
    /// A Delta `txn` action `(app id, version)` committed with an append's rows (a Kafka
    /// source's next offset of a partition).
    pub transaction: Option<(String, i64)>,
}

/// Live counters of a running load, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    pub rows: AtomicU64,
    pub bad_rows: AtomicU64,
    /// Bytes read from disk (compressed bytes for compressed files).
    pub bytes: Arc<AtomicU64>,
    /// Total size of the input files on disk.
    pub total_bytes: AtomicU64,
}

/// What a load did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub table: String,
    pub version: i64,
    pub rows: u64,
    pub bad_rows: u64,
    /// The quarantine table the bad rows went to.
    pub quarantine: Option<String>,
    /// True when the load id was seen before and nothing was written.
    pub skipped: bool,
    /// True when the load created the table.
    pub created: bool,
    pub files: usize,
    pub bytes: u64,
    pub added_columns: Vec<String>,
    pub widened_columns: Vec<String>,
}

/// Bad rows shown in an error message.
const SHOWN_PROBLEMS: usize = 10;

/// Whether `actor` may load files into `table` with `mode`, writing `columns` (empty: not known
/// yet): MODIFY and a view of every row and column for an existing table (files are not checked
/// against a row filter; overwrite and upsert replace rows), UNMASK on the PII columns written,
/// CREATE on the dataset for a new one. A hidden table answers like a missing one: a load would
/// create it, and its name is taken.
pub async fn check_load(
    tables: &Tables,
    actor: &Actor,
    table: &TableRef,
    mode: &LoadMode,
    columns: Vec<String>,
) -> Result<()> {
    if tables.catalog().table(table).await?.is_none() {
        return Ok(tables.check_create(actor, table).await?);
    }
    let needs = WriteNeeds {
        operation: "ingest",
        privilege: Privilege::Modify,
        full_view: *mode != LoadMode::Append,
        rows_unchecked: true,
        administer: false,
        columns,
    };
    match tables.check(actor, table, &needs).await {
        Err(TablesError::NotFound { .. }) => {
            tables.check_create(actor, table).await?;
            Err(basin_catalog::CatalogError::AlreadyExists {
                kind: "table",
                name: table.to_string(),
            }
            .into())
        }
        other => Ok(other?),
    }
}

/// Runs a load into a table for `actor` (creating the table in its dataset if needed), through
/// the write path. The actor's right to make the write is checked before any input is read.
pub async fn load(
    tables: &Tables,
    actor: &Actor,
    req: LoadRequest,
    progress: Arc<Progress>,
) -> Result<LoadReport> {
    let catalog = tables.catalog();
    let table_ref = req
        .table
        .clone()
        .ok_or_else(|| IngestError::Input("no target table given".into()))?;
    let mut files = resolve_inputs(&req.inputs, req.read.format)?;
    if let Some(root) = &req.partition_root {
        for f in &mut files {
            f.partition_values = crate::inputs::partition_values(root, &f.path);
        }
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    progress.total_bytes.store(total, Ordering::Relaxed);
    let existing = catalog.table(&table_ref).await?;
    check_load(tables, actor, &table_ref, &req.mode, vec![]).await?;
    let mut report = LoadReport {
        table: table_ref.to_string(),
        version: 0,
        rows: 0,
        bad_rows: 0,
        quarantine: None,
        skipped: false,
        created: existing.is_none(),
        files: files.len(),
        bytes: 0,
        added_columns: vec![],
        widened_columns: vec![],
    };
    let lake = match &existing {
        Some(t) => Some(LakeTable::open(&t.location).await?),
        None => None,
    };
    if let (Some(lake), Some(id)) = (&lake, &req.load_id) {
        if lake.has_load(id).await? {
            report.skipped = true;
            report.version = lake.version();
            return Ok(report);
        }
    }

    let table_schema = match &lake {
        Some(l) => Some(l.schema()?),
        None => None,
    };
    let schema = load_schema(&files, &req.read, table_schema.as_deref())?;
    if existing.is_some() {
        // The columns the files write are known now: decided before any row is read.
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        check_load(tables, actor, &table_ref, &req.mode, columns).await?;
    }
    let key = match (&existing, req.key.is_empty()) {
        (Some(t), true) => t.primary_key.clone(),
        _ => req.key.clone(),
    };
    for k in &key {
        if schema.field_with_name(k).is_err() {
            return Err(unknown_column(k, "key", &schema));
        }
    }
    if let Some(t) = &existing {
        if !req.partition_by.is_empty() && req.partition_by != t.partition_columns {
            return Err(IngestError::Input(format!(
                "table '{table_ref}' is partitioned by ({}); --partition-by only applies when a load creates the table",
                t.partition_columns.join(", ")
            )));
        }
    }
    if req.mode == LoadMode::Upsert && key.is_empty() {
        return Err(IngestError::Input(format!(
            "an upsert into '{table_ref}' needs a key: the table has no primary key, so give --key COLUMN[,COLUMN]"
        )));
    }

    let quarantine_ref = table_ref
        .dataset_ref()
        .table(&format!("{}__rejected", table_ref.table))?;
    let reader = Reader {
        files,
        schema: schema.clone(),
        options: req.read.clone(),
        max_bad_rows: req.max_bad_rows,
        progress: progress.clone(),
        failure: Arc::new(Mutex::new(None)),
        quarantine: Quarantine {
            tables: tables.clone(),
            loader: actor.clone(),
            table: quarantine_ref.clone(),
            load_id: req.load_id.clone().unwrap_or_else(generated_load_id),
        },
    };
    let failure = reader.failure.clone();
    let stream = reader.spawn();

    let written = match (&lake, &req.mode) {
        (None, _) => {
            let spec = NewTableSpec {
                table: table_ref.clone(),
                schema: None,
                primary_key: key,
                partition_columns: req.partition_by.clone(),
                description: String::new(),
                load_id: req.load_id.clone(),
                operation: "ingest",
                transactions: req.transaction.clone().into_iter().collect(),
            };
            tables.create(actor, spec, Some(stream)).await
        }
        (Some(_), LoadMode::Upsert) => {
            // A merge reads its source more than once: spill the input to a local Parquet file
            // (bounded memory), then merge from it.
            let spill = spill_to_parquet(stream).await?;
            let ctx = datafusion::prelude::SessionContext::new();
            let source = ctx
                .read_parquet(spill.path().display().to_string(), Default::default())
                .await
                .map_err(|e| IngestError::Input(format!("cannot read the spilled input: {e}")))?;
            let write = Write::Upsert {
                source,
                key,
                load_id: req.load_id.clone(),
            };
            tables.commit(actor, &table_ref, write).await
        }
        (Some(_), mode) => {
            let write = match mode {
                LoadMode::Overwrite(predicate) => Write::Overwrite {
                    rows: stream,
                    predicate: predicate.clone(),
                    load_id: req.load_id.clone(),
                    operation: "ingest",
                    transactions: Vec::new(),
                },
                _ => Write::Append {
                    rows: stream,
                    load_id: req.load_id.clone(),
                    operation: "ingest",
                    within_row_filter: false,
                    transaction: req.transaction.clone(),
                },
            };
            tables.commit(actor, &table_ref, write).await
        }
    };
    // An error of the reader (bad rows, unreadable file) explains a failed write best.
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let outcome = written?;
    report.version = outcome.version;
    report.rows = progress.rows.load(Ordering::Relaxed);
    report.bad_rows = progress.bad_rows.load(Ordering::Relaxed);
    report.bytes = progress.bytes.load(Ordering::Relaxed);
    if report.bad_rows > 0 {
        report.quarantine = Some(quarantine_ref.to_string());
    }
    if let Some(e) = outcome.evolution {
        report.added_columns = e.added;
        report.widened_columns = e
            .widened
            .into_iter()
            .map(|(c, from, to)| format!("{c}: {from} -> {to}"))
            .collect();
    }
    Ok(report)
}

/// Writes a stream to a temporary Parquet file (removed when the handle drops).
async fn spill_to_parquet(
    mut stream: SendableRecordBatchStream,
) -> Result<tempfile::NamedTempFile> {
    use futures::StreamExt;
    let spill_error =
        |e: String| IngestError::Input(format!("cannot spill the input to a temporary file: {e}"));
    let file = tempfile::Builder::new()
        .suffix(".parquet")
        .tempfile()
        .map_err(|e| spill_error(e.to_string()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        file.reopen().map_err(|e| spill_error(e.to_string()))?,
        stream.schema(),
        None,
    )
    .map_err(|e| spill_error(e.to_string()))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| IngestError::Input(e.to_string()))?;
        writer
            .write(&batch)
            .map_err(|e| spill_error(e.to_string()))?;
    }
    writer.close().map_err(|e| spill_error(e.to_string()))?;
    Ok(file)
}

pub(crate) fn generated_load_id() -> String {
    format!(
        "auto-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    )
}

fn unknown_column(name: &str, what: &str, schema: &Schema) -> IngestError {
    IngestError::Input(format!(
        "{what} column '{name}' is not a column of the input ({}){}",
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", "),
        basin_core::closest(name, schema.fields().iter().map(|f| f.name().as_str()))
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default()
    ))
}

/// The schema of the whole load: the given schema or the union of every file's inferred one,
/// plus the columns of hive-style folders. Columns the table has already are read with the
/// table's type, unless the data needs a wider one (which widens the table): so a value that does
/// not fit the table's column is a bad row, not a schema change.
pub(crate) fn load_schema(
    files: &[InputFile],
    options: &ReadOptions,
    table: Option<&Schema>,
) -> Result<SchemaRef> {
    let data = match &options.schema {
        Some(s) => s.clone(),
        None => {
            let schemas = files
                .iter()
                .map(|f| infer_file_schema(f, options))
                .collect::<Result<Vec<_>>>()?;
            let inferred = merge_schemas(&schemas);
            match table {
                None => inferred,
                Some(table) => Arc::new(Schema::new(
                    inferred
                        .fields()
                        .iter()
                        .map(|f| match table.field_with_name(f.name()) {
                            Ok(t) if !basin_lake::types::widens(t.data_type(), f.data_type()) => {
                                Field::new(f.name(), t.data_type().clone(), true)
                            }
                            _ => f.as_ref().clone(),
                        })
                        .collect::<Vec<_>>(),
                )),
            }
        }
    };
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut partition_types: Vec<(String, Option<DataType>)> = Vec::new();
    for f in files {
        for (name, value) in &f.partition_values {
            if data.field_with_name(name).is_ok() {
                continue;
            }
            let t = match infer_value(value) {
                DataType::Timestamp(..) => timestamp_type(),
                t => t,
            };
            match partition_types.iter_mut().find(|(n, _)| n == name) {
                Some((_, ty)) => *ty = Some(merge_types(ty.take(), &t)),
                None => partition_types.push((name.clone(), Some(t))),
            }
        }
    }
    for (name, t) in partition_types {
        fields.push(Field::new(name, t.unwrap_or(DataType::Utf8), true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Where a load's bad rows go: `<table>__rejected`, appended to by the process itself (the
/// rows are a record of the load, not data the loader adds).
pub(crate) struct Quarantine {
    tables: Tables,
    /// Who runs the load: the owner of a quarantine table it creates, when it may create tables.
    loader: Actor,
    table: TableRef,
    load_id: String,
}

impl Quarantine {
    /// The quarantine of loads into `t`, for this load.
    pub(crate) fn new(
        tables: Tables,
        loader: Actor,
        t: &TableRef,
        load_id: String,
    ) -> Result<Self> {
        let table = TableRef::new(
            t.hub.as_str(),
            t.dataset.as_str(),
            &format!("{}__rejected", t.table),
        )?;
        Ok(Quarantine {
            tables,
            loader,
            table,
            load_id,
        })
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("load_id", DataType::Utf8, false),
            Field::new("file", DataType::Utf8, false),
            Field::new("line", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, false),
            Field::new("rejected_at", timestamp_type(), false),
        ]))
    }

    /// Commits the bad rows to `<table>__rejected` (idempotent per load id).
    pub(crate) async fn write(&self, rows: Vec<BadRow>) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros();
        let n = rows.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.load_id.as_str(); n])),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.file.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.line as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.reason.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.raw.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(vec![now; n]).with_timezone(basin_lake::types::UTC),
            ),
        ];
        let batch = RecordBatch::try_new(Self::schema(), columns)
            .map_err(|e| IngestError::Input(e.to_string()))?;
        let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            Self::schema(),
            futures::stream::iter([Ok::<_, DataFusionError>(batch)]),
        ));
        let load_id = Some(self.load_id.clone());
        let system = Actor {
            principal: None,
            origin: self.loader.origin.clone(),
        };
        match self.tables.catalog().table(&self.table).await? {
            Some(_) => {
                let write = Write::Append {
                    rows: stream,
                    load_id,
                    operation: "quarantine",
                    within_row_filter: false,
                    transaction: None,
                };
                self.tables.commit(&system, &self.table, write).await?;
            }
            None => {
                let spec = NewTableSpec {
                    table: self.table.clone(),
                    schema: None,
                    primary_key: vec![],
                    partition_columns: vec![],
                    description:
                        "Rows refused by loads into the table of the same name without '__rejected'"
                            .into(),
                    load_id,
                    operation: "quarantine",
                    transactions: Vec::new(),
                };
                // The loader owns the record of its own bad rows where it may create tables.
                let creator = match self.tables.check_create(&self.loader, &self.table).await {
                    Ok(()) => &self.loader,
                    Err(_) => &system,
                };
                self.tables.create(creator, spec, Some(stream)).await?;
            }
        }
        Ok(())
    }
}

/// The reading side of a load, on its own thread, feeding a bounded channel.
struct Reader {
    files: Vec<InputFile>,
    schema: SchemaRef,
    options: ReadOptions,
    max_bad_rows: u64,
    progress: Arc<Progress>,
    /// Why reading stopped, when it failed.
    failure: Arc<Mutex<Option<IngestError>>>,
    quarantine: Quarantine,
}

impl Reader {
    fn spawn(self) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(4);
        let schema = self.schema.clone();
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            if let Err(e) = self.run(&tx, &handle) {
                if matches!(e, IngestError::Cancelled) {
                    // The write stopped reading: its own error is the answer.
                    return;
                }
                let message = e.to_string();
                if let Ok(mut f) = self.failure.lock() {
                    *f = Some(e);
                }
                let _ = tx.blocking_send(Err(DataFusionError::Execution(message)));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }

    fn run(
        &self,
        tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
        handle: &tokio::runtime::Handle,
    ) -> Result<()> {
        let mut bad: Vec<BadRow> = Vec::new();
        let mut found = 0u64;
        // Past the allowance, read on only to show a few more problems.
        let stop_at = self.max_bad_rows.saturating_add(SHOWN_PROBLEMS as u64);
        let mut stopped = false;
        'files: for file in &self.files {
            let result = read_file(
                file,
                &self.schema,
                &self.options,
                self.progress.bytes.clone(),
                &mut |emit| match emit {
                    Emit::Batch(batch) => {
                        self.progress
                            .rows
                            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        tx.blocking_send(Ok(batch))
                            .map_err(|_| IngestError::Cancelled)
                    }
                    Emit::Bad(row) => {
                        found += 1;
                        self.progress.bad_rows.fetch_add(1, Ordering::Relaxed);
                        if (bad.len() as u64) < self.max_bad_rows.max(SHOWN_PROBLEMS as u64) {
                            bad.push(row);
                        }
                        if found >= stop_at {
                            Err(IngestError::Input(STOP.into()))
                        } else {
                            Ok(())
                        }
                    }
                },
            );
            match result {
                Ok(()) => {}
                Err(IngestError::Input(m)) if m == STOP => {
                    stopped = true;
                    break 'files;
                }
                Err(e) => return Err(e),
            }
        }
        if found > self.max_bad_rows {
            bad.truncate(SHOWN_PROBLEMS);
            return Err(IngestError::BadRows {
                allowed: self.max_bad_rows,
                found,
                complete: !stopped,
                first: bad,
            });
        }
        if !bad.is_empty() {
            // Quarantine first: if the main commit then fails, the rejected rows are still kept
            // (marked with the load id), and a retry with the same id does not repeat them.
            handle.block_on(self.quarantine.write(bad))?;
        }
        Ok(())
    }
}

const STOP: &str = "basin: enough bad rows seen";
