//! Readers: one file in, validated Arrow batches of the load's schema out, bad rows reported
//! one by one with file, line and reason.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
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

use crate::infer::{header_names, infer_value, merge_types, normalize_column_name};
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

// ---- schema inference ---------------------------------------------------------------------------

/// The schema of one file's data columns, inferred from its first records.
pub(crate) fn infer_file_schema(file: &InputFile, opts: &ReadOptions) -> Result<SchemaRef> {
    let bytes = Arc::new(AtomicU64::new(0));
    let fields: Vec<(String, Option<DataType>)> = match file.format {
        Format::Csv => {
            let mut rdr = csv_reader(file, opts, bytes)?;
            let mut record = csv::ByteRecord::new();
            let mut names: Option<Vec<String>> = None;
            let mut types: Vec<Option<DataType>> = Vec::new();
            let null = opts.csv.null_marker.as_deref();
            let mut seen = 0;
            while seen < opts.infer_rows && read_record(&mut rdr, &mut record, file)? {
                if names.is_none() {
                    let header: Vec<String> = record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    if opts.csv.has_header {
                        names = Some(header_names(&header)?);
                        types = vec![None; header.len()];
                        continue;
                    }
                    names = Some((1..=header.len()).map(|i| format!("column_{i}")).collect());
                    types = vec![None; header.len()];
                }
                seen += 1;
                for (i, field) in record.iter().enumerate().take(types.len()) {
                    let Ok(text) = std::str::from_utf8(field) else {
                        continue;
                    };
                    if text.is_empty() || Some(text) == null {
                        continue;
                    }
                    types[i] = Some(merge_types(types[i].take(), &infer_value(text)));
                }
            }
            let names =
                names.ok_or_else(|| IngestError::Input(format!("{} is empty", file.display())))?;
            names.into_iter().zip(types).collect()
        }
        Format::Ndjson | Format::Json => {
            let mut fields: Vec<(String, Option<DataType>)> = Vec::new();
            let mut names = NameCache::default();
            let mut count = 0;
            let mut observe = |value: Record| -> Result<bool> {
                if let Record::Object(map) = value {
                    for (k, v) in map {
                        let name = names.get(&k);
                        let t = json_value_type(&v);
                        match fields.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, ty)) => {
                                if let Some(t) = t {
                                    *ty = Some(merge_types(ty.take(), &t));
                                }
                            }
                            None => fields.push((name, t)),
                        }
                    }
                    count += 1;
                }
                Ok(count < opts.infer_rows)
            };
            json_values(
                file,
                Arc::new(AtomicU64::new(0)),
                &mut |_, value| match value {
                    Ok(v) => observe(v),
                    Err(_) => Ok(true),
                },
            )?;
            if fields.is_empty() {
                return Err(IngestError::Input(format!(
                    "{} has no JSON objects to take columns from",
                    file.display()
                )));
            }
            fields
        }
        Format::Parquet => {
            let f = std::fs::File::open(&file.path).map_err(|source| IngestError::Io {
                path: file.display(),
                source,
            })?;
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| {
                    IngestError::Input(format!(
                        "{} is not a readable Parquet file: {e}",
                        file.display()
                    ))
                })?;
            builder
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    (
                        normalize_column_name(f.name()),
                        Some(basin_lake::types::storable(f.data_type())),
                    )
                })
                .collect()
        }
    };
    Ok(Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )))
}

fn json_value_type(v: &Value) -> Option<DataType> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(DataType::Boolean),
        Value::Number(n) if n.is_i64() => Some(DataType::Int64),
        Value::Number(_) => Some(DataType::Float64),
        // Text stays text unless it is a date or a timestamp ("42" in quotes is a string).
        Value::String(s) => Some(match infer_value(s) {
            t @ (DataType::Date32 | DataType::Timestamp(..)) => t,
            _ => DataType::Utf8,
        }),
        Value::Array(_) | Value::Object(_) => Some(DataType::Utf8),
    }
}

// ---- reading ------------------------------------------------------------------------------------

/// Reads `file` into batches of `schema` (the load's columns, partition columns included).
pub(crate) fn read_file(
    file: &InputFile,
    schema: &SchemaRef,
    opts: &ReadOptions,
    bytes: Arc<AtomicU64>,
    sink: &mut dyn FnMut(Emit) -> Result<()>,
) -> Result<()> {
    let partitions = PartitionColumns::new(file, schema)?;
    let emit_batch = |columns: Vec<ArrayRef>,
                      rows: usize,
                      sink: &mut dyn FnMut(Emit) -> Result<()>|
     -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let batch = partitions.complete(columns, rows)?;
        sink(Emit::Batch(batch))
    };
    match file.format {
        Format::Csv => {
            let mut rdr = csv_reader(file, opts, bytes)?;
            let mut record = csv::ByteRecord::new();
            let mut builders = Builders::new(schema, &partitions.data_columns);
            let null = opts.csv.null_marker.clone();
            let delimiter = opts.csv.delimiter as char;
            let map: Vec<usize> = if opts.csv.has_header {
                if !read_record(&mut rdr, &mut record, file)? {
                    return Ok(());
                }
                let header: Vec<String> = record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                builders.positions(&header_names(&header)?, file)?
            } else {
                (0..builders.len()).collect()
            };
            while read_record(&mut rdr, &mut record, file)? {
                let line = record.position().map_or(0, |p| p.line());
                let cells = if record.len() != map.len() {
                    Err(format!(
                        "expected {} fields, found {}",
                        map.len(),
                        record.len()
                    ))
                } else {
                    record
                        .iter()
                        .zip(&map)
                        .map(|(field, &col)| {
                            let text = std::str::from_utf8(field).map_err(|_| {
                                format!("column '{}': invalid UTF-8", builders.name(col))
                            })?;
                            if text.is_empty() || null.as_deref() == Some(text) {
                                Ok((col, Cell::Null))
                            } else {
                                builders.parse_text(col, text).map(|c| (col, c))
                            }
                        })
                        .collect::<std::result::Result<Vec<_>, String>>()
                };
                match cells {
                    Ok(cells) => {
                        builders.append(cells);
                        if builders.rows == opts.batch_rows {
                            let (cols, rows) = builders.finish();
                            emit_batch(cols, rows, sink)?;
                        }
                    }
                    Err(reason) => {
                        let raw = record
                            .iter()
                            .map(|f| String::from_utf8_lossy(f))
                            .collect::<Vec<_>>()
                            .join(&delimiter.to_string());
                        sink(Emit::Bad(BadRow {
                            file: file.display(),
                            line,
                            reason,
                            raw: truncate(raw),
                        }))?;
                    }
                }
            }
            let (cols, rows) = builders.finish();
            emit_batch(cols, rows, sink)
        }
        Format::Json | Format::Ndjson => {
            let mut builders = Builders::new(schema, &partitions.data_columns);
            let mut names = NameCache::default();
            let mut result = Ok(());
            json_values(file, bytes, &mut |line, value| {
                let bad = |reason: String, raw: String| {
                    Emit::Bad(BadRow {
                        file: file.display(),
                        line,
                        reason,
                        raw: truncate(raw),
                    })
                };
                let step = match value {
                    Err((reason, raw)) => sink(bad(reason, raw)),
                    Ok(Record::Object(map)) => {
                        let cells = map
                            .iter()
                            .map(|(k, v)| {
                                let name = names.get(k);
                                let col = builders.index_of(&name).ok_or_else(|| {
                                    format!("field '{k}' is not a column of the table (columns come from the schema or the first records)")
                                })?;
                                builders.parse_json(col, v).map(|c| (col, c))
                            })
                            .collect::<std::result::Result<Vec<_>, String>>();
                        match cells {
                            Ok(cells) => {
                                builders.append(cells);
                                if builders.rows == opts.batch_rows {
                                    let (cols, rows) = builders.finish();
                                    emit_batch(cols, rows, sink)
                                } else {
                                    Ok(())
                                }
                            }
                            Err(reason) => sink(bad(reason, Record::Object(map).to_string())),
                        }
                    }
                    Ok(other) => sink(bad("expected a JSON object".into(), other.to_string())),
                };
                match step {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        result = Err(e);
                        Ok(false)
                    }
                }
            })?;
            result?;
            let (cols, rows) = builders.finish();
            emit_batch(cols, rows, sink)
        }
        Format::Parquet => {
            let f = std::fs::File::open(&file.path).map_err(|source| IngestError::Io {
                path: file.display(),
                source,
            })?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.with_batch_size(opts.batch_rows).build())
                .map_err(|e| {
                    IngestError::Input(format!(
                        "{} is not a readable Parquet file: {e}",
                        file.display()
                    ))
                })?;
            let data_schema = Arc::new(Schema::new(
                partitions
                    .data_columns
                    .iter()
                    .map(|&i| schema.field(i).clone())
                    .collect::<Vec<_>>(),
            ));
            for batch in reader {
                let batch = batch.map_err(|e| {
                    IngestError::Input(format!("cannot read {}: {e}", file.display()))
                })?;
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
                emit_batch(conformed.columns().to_vec(), rows, sink)?;
            }
            bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }
}

fn truncate(mut s: String) -> String {
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

fn csv_reader(
    file: &InputFile,
    opts: &ReadOptions,
    bytes: Arc<AtomicU64>,
) -> Result<csv::Reader<Box<dyn std::io::Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(opts.csv.delimiter)
        .quote(opts.csv.quote)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(file.open(bytes)?))
}

fn read_record(
    rdr: &mut csv::Reader<Box<dyn std::io::Read + Send>>,
    record: &mut csv::ByteRecord,
    file: &InputFile,
) -> Result<bool> {
    rdr.read_byte_record(record).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(_) => IngestError::Input(format!("cannot read {}: {e}", file.display())),
        _ => IngestError::Input(format!("{}: {e}", file.display())),
    })
}

/// Calls `f(line or record number, value)` for each JSON value of an NDJSON file (a line that is
/// not JSON comes as `Err((reason, raw))`) or each element of a JSON array; `f` returns whether
/// to go on.
fn json_values(
    file: &InputFile,
    bytes: Arc<AtomicU64>,
    f: &mut dyn FnMut(u64, std::result::Result<Record, (String, String)>) -> Result<bool>,
) -> Result<()> {
    let reader = BufReader::with_capacity(1 << 20, file.open(bytes)?);
    match file.format {
        Format::Ndjson => {
            let mut reader = reader;
            let mut buf = Vec::new();
            let mut line = 0u64;
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .map_err(|source| IngestError::Io {
                        path: file.display(),
                        source,
                    })?;
                if n == 0 {
                    return Ok(());
                }
                line += 1;
                let text = buf.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                let value = match std::str::from_utf8(text) {
                    Err(_) => Err((
                        "invalid UTF-8".to_string(),
                        String::from_utf8_lossy(text).into_owned(),
                    )),
                    Ok(s) => serde_json::from_str::<Record>(s)
                        .map_err(|e| (format!("invalid JSON: {e}"), s.to_string())),
                };
                if !f(line, value)? {
                    return Ok(());
                }
            }
        }
        _ => {
            let mut outcome: Result<()> = Ok(());
            let mut de = serde_json::Deserializer::from_reader(reader);
            let visit = serde::de::Deserializer::deserialize_seq(
                &mut de,
                Elements {
                    f,
                    outcome: &mut outcome,
                },
            );
            match visit {
                Ok(()) => outcome,
                Err(_) if outcome.is_err() => outcome,
                Err(e) if e.to_string() == STOP => Ok(()),
                Err(e) => Err(IngestError::Input(format!(
                    "{} is not a JSON array of objects: {e} (for one object per line, name the file .ndjson or pass --format ndjson)",
                    file.display()
                ))),
            }
        }
    }
}

const STOP: &str = "basin: stop reading";

struct Elements<'a> {
    f: &'a mut dyn FnMut(u64, std::result::Result<Record, (String, String)>) -> Result<bool>,
    outcome: &'a mut Result<()>,
}

impl<'de> serde::de::Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        use serde::de::Error;
        let mut n = 0u64;
        while let Some(value) = seq.next_element::<Record>()? {
            n += 1;
            match (self.f)(n, Ok(value)) {
                Ok(true) => {}
                Ok(false) => return Err(A::Error::custom(STOP)),
                Err(e) => {
                    *self.outcome = Err(e);
                    return Err(A::Error::custom("stopped"));
                }
            }
        }
        Ok(())
    }
}

/// One JSON record: an object with its keys in file order (columns follow that order), or any
/// other value (which is a bad row).
enum Record {
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Record::Other(v) => write!(f, "{v}"),
            Record::Object(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{}:{v}", Value::String(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Record, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(Record::Object(fields))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Record, A::Error> {
                let v = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Record::Other(v))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Record, E> {
                Ok(Record::Other(Value::Null))
            }
        }
        use serde::Deserialize as _;
        d.deserialize_any(V)
    }
}

#[derive(Default)]
struct NameCache(HashMap<String, String>);

impl NameCache {
    fn get(&mut self, raw: &str) -> String {
        if let Some(n) = self.0.get(raw) {
            return n.clone();
        }
        let n = normalize_column_name(raw);
        self.0.insert(raw.to_string(), n.clone());
        n
    }
}

// ---- partition columns --------------------------------------------------------------------------

/// The constant columns a file contributes through its `name=value` folders.
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

    fn append(&mut self, cells: Vec<(usize, Cell<'_>)>) {
        // Columns the row does not mention are NULL.
        let mut seen = vec![false; self.builders.len()];
        for (col, cell) in cells {
            seen[col] = true;
            self.builders[col].append(cell);
        }
        for (col, seen) in seen.into_iter().enumerate() {
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
