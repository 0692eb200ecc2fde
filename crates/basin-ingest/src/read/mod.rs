//! Readers: one file in, validated Arrow batches of the load's schema out, bad rows reported
//! one by one with file, line and reason.
//!
//! One decoder per format, each of the same shape ([`Decoder`]: infer a file's columns, decode
//! it), in the manner of DataFusion's per-format datasource crates: `csv`, `json` (JSON arrays
//! and NDJSON) and `parquet`. What the formats share lives here: the entry points, the typed
//! column builders and their parsing rules, and the constant columns that hive-style
//! `name=value` folders add to every batch. Decompression (`.gz`, `.zst`) happens below the
//! decoders, in [`InputFile::open`], and folder values are found with the inputs
//! (`crate::inputs`).

mod chunked;
mod csv;
mod json;
mod parquet;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use arrow::compute::kernels::cast_utils::{Parser, parse_decimal};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Schema, SchemaRef, TimestampMicrosecondType,
};
use serde_json::Value;

use crate::inputs::InputFile;
use crate::{Format, IngestError, ReadOptions, Result};

/// A row that could not be loaded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadRow {
    pub file: String,
    /// Line in the file (CSV, NDJSON) or record number (JSON arrays), from 1.
    pub line: u64,
    pub reason: String,
    /// The row's text as read (at most 8 KiB).
    pub raw: String,
}

/// What a reader hands on.
pub(crate) enum Emit {
    Batch(RecordBatch),
    Bad(BadRow),
}

const RAW_LIMIT: usize = 8 * 1024;

// ---- the decoders -------------------------------------------------------------------------------

/// What every format's decoder does (the shape of DataFusion's `FileFormat`: infer, then read).
trait Decoder {
    /// The names and types (`None` when no value was seen) of a file's data columns, from its
    /// first records.
    fn infer_columns(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Option<DataType>)>>;

    /// Decodes `file` into batches of `out`'s data columns, reporting the rows that do not fit;
    /// every byte read from disk is added to `bytes`.
    fn decode(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
        bytes: Arc<AtomicU64>,
        out: &mut Output<'_>,
    ) -> Result<()>;
}

/// The decoder of a format.
fn decoder(format: Format) -> &'static dyn Decoder {
    match format {
        Format::Csv => &csv::CsvDecoder,
        Format::Json | Format::Ndjson => &json::JsonDecoder,
        Format::Parquet => &parquet::ParquetDecoder,
    }
}

// ---- schema inference ---------------------------------------------------------------------------

/// The schema of one file's data columns, inferred from its first records.
pub(crate) fn infer_file_schema(file: &InputFile, opts: &ReadOptions) -> Result<SchemaRef> {
    let fields = decoder(file.format).infer_columns(file, opts)?;
    Ok(Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )))
}

// ---- reading ------------------------------------------------------------------------------------

/// What [`decode`] read: the schema a load would use, the rows that fit it, the bad rows.
#[derive(Debug)]
pub struct Decoded {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub bad_rows: Vec<BadRow>,
}

/// Reads `files` as a load into a new table would (the same schema inference, decoders and
/// validation), without a table: every row in memory. For previews and the fuzz targets.
pub fn decode(files: &[InputFile], options: &ReadOptions) -> Result<Decoded> {
    let schema = crate::load::load_schema(files, options, None)?;
    let (mut batches, mut bad_rows) = (Vec::new(), Vec::new());
    for file in files {
        read_file(file, &schema, options, Arc::default(), &mut |emit| {
            match emit {
                Emit::Batch(b) => batches.push(b),
                Emit::Bad(row) => bad_rows.push(row),
            }
            Ok(())
        })?;
    }
    Ok(Decoded {
        schema,
        batches,
        bad_rows,
    })
}

/// Reads `file` into batches of `schema` (the load's columns, partition columns included).
pub(crate) fn read_file(
    file: &InputFile,
    schema: &SchemaRef,
    opts: &ReadOptions,
    bytes: Arc<AtomicU64>,
    sink: &mut dyn FnMut(Emit) -> Result<()>,
) -> Result<()> {
    let partitions = PartitionColumns::new(file, schema)?;
    let mut out = Output { partitions, sink };
    decoder(file.format).decode(file, opts, bytes, &mut out)
}

/// Where a decoder's rows go: batches of the file's data columns, completed here with the
/// columns of its folders, and bad rows.
struct Output<'a> {
    partitions: PartitionColumns,
    sink: &'a mut dyn FnMut(Emit) -> Result<()>,
}

impl Output<'_> {
    /// Builders for the file's data columns.
    fn builders(&self) -> Builders {
        Builders::new(&self.partitions.schema, &self.partitions.data_columns)
    }

    /// The file's data columns (the load's columns but those of its folders).
    fn data_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.partitions
                .data_columns
                .iter()
                .map(|&i| self.partitions.schema.field(i).clone())
                .collect::<Vec<_>>(),
        ))
    }

    /// Hands on `rows` rows of the data columns (nothing when there are none).
    fn batch(&mut self, columns: Vec<ArrayRef>, rows: usize) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let batch = self.partitions.complete(columns, rows)?;
        (self.sink)(Emit::Batch(batch))
    }

    /// Hands on a row that could not be loaded.
    fn bad(&mut self, row: BadRow) -> Result<()> {
        (self.sink)(Emit::Bad(row))
    }
}

/// An emptied vector, its allocation kept, for cells of another lifetime (a row's cells borrow
/// its text; the buffer outlives the row).
fn reuse<'a>(mut v: Vec<(usize, Cell<'_>)>) -> Vec<(usize, Cell<'a>)> {
    v.clear();
    v.into_iter().map(|_| unreachable!()).collect()
}

/// A bad row's text, cut to [`RAW_LIMIT`] bytes.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > RAW_LIMIT {
        let mut end = RAW_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

// ---- partition columns --------------------------------------------------------------------------

/// The constant columns a file contributes through its `name=value` folders.
#[derive(Clone)]
struct PartitionColumns {
    schema: SchemaRef,
    /// Indexes of the schema's columns that come from the file's data.
    data_columns: Vec<usize>,
    /// Index and value of each column that comes from the folders.
    constants: Vec<(usize, ArrayRef)>,
}

impl PartitionColumns {
    fn new(file: &InputFile, schema: &SchemaRef) -> Result<Self> {
        let mut constants = Vec::new();
        for (name, value) in &file.partition_values {
            let Ok(i) = schema.index_of(name) else {
                continue;
            };
            let field = schema.field(i);
            let mut b = Builders::new(schema, &[i]);
            let cell = b.parse_text(0, value).map_err(|reason| {
                IngestError::Input(format!(
                    "{}: folder value {name}={value}: {reason}",
                    file.display()
                ))
            })?;
            b.append(vec![(0, cell)]);
            let (cols, _) = b.finish();
            debug_assert_eq!(cols[0].data_type(), field.data_type());
            constants.push((i, cols[0].clone()));
        }
        let data_columns = (0..schema.fields().len())
            .filter(|i| !constants.iter().any(|(c, _)| c == i))
            .collect();
        Ok(PartitionColumns {
            schema: schema.clone(),
            data_columns,
            constants,
        })
    }

    fn complete(&self, data: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        for (&i, c) in self.data_columns.iter().zip(data) {
            columns[i] = Some(c);
        }
        for (i, value) in &self.constants {
            let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
            columns[*i] = Some(
                arrow::compute::take(value.as_ref(), &indices, None)
                    .map_err(|e| IngestError::Input(e.to_string()))?,
            );
        }
        let columns = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.unwrap_or_else(|| new_null_array(self.schema.field(i).data_type(), rows))
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| IngestError::Input(e.to_string()))
    }
}

// ---- typed column builders ----------------------------------------------------------------------

/// One value, parsed and checked, before it is appended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(i128),
    Text(&'a str),
    Json(&'a Value),
    Days(i32),
    Micros(i64),
}

enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
}

struct Builders {
    names: Vec<String>,
    builders: Vec<Builder>,
    rows: usize,
    /// Which columns the row being appended sets (kept to spare an allocation per row).
    seen: Vec<bool>,
}

impl Builders {
    /// Builders for the schema's columns at `indexes`.
    fn new(schema: &SchemaRef, indexes: &[usize]) -> Self {
        let mut names = Vec::new();
        let mut builders = Vec::new();
        for &i in indexes {
            let f = schema.field(i);
            names.push(f.name().clone());
            builders.push(match f.data_type() {
                DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
                DataType::Int8 | DataType::Int16 => Builder::I16(Int16Builder::new()),
                DataType::Int32 => Builder::I32(Int32Builder::new()),
                DataType::Int64 => Builder::I64(Int64Builder::new()),
                DataType::Float32 => Builder::F32(Float32Builder::new()),
                DataType::Float64 => Builder::F64(Float64Builder::new()),
                DataType::Decimal128(p, s) => Builder::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale(*p, *s)
                        .expect("schema precision was validated"),
                    *p,
                    *s,
                ),
                DataType::Date32 => Builder::Date(Date32Builder::new()),
                DataType::Timestamp(_, tz) => {
                    Builder::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
                }
                _ => Builder::Text(StringBuilder::new()),
            });
        }
        Builders {
            names,
            builders,
            rows: 0,
            seen: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.builders.len()
    }

    fn name(&self, col: usize) -> &str {
        &self.names[col]
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Where each header column goes; a header column the schema lacks is an error.
    fn positions(&self, header: &[String], file: &InputFile) -> Result<Vec<usize>> {
        header
            .iter()
            .map(|h| {
                self.index_of(h).ok_or_else(|| {
                    IngestError::Input(format!(
                        "{}: column '{h}' is not in the schema ({}){}",
                        file.display(),
                        self.names.join(", "),
                        basin_core::closest(h, self.names.iter().map(String::as_str))
                            .map(|s| format!("; did you mean '{s}'?"))
                            .unwrap_or_default()
                    ))
                })
            })
            .collect()
    }

    fn parse_text<'a>(&self, col: usize, text: &'a str) -> std::result::Result<Cell<'a>, String> {
        let invalid = |ty: &str| {
            format!(
                "column '{}': '{}' is not a valid {ty}",
                self.names[col],
                shorten(text)
            )
        };
        Ok(match &self.builders[col] {
            Builder::Bool(_) => match text.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Cell::Bool(true),
                "false" | "f" | "no" | "n" | "0" => Cell::Bool(false),
                _ => return Err(invalid("BOOLEAN")),
            },
            Builder::I16(_) => Cell::Int(
                arrow::datatypes::Int16Type::parse(text).ok_or_else(|| invalid("SMALLINT"))? as i64,
            ),
            Builder::I32(_) => Cell::Int(
                arrow::datatypes::Int32Type::parse(text).ok_or_else(|| invalid("INT"))? as i64,
            ),
            Builder::I64(_) => Cell::Int(
                arrow::datatypes::Int64Type::parse(text).ok_or_else(|| invalid("BIGINT"))?,
            ),
            Builder::F32(_) | Builder::F64(_) => Cell::Float(
                arrow::datatypes::Float64Type::parse(text).ok_or_else(|| invalid("DOUBLE"))?,
            ),
            Builder::Decimal(_, p, s) => Cell::Decimal(
                parse_decimal::<Decimal128Type>(text, *p, *s)
                    .map_err(|_| invalid(&format!("DECIMAL({p},{s})")))?,
            ),
            Builder::Text(_) => Cell::Text(text),
            Builder::Date(_) => Cell::Days(Date32Type::parse(text).ok_or_else(|| invalid("DATE"))?),
            Builder::Timestamp(..) => Cell::Micros(
                TimestampMicrosecondType::parse(text).ok_or_else(|| invalid("TIMESTAMP"))?,
            ),
        })
    }

    fn parse_json<'a>(
        &self,
        col: usize,
        value: &'a Value,
    ) -> std::result::Result<Cell<'a>, String> {
        let wrong = |ty: &str| {
            format!(
                "column '{}': {} is not a valid {ty}",
                self.names[col],
                shorten(&value.to_string())
            )
        };
        Ok(match (value, &self.builders[col]) {
            (Value::Null, _) => Cell::Null,
            (Value::String(s), Builder::Text(_)) => Cell::Text(s),
            (v, Builder::Text(_)) => Cell::Json(v),
            (Value::Bool(b), Builder::Bool(_)) => Cell::Bool(*b),
            (Value::Number(n), Builder::I16(_) | Builder::I32(_) | Builder::I64(_)) => {
                let v = n.as_i64().ok_or_else(|| wrong("integer"))?;
                let fits = match &self.builders[col] {
                    Builder::I16(_) => i16::try_from(v).is_ok(),
                    Builder::I32(_) => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if !fits {
                    return Err(wrong("integer of this size"));
                }
                Cell::Int(v)
            }
            (Value::Number(n), Builder::F32(_) | Builder::F64(_)) => {
                Cell::Float(n.as_f64().ok_or_else(|| wrong("DOUBLE"))?)
            }
            (Value::Number(n), Builder::Decimal(_, p, s)) => Cell::Decimal(
                parse_decimal::<Decimal128Type>(&n.to_string(), *p, *s)
                    .map_err(|_| wrong(&format!("DECIMAL({p},{s})")))?,
            ),
            (
                Value::String(s),
                Builder::Date(_) | Builder::Timestamp(..) | Builder::Decimal(..),
            ) => self.parse_text(col, s)?,
            (_, b) => return Err(wrong(b.type_name())),
        })
    }

    fn append<'a>(&mut self, cells: impl IntoIterator<Item = (usize, Cell<'a>)>) {
        // Columns the row does not mention are NULL.
        self.seen.clear();
        self.seen.resize(self.builders.len(), false);
        for (col, cell) in cells {
            self.seen[col] = true;
            self.builders[col].append(cell);
        }
        for (col, seen) in self.seen.iter().enumerate() {
            if !seen {
                self.builders[col].append(Cell::Null);
            }
        }
        self.rows += 1;
    }

    fn finish(&mut self) -> (Vec<ArrayRef>, usize) {
        let rows = std::mem::take(&mut self.rows);
        (
            self.builders.iter_mut().map(Builder::finish).collect(),
            rows,
        )
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

impl Builder {
    fn type_name(&self) -> &'static str {
        match self {
            Builder::Bool(_) => "BOOLEAN",
            Builder::I16(_) => "SMALLINT",
            Builder::I32(_) => "INT",
            Builder::I64(_) => "BIGINT",
            Builder::F32(_) => "FLOAT",
            Builder::F64(_) => "DOUBLE",
            Builder::Decimal(..) => "DECIMAL",
            Builder::Text(_) => "VARCHAR",
            Builder::Date(_) => "DATE",
            Builder::Timestamp(..) => "TIMESTAMP",
        }
    }

    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::I16(b), Cell::Int(v)) => b.append_value(v as i16),
            (Builder::I16(b), _) => b.append_null(),
            (Builder::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Builder::I32(b), _) => b.append_null(),
            (Builder::I64(b), Cell::Int(v)) => b.append_value(v),
            (Builder::I64(b), _) => b.append_null(),
            (Builder::F32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Builder::F32(b), _) => b.append_null(),
            (Builder::F64(b), Cell::Float(v)) => b.append_value(v),
            (Builder::F64(b), _) => b.append_null(),
            (Builder::Decimal(b, ..), Cell::Decimal(v)) => b.append_value(v),
            (Builder::Decimal(b, ..), _) => b.append_null(),
            (Builder::Text(b), Cell::Text(v)) => b.append_value(v),
            (Builder::Text(b), Cell::Json(v)) => b.append_value(v.to_string()),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Date(b), Cell::Days(v)) => b.append_value(v),
            (Builder::Date(b), _) => b.append_null(),
            (Builder::Timestamp(b, _), Cell::Micros(v)) => b.append_value(v),
            (Builder::Timestamp(b, _), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("precision was validated"),
            ),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
        }
    }
}
