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
    };
    if let Ok(decoded) = decode(&[file], &options) {
        for batch in &decoded.batches {
            assert_eq!(batch.schema().fields().len(), decoded.schema.fields().len());
        }
    }
}
