//! The CSV reader: any bytes, with the delimiter, quote and header options the first byte picks.
//! No panic, no hang; bad rows are reported, not fatal.
#![no_main]

use basin_ingest::{CsvOptions, Format};
use libfuzzer_sys::fuzz_target;

#[path = "read.rs"]
mod read;

fuzz_target!(|data: &[u8]| {
    let Some((&options, data)) = data.split_first() else {
        return;
    };
    let csv = CsvOptions {
        delimiter: [b',', b';', b'\t', b'|'][(options & 3) as usize],
        quote: if options & 4 == 0 { b'"' } else { b'\'' },
        has_header: options & 8 == 0,
        null_marker: (options & 16 != 0).then(|| "NULL".to_string()),
    };
    read::read(Format::Csv, "csv", data, csv);
});
