//! DDL end to end through the `basin` CLI: partitioned tables, TRUNCATE with time travel, a
//! renamed column, a view, and DROP removing the files.

use serde_json::json;

use crate::Basin;

/// Every file under the data directory, as text.
fn files_of(b: &Basin) -> Vec<String> {
    basin_testkit::fixtures::files_under(&b.data_dir())
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn ddl_through_the_cli() {
    let b = Basin::new();
    b.ok(&["init"]);
    b.ok(&["dataset", "create", "sales", "--layer", "source"]);
    let csv = b.file(
        "orders.csv",
        "id,amount,day\n1,10.5,2024-01-01\n2,20,2024-01-02\n",
    );
    b.ok(&["ingest", "sales.raw", &csv]);
    b.ok(&[
        "sql",
        "CREATE TABLE sales.orders PARTITIONED BY (day) AS SELECT * FROM sales.raw",
    ]);
    let files = files_of(&b);
    assert!(
        files.iter().any(|f| f.contains("orders/day=2024-01-02/")),
        "{files:?}"
    );

    b.ok(&["sql", "TRUNCATE TABLE sales.orders"]);
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.orders"),
        vec![json!({"n": 0})]
    );
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.orders VERSION AS OF 0"),
        vec![json!({"n": 2})]
    );

    b.ok(&["sql", "ALTER TABLE sales.raw RENAME COLUMN amount TO total"]);
    b.ok(&[
        "sql",
        "CREATE VIEW sales.big AS SELECT id, total FROM sales.raw WHERE total > 15",
    ]);
    assert_eq!(
        b.json("SELECT id, total FROM sales.big"),
        vec![json!({"id": 2, "total": 20.0})]
    );
    assert_eq!(
        b.json("SELECT name, kind FROM system.tables ORDER BY name"),
        vec![
            json!({"name": "big", "kind": "view"}),
            json!({"name": "orders", "kind": "table"}),
            json!({"name": "raw", "kind": "table"}),
        ]
    );
    let shown = b.ok(&["table", "show", "sales.big"]);
    assert!(shown.contains("kind:        view"), "{shown}");
    assert!(
        !shown.contains("version:"),
        "a view has no versions: {shown}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&b.ok(&["--output", "json", "table", "show", "sales.big"])).unwrap();
    assert_eq!(shown["kind"], "view");
    assert!(
        shown["definition"].as_str().unwrap().contains("sales.raw"),
        "{shown}"
    );
    let refused = b.run(&["sql", "DROP TABLE sales.big"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DROP VIEW"));
    b.ok(&["sql", "DROP VIEW sales.big"]);
    b.ok(&["sql", "DROP TABLE sales.orders"]);
    let files = files_of(&b);
    assert!(!files.iter().any(|f| f.contains("/orders/")), "{files:?}");
    let gone = b.run(&["sql", "SELECT * FROM sales.orders"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}
