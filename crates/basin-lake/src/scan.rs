//! Reading a table version: the version's files, pruned by their Delta statistics, read by
//! DataFusion's own Parquet scan.
//!
//! delta-rs' provider replays the log's file actions on every scan, adds a file-id column to
//! every batch and hands its filter to the Parquet reader twice. Basin's tables (no deletion
//! vectors, no column mapping) need none of that: the snapshot already lists the files with
//! their sizes, partition values and statistics. Tables written with those features by other
//! writers are read through delta-rs' provider.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use deltalake::kernel::EagerSnapshot;
use object_store::{ObjectMeta, ObjectStore};

/// A table version as DataFusion reads it.
#[derive(Debug)]
pub(crate) struct LakeScan {
    /// The table's columns, in the table's order.
    schema: SchemaRef,
    /// The columns stored in the files (all but the partition columns), in the table's order.
    file_schema: SchemaRef,
    /// The partition columns, in the table's order.
    partition_fields: Vec<FieldRef>,
    /// For each column of `schema`, its position among the scan's columns (file columns first,
    /// then partition columns).
    scan_index: Vec<usize>,
    snapshot: EagerSnapshot,
    files: Vec<PartitionedFile>,
    store_url: ObjectStoreUrl,
    store: Arc<dyn ObjectStore>,
}

impl LakeScan {
    /// The scan of `delta`'s loaded version; `None` when it uses a feature only delta-rs'
    /// provider reads (deletion vectors, column mapping).
    pub(crate) fn try_new(delta: &DeltaTable, schema: SchemaRef) -> DfResult<Option<Self>> {
        let state = delta.snapshot()?;
        let mapped = state
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| mode != "none");
        let files: Vec<_> = state.log_data().iter().collect();
        if mapped
            || files
                .iter()
                .any(|f| f.deletion_vector_descriptor().is_some())
        {
            return Ok(None);
        }
        let partition_columns = state.metadata().partition_columns();
        let (partition, data): (Vec<_>, Vec<_>) = schema
            .fields()
            .iter()
            .enumerate()
            .partition(|(_, f)| partition_columns.contains(f.name()));
        let mut scan_index = vec![0; schema.fields().len()];
        for (position, (i, _)) in data.iter().chain(&partition).enumerate() {
            scan_index[*i] = position;
        }
        let file_schema = Arc::new(Schema::new(
            data.iter().map(|(_, f)| (*f).clone()).collect::<Vec<_>>(),
        ));
        let partition_fields: Vec<FieldRef> = partition.iter().map(|(_, f)| (*f).clone()).collect();
        let snapshot = state.snapshot().clone();
        let stats = FileStats::of(&snapshot, &file_schema);
        let files = files
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let values = file.partition_values_map();
                let partition_values = partition_fields
                    .iter()
                    .map(|f| match values.get(f.name()).cloned().flatten() {
                        Some(text) => ScalarValue::try_from_string(text, f.data_type()),
                        None => ScalarValue::try_from(f.data_type()),
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                let meta = ObjectMeta {
                    location: file.object_store_path(),
                    last_modified: file.modification_datetime()?,
                    size: file.size().max(0) as u64,
                    e_tag: None,
                    version: None,
                };
                Ok(PartitionedFile::new_from_meta(meta)
                    .with_partition_values(partition_values)
                    .with_statistics(Arc::new(stats.file(i, file.num_records()))))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let log_store = delta.log_store();
        Ok(Some(LakeScan {
            schema,
            file_schema,
            partition_fields,
            scan_index,
            snapshot,
            files,
            store_url: log_store.object_store_url(),
            store: log_store.object_store(None),
        }))
    }

    /// Which files may hold rows that pass `filters` (all of them when the filters say nothing
    /// about the files' statistics).
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Vec<bool> {
        let all = vec![true; self.files.len()];
        let Some(filter) = conjunction(filters.to_vec()) else {
            return all;
        };
        let Ok(df_schema) = DFSchema::try_from(self.schema.clone()) else {
            return all;
        };
        let Some(predicate) = state
            .create_physical_expr(filter, &df_schema)
            .ok()
            .and_then(|expr| {
                PruningPredicateBuilder::new()
                    .with_file_schema(self.schema.clone())
                    .build(expr)
            })
        else {
            return all;
        };
        match predicate.prune(&self.snapshot) {
            Ok(kept) if kept.len() == self.files.len() => kept,
            _ => all,
        }
    }
}

#[async_trait]
impl TableProvider for LakeScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters prune files here and row groups, pages and rows in the Parquet scan, which
        // DataFusion hands them to; the engine still applies them above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.iter().map(|&i| self.scan_index[i]).collect(),
            None => self.scan_index.clone(),
        };
        let kept: Vec<PartitionedFile> = self
            .prune(state, filters)
            .into_iter()
            .zip(&self.files)
            .filter_map(|(keep, file)| keep.then(|| file.clone()))
            .collect();
        if kept.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        state
            .runtime_env()
            .register_object_store(self.store_url.as_ref(), self.store.clone());
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let statistics = Statistics::try_merge_iter(
            kept.iter().filter_map(|f| f.statistics.as_deref()),
            table_schema.table_schema(),
        )?;
        let groups = FileGroup::new(kept).split_files(state.config().target_partitions());
        let mut options = state.table_options().parquet.clone();
        // The table's strings are Utf8: reading them as views would only add a cast.
        options.global.schema_force_view_types = false;
        let format = ParquetFormat::default().with_options(options);
        let config =
            FileScanConfigBuilder::new(self.store_url.clone(), format.file_source(table_schema))
                .with_file_groups(groups)
                .with_statistics(statistics)
                .with_projection_indices(Some(columns))?
                .with_limit(limit)
                .build();
        format.create_physical_plan(state, config).await
    }
}

/// Each file's Delta statistics, column by column (one array per statistic, one entry per file).
struct FileStats {
    columns: Vec<ColumnStats>,
    schema: SchemaRef,
}

struct ColumnStats {
    min: Option<ArrayRef>,
    max: Option<ArrayRef>,
    nulls: Option<ArrayRef>,
}

impl FileStats {
    fn of(snapshot: &EagerSnapshot, file_schema: &SchemaRef) -> Self {
        let columns = file_schema
            .fields()
            .iter()
            .map(|f| {
                let column = Column::from_name(f.name());
                ColumnStats {
                    min: snapshot.min_values(&column),
                    max: snapshot.max_values(&column),
                    nulls: snapshot.null_counts(&column),
                }
            })
            .collect();
        FileStats {
            columns,
            schema: file_schema.clone(),
        }
    }

    /// DataFusion's statistics of file `i`: exact row count, inexact bounds (Delta truncates long
    /// strings), exact null counts.
    fn file(&self, i: usize, rows: Option<usize>) -> Statistics {
        // File `i`'s entry of a statistic, when the file has one.
        let at = |array: &Option<ArrayRef>| {
            array
                .as_ref()
                .filter(|a| a.len() > i && a.is_valid(i))
                .and_then(|a| ScalarValue::try_from_array(a, i).ok())
        };
        let column_statistics = self
            .schema
            .fields()
            .iter()
            .zip(&self.columns)
            .map(|(field, stats)| {
                let bound = |array| match at(array) {
                    Some(v) if v.data_type() == *field.data_type() => Precision::Inexact(v),
                    _ => Precision::Absent,
                };
                ColumnStatistics {
                    null_count: match at(&stats.nulls) {
                        Some(ScalarValue::UInt64(Some(n))) => Precision::Exact(n as usize),
                        Some(ScalarValue::Int64(Some(n))) => Precision::Exact(n.max(0) as usize),
                        _ => Precision::Absent,
                    },
                    min_value: bound(&stats.min),
                    max_value: bound(&stats.max),
                    ..ColumnStatistics::new_unknown()
                }
            })
            .collect();
        Statistics {
            num_rows: rows.map_or(Precision::Absent, Precision::Exact),
            total_byte_size: Precision::Absent,
            column_statistics,
        }
    }
}
