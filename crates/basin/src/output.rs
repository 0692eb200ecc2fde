//! Printing results as a table, CSV or JSON. JSON keeps every field, a missing value as `null`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;

use crate::cli::OutputFormat;

/// Prints batches to stdout in the chosen format.
pub fn print(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let empty = RecordBatch::new_empty(schema.clone());
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(&[empty])?
                )?;
            } else {
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(batches)?
                )?;
            }
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                writer.write(b).context("writing CSV")?;
            }
        }
        OutputFormat::Json => {
            writeln!(out, "{}", Value::Array(json_rows(batches)?))?;
        }
    }
    Ok(())
}

/// Rows as JSON objects, every column present (NULL as `null`).
pub fn json_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<Value>> {
    let mut buffer = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(&mut buffer);
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).context("writing JSON")?;
    writer.finish()?;
    drop(writer);
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buffer).context("reading back JSON rows")
}

/// Prints records (each serialising to a JSON object): as JSON, whole and with every field;
/// as a table or CSV, the fields `columns` in that order, each as text.
pub fn print_records<T: serde::Serialize>(
    format: OutputFormat,
    columns: &[&str],
    records: &[T],
) -> anyhow::Result<()> {
    let records: Vec<Value> = records
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns
        .iter()
        .map(|c| {
            let values: StringArray = records.iter().map(|r| text(&r[*c])).collect();
            Arc::new(values) as _
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    print(format, &schema, &[batch])
}

/// A JSON value as one cell: lists joined by ", ", maps as `key=value` pairs, null as NULL.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| text(i).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Value::Object(map) => Some(
            map.iter()
                .map(|(k, v)| format!("{k}={}", text(v).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}
