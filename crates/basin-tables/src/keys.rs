//! Primary keys hold on every write: key columns are never NULL, and no two rows share a key —
//! neither within a write nor with the rows already in the table.
//!
//! Rows that arrive as a stream (appends, overwrites, new tables) are checked as they stream
//! into the Delta write: each key is remembered (only the key columns, in Arrow's row format),
//! and once the input ends, the table's rows are read for the key columns only, restricted to
//! the range of the incoming keys so Delta skips the files whose min/max statistics lie outside
//! it. A violation fails the stream, so the Delta write never commits and the table stays as it
//! was. Upserts and updates are checked on their source before the commit.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use arrow::row::{RowConverter, SortField};
use basin_core::TableRef;
use basin_lake::MergeClause;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use datafusion::logical_expr::JoinType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, Expr, SessionContext, lit};
use futures::StreamExt;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::{Result, TablesError};

/// How many keys an error names.
const EXAMPLES: usize = 3;

/// Keys, each once, in their row encoding: their bytes one after another in one buffer, the
/// table holding where each starts and ends (one allocation for all keys, not one per key).
#[derive(Default)]
struct KeySet {
    bytes: Vec<u8>,
    table: HashTable<(usize, usize)>,
    hasher: DefaultHashBuilder,
}

impl KeySet {
    /// Adds `key`; `false` when it is there already.
    fn insert(&mut self, key: &[u8]) -> bool {
        let KeySet {
            bytes,
            table,
            hasher,
        } = self;
        let hash = hasher.hash_one(key);
        if table.find(hash, |&(s, e)| &bytes[s..e] == key).is_some() {
            return false;
        }
        let start = bytes.len();
        bytes.extend_from_slice(key);
        table.insert_unique(hash, (start, bytes.len()), |&(s, e)| {
            hasher.hash_one(&bytes[s..e])
        });
        true
    }

    fn contains(&self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&(s, e)| &self.bytes[s..e] == key)
            .is_some()
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The keys of the rows of one write, checked as they come.
pub(crate) struct KeyCheck {
    table: TableRef,
    key: Vec<String>,
    /// The types the key columns are compared in (incoming and stored values are cast to them).
    types: Vec<DataType>,
    converter: RowConverter,
    seen: KeySet,
    repeated: u64,
    examples: Vec<String>,
    bounds: Vec<(MinAccumulator, MaxAccumulator)>,
}

impl KeyCheck {
    /// A check of the key `key` of table `t`, whose schema is `schema`; `None` without a key.
    pub(crate) fn new(t: &TableRef, key: &[String], schema: &Schema) -> Result<Option<Self>> {
        if key.is_empty() {
            return Ok(None);
        }
        let mut types = Vec::new();
        for k in key {
            let field = schema.field_with_name(k).map_err(|_| {
                TablesError::Invalid(format!(
                    "key column '{k}' of '{t}' is not a column of the table"
                ))
            })?;
            types.push(comparable(field.data_type()));
        }
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())
            .map_err(DataFusionError::from)?;
        let bounds = types
            .iter()
            .map(|ty| Ok((MinAccumulator::try_new(ty)?, MaxAccumulator::try_new(ty)?)))
            .collect::<datafusion::error::Result<_>>()?;
        Ok(Some(KeyCheck {
            table: t.clone(),
            key: key.to_vec(),
            types,
            converter,
            seen: KeySet::default(),
            repeated: 0,
            examples: Vec::new(),
            bounds,
        }))
    }

    /// The key columns of a batch, in the types keys are compared in.
    fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.key
            .iter()
            .zip(&self.types)
            .map(|(k, ty)| {
                let Some(column) = batch.column_by_name(k) else {
                    // Not named: the writer may not see the column.
                    return Err(TablesError::Invalid(format!(
                        "the rows written into '{}' have no value for its primary key: every row needs one (see its key with 'basin table show')",
                        self.table
                    )));
                };
                // Logical: a column of the NULL type has no null buffer.
                let nulls = column.logical_null_count();
                if nulls > 0 {
                    return Err(self.null_key(k, nulls));
                }
                Ok(arrow::compute::cast(column, ty).map_err(DataFusionError::from)?)
            })
            .collect()
    }

    fn null_key(&self, column: &str, rows: usize) -> TablesError {
        TablesError::Invalid(format!(
            "{rows} row(s) have no value (NULL) in column '{column}', part of the primary key of '{}': every row needs a key",
            self.table
        ))
    }

    /// Takes a batch's keys: a NULL key is an error at once, repeated keys at the end.
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = self.key_columns(batch)?;
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(DataFusionError::from)?;
        for (i, row) in rows.iter().enumerate() {
            if !self.seen.insert(row.as_ref()) {
                self.repeated += 1;
                if self.examples.len() < EXAMPLES {
                    self.examples.push(describe(&self.key, &columns, i));
                }
            }
        }
        for ((min, max), column) in self.bounds.iter_mut().zip(&columns) {
            min.update_batch(std::slice::from_ref(column))?;
            max.update_batch(std::slice::from_ref(column))?;
        }
        Ok(())
    }

    /// After the last batch: no key twice in the write, none already among the table's rows
    /// that stay (`kept`: those not matching an overwrite's predicate; `None` for all).
    async fn finish(
        &mut self,
        table: Option<Arc<dyn TableProvider>>,
        kept: Option<&str>,
        operation: &str,
    ) -> Result<()> {
        if self.repeated > 0 {
            return Err(TablesError::Invalid(format!(
                "{} row(s) repeat a key within this write to '{}', e.g. {}: the primary key ({}) allows one row per key",
                self.repeated,
                self.table,
                self.examples.join(", "),
                self.key.join(", ")
            )));
        }
        let Some(table) = table.filter(|_| !self.seen.is_empty()) else {
            return Ok(());
        };
        let frame = SessionContext::new().read_table(table)?;
        let mut filter = Vec::new();
        for (k, (min, max)) in self.key.iter().zip(&mut self.bounds) {
            // The range of the incoming keys lets the scan skip files by their statistics.
            filter.push(column(k).between(lit(min.evaluate()?), lit(max.evaluate()?)));
        }
        if let Some(p) = kept {
            filter.push(frame.parse_sql_expr(p)?.is_not_true());
        }
        let filter = filter
            .into_iter()
            .reduce(Expr::and)
            .expect("a key has columns");
        let keys: Vec<Expr> = self.key.iter().map(|k| column(k)).collect();
        let mut rows = frame.filter(filter)?.select(keys)?.execute_stream().await?;
        let (mut found, mut examples) = (0u64, Vec::new());
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let columns = self.key_columns(&batch)?;
            let converted = self
                .converter
                .convert_columns(&columns)
                .map_err(DataFusionError::from)?;
            for (i, row) in converted.iter().enumerate() {
                if self.seen.contains(row.as_ref()) {
                    found += 1;
                    if examples.len() < EXAMPLES {
                        examples.push(describe(&self.key, &columns, i));
                    }
                }
            }
        }
        if found == 0 {
            return Ok(());
        }
        let hint = if operation.starts_with("insert") {
            "use MERGE INTO to update them"
        } else if operation.starts_with("merge") {
            "a WHEN MATCHED clause updates them instead"
        } else {
            "load with mode upsert (--mode upsert) to update them"
        };
        Err(TablesError::Invalid(format!(
            "{found} row(s) would duplicate keys already in '{}', e.g. {}; {hint}",
            self.table,
            examples.join(", ")
        )))
    }
}

/// `rows` checked against the key as they stream: the first violation ends the stream with an
/// error, and is left in `violation` (the Delta write reports the stream's error in its own
/// words). `table` is the table's provider when the rows join rows already there.
pub(crate) fn checked(
    rows: SendableRecordBatchStream,
    check: KeyCheck,
    table: Option<Arc<dyn TableProvider>>,
    kept: Option<String>,
    operation: &'static str,
    violation: Arc<Mutex<Option<TablesError>>>,
) -> SendableRecordBatchStream {
    let schema = rows.schema();
    let check = Arc::new(tokio::sync::Mutex::new(check));
    let (during, after) = (check.clone(), violation.clone());
    let keep = move |e: TablesError, slot: &Mutex<Option<TablesError>>| {
        let message = e.to_string();
        if let Ok(mut v) = slot.lock() {
            *v = Some(e);
        }
        DataFusionError::Execution(message)
    };
    let batches = rows.then(move |batch| {
        let check = during.clone();
        let violation = violation.clone();
        async move {
            let batch = batch?;
            match check.lock().await.add(&batch) {
                Ok(()) => Ok(batch),
                Err(e) => Err(keep(e, &violation)),
            }
        }
    });
    let end = futures::stream::once(async move {
        let result = check
            .lock()
            .await
            .finish(table, kept.as_deref(), operation)
            .await;
        result.err().map(|e| Err(keep(e, &after)))
    })
    .filter_map(futures::future::ready);
    Box::pin(RecordBatchStreamAdapter::new(schema, batches.chain(end)))
}

/// What [`check_unique`] checks.
#[derive(Clone, Copy)]
pub(crate) enum Checked {
    /// The new data of an upsert: a NULL key matches no row, so each run would insert it again;
    /// a key twice matches one row twice.
    Upsert,
    /// The table's keys after an update that sets key columns.
    Update,
}

/// `rows` hold each key of `key` once, and no NULL key.
pub(crate) async fn check_unique(
    t: &TableRef,
    key: &[String],
    rows: &DataFrame,
    checked: Checked,
) -> Result<()> {
    let keys: Vec<Expr> = key.iter().map(|k| column(k)).collect();
    let nulls = keys
        .iter()
        .cloned()
        .map(Expr::is_null)
        .reduce(Expr::or)
        .expect("a key has columns");
    let null_rows = rows.clone().filter(nulls)?.count().await?;
    let what = match checked {
        Checked::Upsert => format!("the upsert into '{t}'"),
        Checked::Update => format!("the update of '{t}'"),
    };
    if null_rows > 0 {
        return Err(TablesError::Invalid(format!(
            "{null_rows} row(s) of {what} would have no value (NULL) in the primary key ({}): every row needs a key",
            key.join(", ")
        )));
    }
    let repeated = rows
        .clone()
        .aggregate(keys, vec![count(lit(1)).alias("basin_rows")])?
        .filter(column("basin_rows").gt(lit(1)))?;
    let batches = repeated.clone().limit(0, Some(EXAMPLES))?.collect().await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(());
    }
    let total = repeated.count().await?;
    let examples: Vec<String> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| describe(key, &b.columns()[..key.len()], i)))
        .collect();
    let examples = examples.join(", ");
    Err(TablesError::Invalid(match checked {
        Checked::Upsert => format!(
            "{what} has {total} key(s) on more than one row, e.g. {examples}: each key may appear once in the new data"
        ),
        Checked::Update => format!(
            "{what} would give {total} key(s) more than one row, e.g. {examples}: the primary key ({}) allows one row per key",
            key.join(", ")
        ),
    }))
}

/// The key columns of the table as an update would leave them.
pub(crate) async fn keys_after_update(
    lake: &basin_lake::LakeTable,
    key: &[String],
    predicate: &Option<String>,
    set: &[(String, String)],
) -> Result<DataFrame> {
    let frame = SessionContext::new().read_table(lake.provider().await?)?;
    let matched = match predicate {
        Some(p) => Some(frame.parse_sql_expr(p)?),
        None => None,
    };
    let mut after = Vec::new();
    for k in key {
        let value = match set.iter().find(|(c, _)| c == k) {
            Some((_, v)) => {
                let new = frame.parse_sql_expr(v)?;
                match &matched {
                    Some(m) => datafusion::prelude::when(m.clone(), new).otherwise(column(k))?,
                    None => new,
                }
            }
            None => column(k),
        };
        after.push(value.alias(k));
    }
    Ok(frame.select(after)?)
}

/// The rows a `MERGE` inserts — source rows that match no row of the table, through the first
/// `WHEN NOT MATCHED` clause whose condition holds — bring no NULL key, no key twice, and no
/// key already in the table. (Keys that `WHEN MATCHED … UPDATE` sets are not checked.)
pub(crate) async fn check_merge_inserts(
    t: &TableRef,
    key: &[String],
    lake: &basin_lake::LakeTable,
    merge: MergeInserts<'_>,
) -> Result<()> {
    // A key set by `WHEN [NOT] MATCHED … UPDATE` could collide with another row's; UPDATE checks
    // the keys it makes, so that is where keys change.
    for clause in merge.clauses {
        if let MergeClause::MatchedUpdate { set, .. }
        | MergeClause::NotMatchedBySourceUpdate { set, .. } = clause
            && let Some((column, _)) = set.iter().find(|(c, _)| key.contains(c))
        {
            return Err(TablesError::Invalid(format!(
                "MERGE INTO '{t}' cannot set its key column '{column}' in WHEN … UPDATE; match on the key and leave it unchanged, or change keys with UPDATE, which checks them"
            )));
        }
    }
    // Each `WHEN NOT MATCHED … INSERT`: its condition and its values.
    let inserts: Vec<_> = merge
        .clauses
        .iter()
        .filter_map(|c| match c {
            MergeClause::NotMatchedInsert { predicate, values } => {
                Some((predicate, values.as_slice()))
            }
            _ => None,
        })
        .collect();
    let Some(mut check) = KeyCheck::new(t, key, lake.schema()?.as_ref())? else {
        return Ok(());
    };
    if inserts.is_empty() {
        return Ok(());
    }
    let source = merge.source.clone().alias(merge.source_alias)?;
    let target = SessionContext::new()
        .read_table(lake.provider().await?)?
        .alias(merge.target_alias)?;
    let both = source
        .clone()
        .join(target.clone(), JoinType::Inner, &[], &[], None)?;
    let on = both.parse_sql_expr(merge.on)?;
    let unmatched = source.join(target, JoinType::LeftAnti, &[], &[], Some(on))?;
    let condition = |p: &Option<String>| -> Result<Expr> {
        Ok(match p {
            Some(p) => unmatched.parse_sql_expr(p)?,
            None => lit(true),
        })
    };
    let mut any = Vec::new();
    let mut values: Vec<Vec<(Expr, Expr)>> = vec![Vec::new(); key.len()];
    for (predicate, set) in &inserts {
        let when = condition(predicate)?;
        any.push(when.clone());
        for (k, cases) in key.iter().zip(&mut values) {
            let value = if set.is_empty() {
                // INSERT *: the source column of the same name.
                Expr::Column(Column::new(Some(merge.source_alias), k))
            } else {
                match set.iter().find(|(c, _)| c == k) {
                    Some((_, v)) => unmatched.parse_sql_expr(v)?,
                    None => lit(ScalarValue::Null),
                }
            };
            cases.push((when.clone(), value));
        }
    }
    let inserted_keys = key
        .iter()
        .zip(values)
        .map(|(k, cases)| {
            let mut cases = cases.into_iter();
            let (w, v) = cases.next().expect("an insert clause");
            let mut case = datafusion::prelude::when(w, v);
            for (w, v) in cases {
                case = case.when(w, v);
            }
            Ok(case.end()?.alias(k))
        })
        .collect::<Result<Vec<_>>>()?;
    let any = any.into_iter().reduce(Expr::or).expect("an insert clause");
    let mut rows = unmatched
        .filter(any)?
        .select(inserted_keys)?
        .execute_stream()
        .await?;
    while let Some(batch) = rows.next().await {
        check.add(&batch?)?;
    }
    check
        .finish(Some(lake.provider().await?), None, "merge into")
        .await
}

/// What [`check_merge_inserts`] needs of a `MERGE`.
pub(crate) struct MergeInserts<'a> {
    pub source: &'a DataFrame,
    pub on: &'a str,
    pub target_alias: &'a str,
    pub source_alias: &'a str,
    pub clauses: &'a [MergeClause],
}

/// `(a=1, b=x)`: the key of row `i`.
fn describe(key: &[String], columns: &[ArrayRef], i: usize) -> String {
    let parts: Vec<String> = key
        .iter()
        .zip(columns)
        .map(|(k, c)| {
            let value = ScalarValue::try_from_array(c, i)
                .map(|v| v.to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{k}={value}")
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// The type keys of a column of type `t` are compared in: wide enough for the values of a
/// write that widens the column (INT → BIGINT, FLOAT → DOUBLE).
fn comparable(t: &DataType) -> DataType {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        t => t.clone(),
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}
