//! Loads of real files into real Delta tables through the catalog.

mod json;
mod keys;
mod load;
mod parallel;
mod quotes;

use std::ops::Deref;
use std::sync::Arc;

use basin_core::{Layer, TableRef};
use basin_ingest::{IngestError, LoadReport, LoadRequest, Progress};
use basin_lake::LakeTable;
use basin_testkit::DataDir;
pub use basin_testkit::fixtures::files_under;
use datafusion::prelude::SessionContext;

/// `text` written as an input file of `format` in a new temporary directory (kept alive by
/// the returned guard).
pub fn input_file(
    text: &str,
    format: basin_ingest::Format,
) -> (tempfile::TempDir, basin_ingest::InputFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    std::fs::write(&path, text).unwrap();
    let file = basin_ingest::InputFile {
        path,
        format,
        compression: basin_ingest::Compression::None,
        partition_values: vec![],
    };
    (dir, file)
}

/// A data dir with hub `main` and dataset `main.raw`.
pub struct Hub {
    pub data: DataDir,
}

impl Deref for Hub {
    type Target = DataDir;
    fn deref(&self) -> &DataDir {
        &self.data
    }
}

impl Hub {
    pub async fn new() -> Self {
        let data = DataDir::new().await;
        data.hub("main").await;
        data.dataset("raw", Layer::Source).await;
        Hub { data }
    }

    pub async fn load(
        &self,
        table: &str,
        inputs: &[&str],
        tweak: impl FnOnce(&mut LoadRequest),
    ) -> Result<LoadReport, IngestError> {
        let mut req = LoadRequest {
            table: Some(TableRef::parse(table).unwrap()),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        tweak(&mut req);
        let tables = self.data.tables(false);
        let operator = basin_tables::Actor {
            principal: None,
            origin: "test".into(),
        };
        basin_ingest::load(&tables, &operator, req, Arc::new(Progress::default())).await
    }

    pub async fn lake(&self, table: &str) -> LakeTable {
        let t = self
            .catalog
            .require_table(&TableRef::parse(table).unwrap())
            .await
            .unwrap();
        LakeTable::open(&t.location).await.unwrap()
    }

    /// The table's rows as `a|b|c` text, ordered by the given SQL expression.
    pub async fn rows(&self, table: &str, order_by: &str) -> Vec<String> {
        let lake = self.lake(table).await;
        let ctx = SessionContext::new();
        ctx.register_table("t", lake.provider().await.unwrap())
            .unwrap();
        let batches = ctx
            .sql(&format!("SELECT * FROM t ORDER BY {order_by}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        basin_testkit::lines(&batches)
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
