//! CSV: delimited text with an optional header line; every field is text, parsed to the column's
//! type.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::datatypes::DataType;

use super::{BadRow, Cell, Decoder, Output, truncate};
use crate::infer::{header_names, infer_value, merge_types};
use crate::inputs::InputFile;
use crate::{IngestError, ReadOptions, Result};

/// The CSV decoder.
pub(super) struct CsvDecoder;

impl Decoder for CsvDecoder {
    fn infer_columns(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Option<DataType>)>> {
        let bytes = Arc::new(AtomicU64::new(0));
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
        Ok(names.into_iter().zip(types).collect())
    }

    fn decode(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
        bytes: Arc<AtomicU64>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let mut rdr = csv_reader(file, opts, bytes)?;
        let mut record = csv::ByteRecord::new();
        let mut builders = out.builders();
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
                        out.batch(cols, rows)?;
                    }
                }
                Err(reason) => {
                    let raw = record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f))
                        .collect::<Vec<_>>()
                        .join(&delimiter.to_string());
                    out.bad(BadRow {
                        file: file.display(),
                        line,
                        reason,
                        raw: truncate(raw),
                    })?;
                }
            }
        }
        let (cols, rows) = builders.finish();
        out.batch(cols, rows)
    }
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
