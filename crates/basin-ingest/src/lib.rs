//! Batch ingest: files in, one Delta commit out.
//!
//! Readers for CSV, JSON arrays, NDJSON and Parquet (plain, `.gz` or `.zst`), over many files,
//! globs, directories and hive-style folders, stream Arrow batches in bounded memory. Every row
//! is validated against the schema; rows that fail are never dropped silently: they refuse the
//! load, or, within `--max-bad-rows`, go to the quarantine table `<table>__rejected`.

mod error;
mod infer;
mod inputs;
mod kafka;
mod load;
mod options;
mod postgres;
mod prefix;
mod read;
mod records;

pub use error::IngestError;
pub use infer::normalize_column_name;
pub use inputs::{Compression, InputFile, resolve_inputs};
pub use kafka::{KafkaTopic, MAX_BYTES_PER_RUN};
pub use load::{LoadMode, LoadReport, LoadRequest, Progress, check_load, load};
pub use options::{CsvOptions, Format, ReadOptions, parse_schema};
pub use postgres::{PgExport, PgQuery, check_pg_url, export_pg};
pub use prefix::{Prefix, PrefixFile};
pub use read::{BadRow, Decoded, decode};
pub use records::{DecodedRecords, Framing, RecordsRequest, append_records, decode_records};

/// Result type of this crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
