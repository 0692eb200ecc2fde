//! The JSON reader (an array of objects): any bytes. No panic, no hang.
#![no_main]

use basin_ingest::{CsvOptions, Format};
use libfuzzer_sys::fuzz_target;

#[path = "read.rs"]
mod read;

fuzz_target!(|data: &[u8]| {
    read::read(Format::Json, "json", data, CsvOptions::default());
});
