//! Loads of real files into real Delta tables through the catalog.

mod load;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use basin_catalog::{Catalog, Contract, NewDataset, NewHub};
use basin_core::{DatasetRef, Layer, Name, TableRef};
use basin_ingest::{IngestError, LoadReport, LoadRequest, Progress};
use basin_lake::LakeTable;
use datafusion::prelude::SessionContext;

/// A data dir with hub `main` and dataset `main.raw`.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub catalog: Catalog,
}

impl Hub {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db"))
            .await
            .unwrap();
        let root =
            basin_lake::location_url(&dir.path().join("hubs/main").display().to_string()).unwrap();
        catalog
            .create_hub(NewHub {
                name: Name::parse("hub", "main").unwrap(),
                storage_root: root.to_string(),
                description: String::new(),
            })
            .await
            .unwrap();
        catalog
            .create_dataset(NewDataset {
                dataset: DatasetRef::parse("raw").unwrap(),
                layer: Layer::Source,
                domain: None,
                owner: None,
                description: String::new(),
                tags: vec![],
                contract: Contract::default(),
            })
            .await
            .unwrap();
        Hub { dir, catalog }
    }

    /// Writes a file under the hub's scratch folder and returns its path.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.dir.path().join("in").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    pub fn input_dir(&self) -> String {
        self.dir.path().join("in").display().to_string()
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
        let tables = basin_tables::Tables::new(self.catalog.clone(), None);
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
        let mut out = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            return "null".to_string();
                        }
                        let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                        c.as_any()
                            .downcast_ref::<StringArray>()
                            .unwrap()
                            .value(r)
                            .to_string()
                    })
                    .collect();
                out.push(cells.join("|"));
            }
        }
        out
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every file under a table location (`file://…` URL or path).
pub fn files_under(location: &Path) -> Vec<std::path::PathBuf> {
    let dir = Path::new(location.to_str().unwrap().trim_start_matches("file://"));
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
