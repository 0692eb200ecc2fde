//! DDL through the one write path: DROP TABLE, TRUNCATE, CREATE OR REPLACE TABLE, ALTER TABLE
//! RENAME / DROP COLUMN and PARTITIONED BY, each governed and leaving a refused change unmade.

use std::collections::BTreeMap;

use basin_catalog::access::{RowFilter, Securable};
use basin_core::TableRef;
use basin_sql::Engine;
use basin_tables::Write;

use crate::{error, fixture, rows};

/// A user with the grants `grants` give it (run by the operator) and `attributes`.
async fn user(engine: &Engine, name: &str, grants: &[&str], attributes: &[(&str, &str)]) -> Engine {
    let catalog = engine.catalog();
    let attributes: BTreeMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    catalog.create_user(name, None, &attributes).await.unwrap();
    for g in grants {
        engine
            .execute(&format!("{g} TO {name}"))
            .await
            .unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let snapshot = catalog.access_snapshot().await.unwrap();
    engine.as_principal(snapshot.principal(name, &[]))
}

async fn row_filter(engine: &Engine, table: &str, grantee: &str, expression: &str) {
    engine
        .catalog()
        .set_row_filter(&RowFilter {
            table: TableRef::parse(table).unwrap(),
            grantee: grantee.into(),
            expression: expression.into(),
        })
        .await
        .unwrap();
}

async fn location(engine: &Engine, table: &str) -> String {
    let t = TableRef::parse(table).unwrap();
    engine.catalog().require_table(&t).await.unwrap().location
}

/// The local directory of a table.
async fn directory(engine: &Engine, table: &str) -> std::path::PathBuf {
    basin_lake::location_url(&location(engine, table).await)
        .unwrap()
        .to_file_path()
        .unwrap()
}

const CUSTOMERS: &str = "SELECT id, name, country FROM crm.customers ORDER BY id";

#[tokio::test]
async fn drop_table_needs_manage_and_removes_everything() {
    let f = fixture().await;
    let e = &f.engine;
    let reader = user(e, "reader", &["GRANT SELECT ON TABLE crm.customers"], &[]).await;
    let stranger = user(e, "stranger", &["GRANT SELECT ON TABLE sales.orders"], &[]).await;
    row_filter(e, "crm.customers", "reader", "country = 'GB'").await;
    let dir = directory(e, "crm.customers").await;
    assert!(dir.join("_delta_log").is_dir(), "{dir:?}");

    // SELECT is not enough; a table one cannot see answers like a missing one.
    let err = error(&reader, "DROP TABLE crm.customers").await;
    assert!(
        err.contains("permission denied") && err.contains("MANAGE"),
        "{err}"
    );
    let hidden = error(&stranger, "DROP TABLE crm.customers").await;
    let missing = error(&stranger, "DROP TABLE crm.nothing_here").await;
    assert_eq!(
        hidden.replace("customers", "X"),
        missing.replace("nothing_here", "X"),
        "hidden looks missing"
    );
    assert_eq!(
        rows(&stranger, "DROP TABLE IF EXISTS crm.customers").await,
        ["drop table|0|-1"]
    );
    assert_eq!(rows(e, CUSTOMERS).await.len(), 3, "nothing was dropped");

    assert_eq!(
        rows(e, "DROP TABLE crm.customers").await,
        ["drop table|1|-1"]
    );
    assert!(!dir.exists(), "files removed: {dir:?}");
    let err = error(e, "SELECT * FROM crm.customers").await;
    assert!(err.contains("not found"), "{err}");
    let catalog = e.catalog();
    let object = Securable::table(&TableRef::parse("crm.customers").unwrap());
    assert!(
        !catalog
            .grants()
            .await
            .unwrap()
            .iter()
            .any(|g| g.object == object)
    );
    assert!(catalog.row_filters().await.unwrap().is_empty());
    let audit = catalog.audit_events(None, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "drop" && a.outcome == "ok")
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "drop" && a.outcome == "denied")
    );
    // A new table of the same name starts with nothing of the old one.
    rows(e, "CREATE TABLE crm.customers AS SELECT 1 AS id").await;
    assert_eq!(rows(e, "SELECT id FROM crm.customers").await, ["1"]);
    let err = error(&reader, "SELECT id FROM crm.customers").await;
    assert!(err.contains("not found"), "old grants are gone: {err}");
    assert_eq!(
        rows(e, "DROP TABLE IF EXISTS crm.nothing_here").await,
        ["drop table|0|-1"]
    );
}

#[tokio::test]
async fn truncate_is_a_new_version_and_needs_a_full_view() {
    let f = fixture().await;
    let e = &f.engine;
    let filtered = user(
        e,
        "eve",
        &["GRANT SELECT, MODIFY ON TABLE crm.customers"],
        &[],
    )
    .await;
    row_filter(e, "crm.customers", "eve", "country = 'GB'").await;
    let reader = user(e, "reader", &["GRANT SELECT ON TABLE crm.customers"], &[]).await;
    for (who, expect) in [(&filtered, "rows you cannot see"), (&reader, "MODIFY")] {
        let err = error(who, "TRUNCATE TABLE crm.customers").await;
        assert!(
            err.contains("permission denied") && err.contains(expect),
            "{err}"
        );
    }
    assert_eq!(
        rows(e, CUSTOMERS).await.len(),
        3,
        "a refused truncate changes nothing"
    );

    assert_eq!(rows(e, "TRUNCATE crm.customers").await, ["truncate|3|1"]);
    let history = rows(
        e,
        "SELECT parameters FROM system.history WHERE table_name = 'customers' AND version = 1",
    )
    .await;
    assert!(
        history[0].contains("\"basin.operation\":\"truncate\""),
        "{history:?}"
    );
    assert!(rows(e, CUSTOMERS).await.is_empty());
    assert_eq!(
        rows(e, "SELECT count(*) FROM crm.customers VERSION AS OF 0").await,
        ["3"],
        "time travel reads the rows before the truncate"
    );
    rows(e, "INSERT INTO crm.customers VALUES (4, 'Bo', 'FR')").await;
    assert_eq!(rows(e, CUSTOMERS).await, ["4|Bo|FR"]);
}

#[tokio::test]
async fn create_or_replace_table_replaces_schema_and_rows_in_one_commit() {
    let f = fixture().await;
    let e = &f.engine;
    tag_pii(e, "crm.customers", "name").await;
    let reader = user(
        e,
        "reader",
        &["GRANT SELECT, MODIFY ON TABLE crm.customers"],
        &[],
    )
    .await;
    let err = error(
        &reader,
        "CREATE OR REPLACE TABLE crm.customers AS SELECT 1 AS id",
    )
    .await;
    assert!(err.contains("permission denied"), "{err}");

    assert_eq!(
        rows(
            e,
            "CREATE OR REPLACE TABLE crm.customers PARTITIONED BY (country) AS SELECT id, name, country, id * 10 AS score FROM crm.customers WHERE id < 3",
        )
        .await,
        ["replace table|2|2"]
    );
    assert_eq!(
        rows(e, "SELECT id, score FROM crm.customers ORDER BY id").await,
        ["1|10", "2|20"]
    );
    // The reader keeps its grant and still sees tokens: the PII column stays encrypted.
    let names = rows(&reader, "SELECT name FROM crm.customers ORDER BY id").await;
    assert!(names.iter().all(|n| n.starts_with("enc:v")), "{names:?}");
    let raw = basin_lake::LakeTable::open(&location(e, "crm.customers").await)
        .await
        .unwrap();
    assert_eq!(raw.partition_columns().unwrap(), ["country"]);
    // Old versions keep their schema.
    assert_eq!(
        rows(e, "SELECT count(*) FROM crm.customers VERSION AS OF 1").await,
        ["3"]
    );

    // With columns: an empty table of the new shape, with its key.
    assert_eq!(
        rows(
            e,
            "CREATE OR REPLACE TABLE sales.orders (order_id BIGINT, note VARCHAR, PRIMARY KEY (order_id))",
        )
        .await,
        ["replace table|0|2"]
    );
    assert!(
        rows(e, "SELECT order_id, note FROM sales.orders")
            .await
            .is_empty()
    );
    let entry = e
        .catalog()
        .require_table(&TableRef::parse("sales.orders").unwrap())
        .await
        .unwrap();
    assert_eq!(entry.primary_key, ["order_id"]);
    let err = error(e, "SELECT amount FROM sales.orders").await;
    assert!(err.contains("amount"), "{err}");
    // A new name just creates the table.
    rows(e, "CREATE OR REPLACE TABLE sales.fresh AS SELECT 1 AS x").await;
    assert_eq!(rows(e, "SELECT x FROM sales.fresh").await, ["1"]);
}

#[tokio::test]
async fn rename_and_drop_column_carry_the_catalog_along() {
    let f = fixture().await;
    let e = &f.engine;
    let eve = user(
        e,
        "eve",
        &["GRANT SELECT ON TABLE crm.customers"],
        &[("country", "GB")],
    )
    .await;
    row_filter(
        e,
        "crm.customers",
        "eve",
        "country = user_attribute('country')",
    )
    .await;
    let reader = user(
        e,
        "reader",
        &["GRANT SELECT, MODIFY ON TABLE sales.orders"],
        &[],
    )
    .await;
    let err = error(
        &reader,
        "ALTER TABLE sales.orders RENAME COLUMN amount TO total",
    )
    .await;
    assert!(
        err.contains("permission denied") && err.contains("MANAGE"),
        "{err}"
    );

    // A rename: the row filter, the key and the rows follow.
    rows(
        e,
        "ALTER TABLE crm.customers RENAME COLUMN country TO region",
    )
    .await;
    assert_eq!(
        rows(&eve, "SELECT id, region FROM crm.customers ORDER BY id").await,
        ["1|GB", "3|GB"]
    );
    let filters = e.catalog().row_filters().await.unwrap();
    assert_eq!(filters[0].expression, "region = user_attribute('country')");
    rows(e, "ALTER TABLE sales.orders RENAME COLUMN order_id TO id").await;
    let entry = e
        .catalog()
        .require_table(&TableRef::parse("sales.orders").unwrap())
        .await
        .unwrap();
    assert_eq!(entry.primary_key, ["id"]);
    assert_eq!(
        rows(e, "SELECT id, amount FROM sales.orders ORDER BY id").await,
        ["10|5.0", "11|7.5", "12|100.0"]
    );
    let err = error(
        e,
        "ALTER TABLE sales.orders RENAME COLUMN amount TO customer_id",
    )
    .await;
    assert!(err.contains("has a column 'customer_id' already"), "{err}");

    // A drop that a row filter or key needs is refused, with nothing changed.
    let version = rows(
        e,
        "SELECT max(version) FROM system.history WHERE table_name = 'customers'",
    )
    .await;
    let err = error(e, "ALTER TABLE crm.customers DROP COLUMN region").await;
    assert!(err.contains("row filter of 'eve'"), "{err}");
    let err = error(e, "ALTER TABLE sales.orders DROP COLUMN id").await;
    assert!(err.contains("primary key"), "{err}");
    assert_eq!(
        rows(
            e,
            "SELECT max(version) FROM system.history WHERE table_name = 'customers'"
        )
        .await,
        version
    );
    rows(e, "ALTER TABLE crm.customers DROP COLUMN name").await;
    assert_eq!(
        rows(e, "SELECT * FROM crm.customers ORDER BY id").await,
        ["1|GB", "2|US", "3|GB"]
    );
    rows(e, "ALTER TABLE crm.customers DROP COLUMN IF EXISTS name").await;
    let err = error(e, "ALTER TABLE crm.customers DROP COLUMN name").await;
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test]
async fn partitioned_by_lays_out_files_by_partition() {
    let f = fixture().await;
    let e = &f.engine;
    rows(
        e,
        "CREATE TABLE crm.by_country PARTITIONED BY (country) AS SELECT * FROM crm.customers",
    )
    .await;
    let dir = directory(e, "crm.by_country").await;
    for part in ["country=GB", "country=US"] {
        assert!(dir.join(part).is_dir(), "{dir:?}/{part}");
    }
    assert_eq!(
        rows(
            e,
            "SELECT count(*) FROM crm.by_country WHERE country = 'GB'"
        )
        .await,
        ["2"]
    );
    rows(
        e,
        "CREATE TABLE sales.events (day DATE, what VARCHAR) PARTITIONED BY (day)",
    )
    .await;
    rows(
        e,
        "INSERT INTO sales.events VALUES (DATE '2024-01-02', 'x')",
    )
    .await;
    let dir = directory(e, "sales.events").await;
    assert!(dir.join("day=2024-01-02").is_dir(), "{dir:?}");
    let entry = e
        .catalog()
        .require_table(&TableRef::parse("sales.events").unwrap())
        .await
        .unwrap();
    assert_eq!(entry.partition_columns, ["day"]);
    let err = error(
        e,
        "CREATE TABLE sales.bad (day DATE, what VARCHAR) PARTITIONED BY (dya)",
    )
    .await;
    assert!(err.contains("'dya'"), "{err}");
    let err = error(e, "SELECT * FROM sales.bad").await;
    assert!(err.contains("not found"), "no table was made: {err}");
}

/// Writes the tokens of a PII column through the administrator's path.
pub async fn tag_pii(engine: &Engine, table: &str, column: &str) {
    let t = TableRef::parse(table).unwrap();
    engine
        .catalog()
        .set_tags(&Securable::table(&t), Some(column), &["pii".to_string()])
        .await
        .unwrap();
    engine
        .tables()
        .commit(
            &engine.actor(),
            &t,
            Write::Protect {
                newly_pii: vec![column.to_string()],
            },
        )
        .await
        .unwrap();
}

/// carol may create in `crm` and read `customers`: she makes the view `crm.people` over it,
/// and owns it.
async fn carol_and_her_view(e: &Engine) -> Engine {
    let carol = user(
        e,
        "carol",
        &[
            "GRANT CREATE ON DATASET crm",
            "GRANT SELECT ON TABLE crm.customers",
        ],
        &[],
    )
    .await;
    assert_eq!(
        rows(
            &carol,
            "CREATE VIEW crm.people AS SELECT id, upper(name) AS name, country FROM crm.customers",
        )
        .await,
        ["create view|0|-1"]
    );
    carol
}

#[tokio::test]
async fn views_read_their_tables_under_the_querying_principal() {
    let f = fixture().await;
    let e = &f.engine;
    let carol = carol_and_her_view(e).await;
    assert_eq!(
        rows(&carol, "SELECT id, name FROM crm.people ORDER BY id").await,
        ["1|ADA", "2|GRACE", "3|ALAN"]
    );
    let eve = user(
        e,
        "eve",
        &[
            "GRANT SELECT ON TABLE crm.people",
            "GRANT SELECT ON TABLE crm.customers",
        ],
        &[],
    )
    .await;
    row_filter(e, "crm.customers", "eve", "country = 'GB'").await;
    e.catalog()
        .set_column_mask(&basin_catalog::access::ColumnMask {
            table: TableRef::parse("crm.customers").unwrap(),
            column: "name".into(),
            grantee: "eve".into(),
            mask: basin_catalog::access::Mask::KeepLast(1),
        })
        .await
        .unwrap();
    let bob = user(e, "bob", &["GRANT SELECT ON TABLE crm.people"], &[]).await;
    // eve's own row filter and mask apply through the view, not its owner's view of the table.
    assert_eq!(
        rows(&eve, "SELECT id, name FROM crm.people ORDER BY id").await,
        ["1|**A", "3|***N"]
    );
    // bob may read the view but not the table it reads: refused like the table is missing.
    let err = error(&bob, "SELECT * FROM crm.people").await;
    assert!(err.contains("'main.crm.customers' not found"), "{err}");
    // current_user() in a view is the querying principal.
    rows(e, "CREATE VIEW crm.me AS SELECT current_user() AS who").await;
    rows(e, "GRANT SELECT ON TABLE crm.me TO eve").await;
    assert_eq!(rows(&eve, "SELECT who FROM crm.me").await, ["eve"]);
    // Without SELECT on the view, the view is not there; nor is it to drop.
    let stranger = user(e, "stranger", &["GRANT SELECT ON TABLE crm.customers"], &[]).await;
    for sql in ["SELECT * FROM crm.people", "DROP VIEW crm.people"] {
        let err = error(&stranger, sql).await;
        assert!(err.contains("not found"), "{sql}: {err}");
    }
    let err = error(&stranger, "CREATE VIEW crm.mine AS SELECT 1 AS x").await;
    assert!(
        err.contains("permission denied") && err.contains("CREATE"),
        "{err}"
    );
}

#[tokio::test]
async fn views_are_listed_read_only_acyclic_and_owned() {
    let f = fixture().await;
    let e = &f.engine;
    let carol = carol_and_her_view(e).await;
    let eve = user(e, "eve", &["GRANT SELECT ON TABLE crm.customers"], &[]).await;
    rows(e, "GRANT SELECT ON TABLE crm.people TO eve").await;
    assert_eq!(
        rows(
            e,
            "SELECT name, kind FROM system.tables WHERE dataset = 'crm' ORDER BY name"
        )
        .await,
        ["customers|table", "people|view"]
    );
    assert_eq!(
        rows(
            e,
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'crm' ORDER BY table_name"
        )
        .await,
        ["customers|BASE TABLE", "people|VIEW"]
    );
    let err = error(e, "INSERT INTO crm.people VALUES (9, 'X', 'FR')").await;
    assert!(err.contains("is a view"), "{err}");
    let err = error(e, "DROP TABLE crm.people").await;
    assert!(err.contains("DROP VIEW"), "{err}");
    rows(
        e,
        "CREATE VIEW crm.gb AS SELECT * FROM crm.people WHERE country = 'GB'",
    )
    .await;
    let err = error(
        e,
        "CREATE OR REPLACE VIEW crm.people AS SELECT * FROM crm.gb",
    )
    .await;
    assert!(err.contains("would read itself"), "{err}");

    // The owner replaces and drops it; the grants on it go with it.
    rows(
        &carol,
        "CREATE OR REPLACE VIEW crm.people AS SELECT id FROM crm.customers",
    )
    .await;
    assert_eq!(
        rows(&eve, "SELECT * FROM crm.people ORDER BY id").await,
        ["1", "2", "3"]
    );
    assert_eq!(
        rows(&carol, "DROP VIEW crm.people").await,
        ["drop view|1|-1"]
    );
    let err = error(&eve, "SELECT * FROM crm.people").await;
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        rows(e, "SELECT count(*) FROM crm.customers").await,
        ["3"],
        "the table stays"
    );
}
