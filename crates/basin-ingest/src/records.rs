//! Streamed records into a table: a request's NDJSON or JSON array decoded against the table's
//! schema (nested objects and arrays into struct and list columns), each record checked on its
//! own, unknown fields handled by the table's policy, and the rows handed to the write path's
//! stream ([`Tables::accept_records`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use basin_catalog::UnknownFields;
use basin_core::TableRef;
use basin_lake::LakeTable;
use basin_tables::{Ack, Actor, CommitPolicy, Recall, Refused, Tables, Write, WriteNeeds};

use crate::load::Quarantine;
use crate::read::{BadRow, truncate};
use crate::{IngestError, Result};

/// How a request frames its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    Array,
}

/// A request of records for one table.
pub struct RecordsRequest<'a> {
    pub table: TableRef,
    pub body: &'a [u8],
    pub framing: Framing,
    /// The client's `Idempotency-Key`: a request repeated with it is answered, not taken again.
    pub idempotency_key: Option<String>,
}

/// A request's records, decoded.
#[derive(Debug)]
pub struct DecodedRecords {
    /// The records taken, in the table's schema (plus `new_columns`).
    pub rows: RecordBatch,
    /// The records refused, with why and their text.
    pub refused: Vec<BadRow>,
    /// Columns the records bring that the table lacks (only with [`UnknownFields::Evolve`]).
    pub new_columns: Vec<Field>,
}

/// Takes a request of records into its table for `actor` (see [`Tables::accept_records`]).
/// Records that do not fit are refused one by one and reported (and, under the table's
/// `quarantine` policy, kept in `<table>__rejected`); a request none of whose records fit is
/// refused whole, and nothing is stored.
pub async fn append_records(
    tables: &Tables,
    actor: &Actor,
    request: RecordsRequest<'_>,
) -> Result<Ack> {
    let t = &request.table;
    let needs = WriteNeeds::records(Vec::new());
    tables.check(actor, t, &needs).await?;
    let claim = match tables
        .recall_records(actor, t, request.idempotency_key.as_deref())
        .await?
    {
        Recall::Answered(ack) => return Ok(ack),
        Recall::Go(claim) => claim,
    };
    let catalog = tables.catalog();
    let settings = catalog.stream_settings(t).await?;
    let entry = catalog
        .table(t)
        .await?
        .ok_or_else(|| IngestError::Input(format!("table '{t}' not found")))?;
    let schema = LakeTable::open(&entry.location).await?.schema()?;
    let body = request.body.to_vec();
    let (framing, policy) = (request.framing, settings.unknown_fields);
    let decoded =
        tokio::task::spawn_blocking(move || decode_records(&body, framing, schema, policy))
            .await
            .map_err(|e| IngestError::Input(format!("decoding records failed: {e}")))??;
    let operator = Actor {
        principal: None,
        origin: actor.origin.clone(),
    };
    if !decoded.new_columns.is_empty() {
        // The table's owner chose `evolve`: the columns are added on the table's behalf.
        let columns = decoded
            .new_columns
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        tables
            .commit(&operator, t, Write::AddColumns { columns })
            .await?;
    }
    if settings.unknown_fields == UnknownFields::Quarantine && !decoded.refused.is_empty() {
        let quarantine = Quarantine::new(
            tables.clone(),
            actor.clone(),
            t,
            crate::load::generated_load_id(),
        )?;
        quarantine.write(decoded.refused.clone()).await?;
    }
    let rows = match &settings.partition_time_field {
        Some(field) => with_time_parts(decoded.rows, field)?,
        None => decoded.rows,
    };
    let refused: Vec<Refused> = decoded
        .refused
        .iter()
        .map(|r| Refused {
            index: r.line,
            reason: r.reason.clone(),
        })
        .collect();
    if rows.num_rows() == 0 {
        return Err(IngestError::Input(match refused.first() {
            Some(r) => format!(
                "no record of the request was taken ({} refused); the first, record {}: {}",
                refused.len(),
                r.index,
                r.reason
            ),
            None => "the request holds no records: send NDJSON (one JSON object per line) or a JSON array of objects".into(),
        }));
    }
    let policy = CommitPolicy {
        max_age: std::time::Duration::from_millis(settings.max_age_ms),
        max_bytes: settings.max_bytes as usize,
    };
    Ok(tables
        .accept_records(actor, t, rows, refused, policy, claim)
        .await?)
}

/// Fills the columns `year`, `month`, `day` and `hour` that `rows` has from its timestamp
/// column `field` (UTC), so that a stream lands in time partitions whatever the records say.
fn with_time_parts(rows: RecordBatch, field: &str) -> Result<RecordBatch> {
    use arrow::compute::kernels::temporal::{DatePart, date_part};
    let schema = rows.schema();
    let time = schema
        .index_of(field)
        .ok()
        .map(|i| rows.column(i))
        .filter(|c| matches!(c.data_type(), arrow::datatypes::DataType::Timestamp(..)))
        .ok_or_else(|| {
            IngestError::Input(format!(
                "the table's partition_time_field '{field}' is not one of its TIMESTAMP columns; fix the table's stream settings"
            ))
        })?;
    let mut columns = rows.columns().to_vec();
    let parts = [
        ("year", DatePart::Year),
        ("month", DatePart::Month),
        ("day", DatePart::Day),
        ("hour", DatePart::Hour),
    ];
    for (name, part) in parts {
        if let Ok(i) = schema.index_of(name) {
            let values = date_part(time, part)
                .and_then(|v| arrow::compute::cast(&v, schema.field(i).data_type()))
                .map_err(|e| {
                    IngestError::Input(format!("filling column '{name}' from '{field}': {e}"))
                })?;
            columns[i] = values;
        }
    }
    RecordBatch::try_new(schema, columns)
        .map_err(|e| IngestError::Input(format!("filling time partitions from '{field}': {e}")))
}

/// Decodes a request's records against `schema`: each record must be a JSON object whose
/// fields are columns (nested objects and arrays go into struct and list columns) with values
/// of their types; a record that is not is refused with why. Under [`UnknownFields::Evolve`],
/// fields that are not columns become new columns, typed from their values.
pub fn decode_records(
    body: &[u8],
    framing: Framing,
    schema: SchemaRef,
    unknown: UnknownFields,
) -> Result<DecodedRecords> {
    let records = split(body, framing)?;
    let mut refused = Vec::new();
    let mut texts: Vec<(u64, &str)> = Vec::with_capacity(records.len());
    for (index, bytes) in &records {
        match std::str::from_utf8(bytes) {
            Ok(text) => texts.push((*index, text)),
            Err(e) => refused.push(bad(
                *index,
                format!("invalid UTF-8 ({e})"),
                &String::from_utf8_lossy(bytes),
            )),
        }
    }
    let (schema, new_columns) = match unknown {
        UnknownFields::Evolve => with_new_columns(&schema, &texts)?,
        _ => (schema, Vec::new()),
    };
    // All records at once; when that fails, each alone, to tell the good from the bad.
    let rows = match decode_all(&schema, texts.iter().map(|(_, t)| *t), texts.len()) {
        Ok(rows) if rows.num_rows() == texts.len() => rows,
        _ => {
            let mut taken = Vec::new();
            for (index, text) in &texts {
                match decode_all(&schema, std::iter::once(*text), 1) {
                    Ok(rows) if rows.num_rows() == 1 => taken.push(rows),
                    Ok(_) => refused.push(bad(*index, "expected one JSON object".into(), text)),
                    Err(e) => refused.push(bad(*index, reason(&e), text)),
                }
            }
            refused.sort_by_key(|r| r.line);
            arrow::compute::concat_batches(&schema, &taken)
                .map_err(|e| IngestError::Input(format!("combining records: {e}")))?
        }
    };
    Ok(DecodedRecords {
        rows,
        refused,
        new_columns,
    })
}

fn bad(index: u64, reason: String, raw: &str) -> BadRow {
    BadRow {
        file: "records".into(),
        line: index,
        reason,
        raw: truncate(raw.to_string()),
    }
}

/// The reason of a decoding error, as a user reads it.
fn reason(e: &arrow::error::ArrowError) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("Json error: ").unwrap_or(&text);
    let text = text
        .strip_prefix("Invalid argument error: ")
        .unwrap_or(text);
    if let Some(column) = text
        .strip_prefix("column '")
        .and_then(|r| r.split('\'').next())
        && text.contains("missing from schema")
    {
        return format!(
            "field '{column}' is not a column of the table (its unknown-fields policy is reject)"
        );
    }
    text.to_string()
}

/// The records of a body, each with its index (from 0): non-empty lines, or array elements.
fn split(body: &[u8], framing: Framing) -> Result<Vec<(u64, std::borrow::Cow<'_, [u8]>)>> {
    match framing {
        Framing::Ndjson => Ok(body
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| (i as u64, std::borrow::Cow::Borrowed(l)))
            .collect()),
        Framing::Array => {
            let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
                IngestError::Input(format!(
                    "the body is not a JSON array of records: {e} (for one record per line, send Content-Type: application/x-ndjson)"
                ))
            })?;
            Ok(values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        i as u64,
                        std::borrow::Cow::Owned(v.to_string().into_bytes()),
                    )
                })
                .collect())
        }
    }
}

/// Decodes records (JSON texts) into one batch of `schema`, strictly: a field that is not a
/// column is an error.
fn decode_all<'a>(
    schema: &SchemaRef,
    texts: impl Iterator<Item = &'a str>,
    count: usize,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .with_batch_size(count.max(1))
        .build_decoder()?;
    let mut batches = Vec::new();
    for text in texts {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let read = decoder.decode(rest)?;
            if read == 0 {
                batches.extend(decoder.flush()?);
            }
            rest = &rest[read..];
        }
        // Records are separated, so that two of them never read as one.
        decoder.decode(b"\n")?;
    }
    batches.extend(decoder.flush()?);
    arrow::compute::concat_batches(schema, &batches)
}

/// `schema` with the fields of records that are not columns added (nullable, typed from the
/// values: nested objects as structs, arrays as lists), and those new fields.
fn with_new_columns(schema: &SchemaRef, texts: &[(u64, &str)]) -> Result<(SchemaRef, Vec<Field>)> {
    let mut unknown: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for (_, text) in texts {
        let Ok(serde_json::Value::Object(record)) = serde_json::from_str::<serde_json::Value>(text)
        else {
            continue; // refused when decoded
        };
        let extra: serde_json::Map<_, _> = record
            .into_iter()
            .filter(|(k, _)| schema.field_with_name(k).is_err())
            .collect();
        if !extra.is_empty() {
            unknown.push(extra);
        }
    }
    if unknown.is_empty() {
        return Ok((schema.clone(), Vec::new()));
    }
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(
        unknown
            .into_iter()
            .map(|m| Ok(serde_json::Value::Object(m))),
    )
    .map_err(|e| IngestError::Input(format!("cannot type the records' new fields: {e}")))?;
    let mut new_columns = Vec::new();
    for f in inferred.fields() {
        basin_core::Name::parse("column", f.name()).map_err(|e| {
            IngestError::Input(format!("a record's new field cannot become a column: {e}"))
        })?;
        new_columns.push(f.as_ref().clone().with_nullable(true));
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(new_columns.iter().cloned());
    Ok((Arc::new(Schema::new(fields)), new_columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "pos",
                DataType::Struct(
                    vec![
                        Field::new("lat", DataType::Float64, true),
                        Field::new("lon", DataType::Float64, true),
                    ]
                    .into(),
                ),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]))
    }

    #[test]
    fn nested_records_go_into_struct_and_list_columns_and_bad_ones_are_refused_one_by_one() {
        let body = br#"{"id": 1, "name": "a", "pos": {"lat": 1.5, "lon": 2.5}, "tags": ["x", "y"]}
{"id": "two"}
{"id": 3, "extra": true}
{"name": "no id"}
{"id": 5
{"id": 6}
"#;
        let d = decode_records(body, Framing::Ndjson, schema(), UnknownFields::Reject).unwrap();
        assert_eq!(d.rows.num_rows(), 2, "{:?}", d.refused);
        let indexes: Vec<u64> = d.refused.iter().map(|r| r.line).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4]);
        assert!(
            d.refused[1].reason.contains("'extra' is not a column"),
            "{}",
            d.refused[1].reason
        );
        let pretty = arrow::util::pretty::pretty_format_batches(&[d.rows])
            .unwrap()
            .to_string();
        assert!(
            pretty.contains("{lat: 1.5, lon: 2.5}") && pretty.contains("[x, y]"),
            "{pretty}"
        );
    }

    #[test]
    fn evolving_records_bring_typed_new_columns() {
        let body = br#"[{"id": 1, "speed": 12.5, "meta": {"fw": "1.2"}}, {"id": 2, "speed": 3}]"#;
        let d = decode_records(body, Framing::Array, schema(), UnknownFields::Evolve).unwrap();
        assert_eq!(d.rows.num_rows(), 2);
        let names: Vec<&str> = d.new_columns.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["meta", "speed"]);
        assert_eq!(d.new_columns[1].data_type(), &DataType::Float64);
        assert!(matches!(d.new_columns[0].data_type(), DataType::Struct(_)));
    }

    #[test]
    fn time_partitions_come_from_the_records_timestamp() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("year", DataType::Int32, true),
            Field::new("day", DataType::Utf8, true),
        ]));
        let body = br#"{"ts": "2026-11-26T05:30:00"}
{"ts": "2025-01-02T23:00:00", "year": 1999}
"#;
        let d = decode_records(body, Framing::Ndjson, schema, UnknownFields::Reject).unwrap();
        let rows = with_time_parts(d.rows, "ts").unwrap();
        let pretty = arrow::util::pretty::pretty_format_batches(&[rows])
            .unwrap()
            .to_string();
        assert!(
            pretty.contains("| 2026 | 26  |") && pretty.contains("| 2025 | 2   |"),
            "{pretty}"
        );
        let e = with_time_parts(
            RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
                "day",
                DataType::Utf8,
                true,
            )]))),
            "ts",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("not one of its TIMESTAMP columns"),
            "{e}"
        );
    }

    #[test]
    fn invalid_utf8_and_a_broken_array_are_clear() {
        let d = decode_records(
            b"{\"id\": 1}\n{\"name\": \"\xff\"}\n",
            Framing::Ndjson,
            schema(),
            UnknownFields::Reject,
        )
        .unwrap();
        assert_eq!(d.rows.num_rows(), 1);
        assert!(
            d.refused[0].reason.contains("invalid UTF-8"),
            "{}",
            d.refused[0].reason
        );
        let e = decode_records(
            b"[{\"id\": 1},",
            Framing::Array,
            schema(),
            UnknownFields::Reject,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a JSON array of records"), "{e}");
    }
}
