//! JSON arrays (`[{…}, {…}]`) and NDJSON (one object per line).
//!
//! The two share this file because they differ only in how records are framed — elements of
//! one array, or lines — which [`json_values`] hides; the record type (an object with its keys
//! in file order), type inference and decoding into the column builders are the same.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::datatypes::DataType;
use serde_json::Value;

use super::chunked::{Chunk, Framer, Framing, Resume, decode_chunks};
use super::{BadRow, Builders, Cell, Decoder, Output, reuse, truncate};
use crate::infer::{infer_value, merge_types, normalize_column_name};
use crate::inputs::InputFile;
use crate::{Format, IngestError, ReadOptions, Result};

/// The decoder of JSON arrays and NDJSON (the file's format says which).
pub(super) struct JsonDecoder;

impl Decoder for JsonDecoder {
    fn infer_columns(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Option<DataType>)>> {
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
        Ok(fields)
    }

    fn decode(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
        bytes: Arc<AtomicU64>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        if file.format == Format::Ndjson && opts.threads > 1 {
            let decode_chunk = |chunk: &mut Chunk, out: &mut Output<'_>| {
                let mut rows = Rows::new(out);
                for (i, text) in chunk.bytes.split(|b| *b == b'\n').enumerate() {
                    if let Some(value) = ndjson_value(text) {
                        rows.add(file, opts, chunk.line + i as u64, value, out)?;
                    }
                }
                rows.finish(out)?;
                Ok(Framing::Exact)
            };
            let start = (Vec::new(), Resume { offset: 0, line: 1 });
            let input = file.open(bytes)?;
            // Lines are always whole records: nothing is left for one thread.
            decode_chunks(file, input, start, LineEnds, opts, decode_chunk, out)?;
            return Ok(());
        }
        let mut rows = Rows::new(out);
        let mut result = Ok(());
        json_values(
            file,
            bytes,
            &mut |line, value| match rows.add(file, opts, line, value, out) {
                Ok(()) => Ok(true),
                Err(e) => {
                    result = Err(e);
                    Ok(false)
                }
            },
        )?;
        result?;
        rows.finish(out)
    }
}

/// NDJSON's record boundaries: line ends.
struct LineEnds;

impl Framer for LineEnds {
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        memchr::memrchr(b'\n', bytes).map(|i| i + 1)
    }

    fn give_up_after(&self) -> Option<usize> {
        None
    }
}

/// The rows of a file (or of a chunk of one) decoded into the column builders.
struct Rows {
    builders: Builders,
    names: NameCache,
    /// The key and column of each position of the last record: records mostly repeat the keys
    /// of the one before, in the same order.
    by_position: Vec<(String, Option<usize>)>,
    /// The cells' buffer, reused from row to row (emptied, so it borrows nothing).
    spare: Vec<(usize, Cell<'static>)>,
}

impl Rows {
    fn new(out: &Output<'_>) -> Self {
        Rows {
            builders: out.builders(),
            names: NameCache::default(),
            by_position: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The column of the field named `key` at `position` of a record.
    fn column(&mut self, position: usize, key: &str) -> Option<usize> {
        if let Some((k, col)) = self.by_position.get(position)
            && k == key
        {
            return *col;
        }
        let col = self.builders.index_of(&self.names.get(key));
        let known = self.by_position.len();
        if position < known {
            self.by_position[position] = (key.to_string(), col);
        } else if position == known {
            self.by_position.push((key.to_string(), col));
        }
        col
    }

    /// Adds the record on `line`, or reports it as a bad row.
    fn add(
        &mut self,
        file: &InputFile,
        opts: &ReadOptions,
        line: u64,
        value: std::result::Result<Record, (String, String)>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let bad = |reason: String, raw: String| BadRow {
            file: file.display(),
            line,
            reason,
            raw: truncate(raw),
        };
        let map = match value {
            Err((reason, raw)) => return out.bad(bad(reason, raw)),
            Ok(Record::Object(map)) => map,
            Ok(other) => return out.bad(bad("expected a JSON object".into(), other.to_string())),
        };
        let mut row: Vec<(usize, Cell<'_>)> = reuse(std::mem::take(&mut self.spare));
        let mut parsed = Ok(());
        for (i, (k, v)) in map.iter().enumerate() {
            let cell = match self.column(i, k) {
                Some(col) if row.iter().any(|(c, _)| *c == col) => {
                    Err(format!("field '{k}' appears twice"))
                }
                Some(col) => self.builders.parse_json(col, v).map(|c| (col, c)),
                None => Err(format!(
                    "field '{k}' is not a column of the table (columns come from the schema or the first records)"
                )),
            };
            match cell {
                Ok(cell) => row.push(cell),
                Err(reason) => {
                    parsed = Err(reason);
                    break;
                }
            }
        }
        if parsed.is_ok() {
            self.builders.append(row.drain(..));
        }
        self.spare = reuse(row);
        match parsed {
            Ok(()) if self.builders.rows == opts.batch_rows => {
                let (cols, rows) = self.builders.finish();
                out.batch(cols, rows)
            }
            Ok(()) => Ok(()),
            Err(reason) => out.bad(bad(reason, Record::Object(map).to_string())),
        }
    }

    /// Hands on the rows not handed on yet.
    fn finish(mut self, out: &mut Output<'_>) -> Result<()> {
        let (cols, rows) = self.builders.finish();
        out.batch(cols, rows)
    }
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
                let Some(value) = ndjson_value(&buf) else {
                    continue;
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

/// The record of an NDJSON line (`None` for a blank one).
fn ndjson_value(line: &[u8]) -> Option<std::result::Result<Record, (String, String)>> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return None;
    }
    Some(match std::str::from_utf8(text) {
        Err(_) => Err((
            "invalid UTF-8".to_string(),
            String::from_utf8_lossy(text).into_owned(),
        )),
        Ok(s) => serde_json::from_str::<Record>(s)
            .map_err(|e| (format!("invalid JSON: {e}"), s.to_string())),
    })
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
