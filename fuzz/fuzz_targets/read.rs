//! What the reader targets share: the input as a file in a temporary directory (on tmpfs where
//! there is one), read as a load into a new table reads it.

use basin_ingest::{Compression, CsvOptions, Format, InputFile, ReadOptions, decode};

pub fn read(format: Format, extension: &str, data: &[u8], csv: CsvOptions) {
    thread_local! {
        static DIR: tempfile::TempDir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
    }
    let path = DIR.with(|d| d.path().join(format!("input.{extension}")));
    std::fs::write(&path, data).unwrap();
    let file = InputFile {
        path,
        format,
        compression: Compression::None,
        partition_values: Vec::new(),
    };
    let options = ReadOptions {
        format: Some(format),
        csv,
        schema: None,
        infer_rows: 100,
        batch_rows: 16,
        threads: 1,
        ..ReadOptions::default()
    };
    // One thread, and many threads with tiny pieces: the same rows, bad rows and errors.
    let one = decode(std::slice::from_ref(&file), &options);
    let many = decode(
        &[file],
        &ReadOptions {
            threads: 3,
            chunk_bytes: 64,
            ..options
        },
    );
    match (one, many) {
        (Ok(one), Ok(many)) => {
            for batch in &one.batches {
                assert_eq!(batch.schema().fields().len(), one.schema.fields().len());
            }
            assert_eq!(one.schema, many.schema);
            assert_eq!(rows(&one), rows(&many));
            assert_eq!(
                format!("{:?}", one.bad_rows),
                format!("{:?}", many.bad_rows)
            );
        }
        (Err(one), Err(many)) => assert_eq!(one.to_string(), many.to_string()),
        (one, many) => panic!("one thread: {:?}; many: {:?}", one.err(), many.err()),
    }
}

/// Each row as a batch of its own, so that batches cut at other places compare equal.
fn rows(decoded: &basin_ingest::Decoded) -> Vec<impl PartialEq + std::fmt::Debug> {
    decoded
        .batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| b.slice(i, 1)))
        .collect()
}
