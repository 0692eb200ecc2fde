//! The NDJSON reader (one object per line): any bytes. No panic, no hang.
#![no_main]

use basin_ingest::{CsvOptions, Format};
use libfuzzer_sys::fuzz_target;

#[path = "read.rs"]
mod read;

fuzz_target!(|data: &[u8]| {
    read::read(Format::Ndjson, "ndjson", data, CsvOptions::default());
});
