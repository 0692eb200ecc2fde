use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::{IngestError, Result};

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    Parquet,
}

impl FromStr for Format {
    type Err = IngestError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "parquet" | "pq" => Ok(Format::Parquet),
            other => Err(IngestError::Input(format!(
                "unknown format '{other}': use csv, json, ndjson or parquet"
            ))),
        }
    }
}

/// How CSV files are written.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub quote: u8,
    pub has_header: bool,
    /// The text that stands for NULL (besides an empty field in a non-text column).
    pub null_marker: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: b'"',
            has_header: true,
            null_marker: None,
        }
    }
}

/// How input files are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The format of every file; by default taken from each file's extension.
    pub format: Option<Format>,
    pub csv: CsvOptions,
    /// The schema to read with, instead of inferring one.
    pub schema: Option<SchemaRef>,
    /// How many records of each file type inference looks at.
    pub infer_rows: usize,
    /// Rows per Arrow batch.
    pub batch_rows: usize,
    /// How many threads decode one CSV or NDJSON file (1: one thread reads it all).
    pub threads: usize,
    /// About how many bytes of a file one thread decodes at a time.
    pub chunk_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            csv: CsvOptions::default(),
            schema: None,
            infer_rows: 10_000,
            batch_rows: 32 * 1024,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 4 << 20,
        }
    }
}

/// Parses a schema written as `name TYPE, name TYPE, …` (types: BOOLEAN, INT, BIGINT, FLOAT,
/// DOUBLE, DECIMAL(p,s), VARCHAR/STRING/TEXT, DATE, TIMESTAMP).
pub fn parse_schema(text: &str) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    for part in split_top_level(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, ty) = part.split_once(char::is_whitespace).ok_or_else(|| {
            IngestError::Input(format!(
                "schema entry '{part}' has no type: write it as 'name TYPE', e.g. 'id BIGINT'"
            ))
        })?;
        let name = basin_core::Name::parse("column", name.trim())?;
        if fields.iter().any(|f: &Field| f.name() == name.as_str()) {
            return Err(IngestError::Input(format!(
                "schema names column '{name}' twice"
            )));
        }
        fields.push(Field::new(name.as_str(), parse_type(ty.trim())?, true));
    }
    if fields.is_empty() {
        return Err(IngestError::Input(
            "the schema is empty: write it as 'name TYPE, name TYPE'".into(),
        ));
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn parse_type(ty: &str) -> Result<DataType> {
    let upper = ty.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "INT" | "INTEGER" | "INT4" => DataType::Int32,
        "BIGINT" | "LONG" | "INT8" => DataType::Int64,
        "SMALLINT" | "SHORT" => DataType::Int16,
        "FLOAT" | "REAL" | "FLOAT4" => DataType::Float32,
        "DOUBLE" | "FLOAT8" => DataType::Float64,
        "VARCHAR" | "STRING" | "TEXT" => DataType::Utf8,
        "DATE" => DataType::Date32,
        "TIMESTAMP" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(basin_lake::types::UTC.into()))
        }
        d if d.starts_with("DECIMAL(") && d.ends_with(')') => {
            let inner = &d["DECIMAL(".len()..d.len() - 1];
            let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
            let p: u8 = p.trim().parse().map_err(|_| bad_type(ty))?;
            let s: i8 = s.trim().parse().map_err(|_| bad_type(ty))?;
            if p == 0 || p > 38 || s < 0 || s as u8 > p {
                return Err(bad_type(ty));
            }
            DataType::Decimal128(p, s)
        }
        _ => return Err(bad_type(ty)),
    })
}

fn bad_type(ty: &str) -> IngestError {
    IngestError::Input(format!(
        "unknown column type '{ty}': use BOOLEAN, INT, BIGINT, SMALLINT, FLOAT, DOUBLE, DECIMAL(p,s) (p ≤ 38), VARCHAR, DATE or TIMESTAMP"
    ))
}

/// Splits on commas that are not inside parentheses (so `DECIMAL(10,2)` stays whole).
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemas() {
        let s = parse_schema("id BIGINT, price DECIMAL(10,2), name varchar, at TIMESTAMP").unwrap();
        assert_eq!(s.fields().len(), 4);
        assert_eq!(s.field(1).data_type(), &DataType::Decimal128(10, 2));
        assert!(
            parse_schema("id")
                .unwrap_err()
                .to_string()
                .contains("no type")
        );
        assert!(
            parse_schema("id BLOB")
                .unwrap_err()
                .to_string()
                .contains("unknown column type 'BLOB'")
        );
        assert!(
            parse_schema("Id BIGINT")
                .unwrap_err()
                .to_string()
                .contains("invalid column name")
        );
    }
}
