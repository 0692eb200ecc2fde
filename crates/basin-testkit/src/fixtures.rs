//! A temp data dir with a SQLite catalog, hubs and datasets — the library-level fixture of the
//! catalog, SQL and ingest suites.

use std::path::{Path, PathBuf};

use basin_catalog::{Catalog, Contract, NewDataset, NewHub};
use basin_core::{DatasetRef, Layer, Name};
use basin_keys::Keystore;
use basin_sql::Engine;
use basin_tables::Tables;

/// A temp data dir: `catalog.db` (SQLite), hubs under `hubs/<hub>`, keys under `keys`.
/// Everything is removed when it is dropped.
pub struct DataDir {
    pub dir: tempfile::TempDir,
    pub catalog: Catalog,
}

impl DataDir {
    /// An empty catalog in a fresh temp dir.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db"))
            .await
            .unwrap();
        DataDir { dir, catalog }
    }

    /// A catalog with `hubs` (storage under `hubs/<hub>`) and `datasets` (`hub.dataset` or
    /// `dataset` in hub `main`), all in the `source` layer.
    pub async fn with(hubs: &[&str], datasets: &[&str]) -> Self {
        let data = DataDir::new().await;
        for hub in hubs {
            data.hub(hub).await;
        }
        for dataset in datasets {
            data.dataset(dataset, Layer::Source).await;
        }
        data
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite catalog file.
    pub fn catalog_path(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    /// Creates hub `name` with its storage root under `hubs/<name>`.
    pub async fn hub(&self, name: &str) {
        let root =
            basin_lake::location_url(&self.path().join("hubs").join(name).display().to_string())
                .unwrap();
        self.catalog
            .create_hub(NewHub {
                name: Name::parse("hub", name).unwrap(),
                storage_root: root.to_string(),
                description: String::new(),
            })
            .await
            .unwrap();
    }

    /// Creates dataset `name` (`hub.dataset`, or `dataset` in hub `main`) with no owner, tags or
    /// contract.
    pub async fn dataset(&self, name: &str, layer: Layer) {
        self.catalog
            .create_dataset(NewDataset {
                dataset: DatasetRef::parse(name).unwrap(),
                layer,
                domain: None,
                owner: None,
                description: String::new(),
                tags: vec![],
                contract: Contract::default(),
            })
            .await
            .unwrap();
    }

    /// The keystore under `keys` (created on first use).
    pub fn keys(&self) -> Keystore {
        Keystore::open(&self.path().join("keys"), None).unwrap()
    }

    /// The write path over this catalog; with the keystore when `keys` is true.
    pub fn tables(&self, keys: bool) -> Tables {
        Tables::new(self.catalog.clone(), keys.then(|| self.keys()))
    }

    /// A SQL engine over this catalog, with the keystore.
    pub fn engine(&self) -> Engine {
        Engine::new(self.tables(true))
    }

    /// Writes `content` to `in/<name>` under the data dir and returns its path.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.path().join("in").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// The folder [`DataDir::file`] writes to, as text.
    pub fn input_dir(&self) -> String {
        self.path().join("in").display().to_string()
    }
}

/// Every file under `dir` (a path or a `file://` URL), recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let dir = Path::new(dir.to_str().unwrap().trim_start_matches("file://"));
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

/// A CSV with columns `id` and `column`: `rows` rows from id `first_id`, each value `words` × 16
/// random hexadecimal digits — text that compresses poorly, so its Parquet file is about as large.
pub fn incompressible_csv(column: &str, words: usize, rows: usize, first_id: usize) -> String {
    let mut out = format!("id,{column}\n");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ first_id as u64;
    for id in first_id..first_id + rows {
        let mut value = String::new();
        for _ in 0..words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value += &format!("{x:016x}");
        }
        out += &format!("{id},{value}\n");
    }
    out
}
