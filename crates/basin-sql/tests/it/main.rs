//! SQL over real Delta tables: reads, writes, time travel, system tables, errors.

mod dml;
mod paths;
mod policy;
mod query;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use basin_catalog::{Catalog, Contract, NewDataset, NewHub};
use basin_core::{DatasetRef, Layer, Name};
use basin_sql::Engine;

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub engine: Engine,
}

/// Hubs `main` and `us`; datasets `main.sales`, `main.crm`, `us.sales`; a few tables.
pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db"))
        .await
        .unwrap();
    for hub in ["main", "us"] {
        let root =
            basin_lake::location_url(&dir.path().join("hubs").join(hub).display().to_string())
                .unwrap();
        catalog
            .create_hub(NewHub {
                name: Name::parse("hub", hub).unwrap(),
                storage_root: root.to_string(),
                description: String::new(),
            })
            .await
            .unwrap();
    }
    for ds in ["sales", "crm", "us.sales"] {
        catalog
            .create_dataset(NewDataset {
                dataset: DatasetRef::parse(ds).unwrap(),
                layer: Layer::Source,
                domain: None,
                owner: None,
                description: String::new(),
                tags: vec![],
                contract: Contract::default(),
            })
            .await
            .unwrap();
    }
    let keys = basin_keys::Keystore::open(&dir.path().join("keys"), None).unwrap();
    let engine = Engine::new(basin_tables::Tables::new(catalog, Some(keys)));
    for sql in [
        "CREATE TABLE crm.customers AS SELECT * FROM (VALUES (1, 'Ada', 'GB'), (2, 'Grace', 'US'), (3, 'Alan', 'GB')) AS v(id, name, country)",
        "CREATE TABLE sales.orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE)",
        "INSERT INTO sales.orders VALUES (10, 1, 5.0), (11, 1, 7.5), (12, 2, 100.0)",
        "CREATE TABLE us.sales.orders AS SELECT 20 AS order_id, 2 AS customer_id, 42.0 AS amount",
    ] {
        engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    Fixture { _dir: dir, engine }
}

/// Rows as `a|b` text, in the order the query returns them.
pub async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let out = engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut lines = Vec::new();
    for b in &out.batches {
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
            lines.push(cells.join("|"));
        }
    }
    lines
}

pub async fn error(engine: &Engine, sql: &str) -> String {
    match engine.execute(sql).await {
        Ok(_) => panic!("expected an error from: {sql}"),
        Err(e) => e.to_string(),
    }
}
