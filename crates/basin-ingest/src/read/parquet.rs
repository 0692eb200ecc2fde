//! Parquet: typed columns already; names are normalized and the batches conformed to the
//! load's schema.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Decoder, Output};
use crate::infer::normalize_column_name;
use crate::inputs::InputFile;
use crate::{IngestError, ReadOptions, Result};

/// The Parquet decoder. Reads the file itself (compression is Parquet's own), so bytes are
/// counted by the file's size once it is read.
pub(super) struct ParquetDecoder;

impl Decoder for ParquetDecoder {
    fn infer_columns(
        &self,
        file: &InputFile,
        _opts: &ReadOptions,
    ) -> Result<Vec<(String, Option<DataType>)>> {
        let f = std::fs::File::open(&file.path).map_err(|source| IngestError::Io {
            path: file.display(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            IngestError::Input(format!(
                "{} is not a readable Parquet file: {e}",
                file.display()
            ))
        })?;
        Ok(builder
            .schema()
            .fields()
            .iter()
            .map(|f| {
                (
                    normalize_column_name(f.name()),
                    Some(basin_lake::types::storable(f.data_type())),
                )
            })
            .collect())
    }

    fn decode(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
        bytes: Arc<AtomicU64>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let f = std::fs::File::open(&file.path).map_err(|source| IngestError::Io {
            path: file.display(),
            source,
        })?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(opts.batch_rows).build())
            .map_err(|e| {
                IngestError::Input(format!(
                    "{} is not a readable Parquet file: {e}",
                    file.display()
                ))
            })?;
        let data_schema = out.data_schema();
        for batch in reader {
            let batch = batch
                .map_err(|e| IngestError::Input(format!("cannot read {}: {e}", file.display())))?;
            let renamed: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_name(normalize_column_name(f.name()))
                })
                .collect();
            let batch =
                RecordBatch::try_new(Arc::new(Schema::new(renamed)), batch.columns().to_vec())
                    .map_err(|e| {
                        IngestError::Input(format!("cannot read {}: {e}", file.display()))
                    })?;
            let conformed = basin_lake::evolution::conform(&batch, &data_schema)
                .map_err(|e| IngestError::Input(format!("{}: {e}", file.display())))?;
            let rows = conformed.num_rows();
            out.batch(conformed.columns().to_vec(), rows)?;
        }
        bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
