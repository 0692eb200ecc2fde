//! SQL over real Delta tables: reads, writes, time travel, system tables, errors.

mod browse;
mod correctness;
mod ddl;
mod differential;
mod dml;
mod keys;
mod paths;
mod policy;
mod query;

use basin_sql::Engine;
use basin_testkit::DataDir;
pub use basin_testkit::{error, rows};

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub engine: Engine,
}

/// Hubs `main` and `us`; datasets `main.sales`, `main.crm`, `us.sales`; a few tables.
pub async fn fixture() -> Fixture {
    let data = DataDir::with(&["main", "us"], &["sales", "crm", "us.sales"]).await;
    let engine = data.engine();
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
    Fixture {
        _dir: data.dir,
        engine,
    }
}
