//! Browsing the catalog in SQL: SHOW, DESCRIBE, information_schema and COMMENT ON, each showing
//! only what the principal may see.

use basin_catalog::access::{ColumnMask, Grant, Mask, Privilege, Securable};
use basin_core::TableRef;
use basin_sql::Engine;

use crate::{error, fixture, rows};

/// `vic` may read `sales.orders` without its `customer_id` column, with `amount` masked; it sees
/// nothing of `crm` or of hub `us`.
async fn vic(engine: &Engine) -> Engine {
    let catalog = engine.catalog();
    catalog
        .create_user("vic", None, &Default::default())
        .await
        .unwrap();
    let orders = TableRef::parse("sales.orders").unwrap();
    for column in ["order_id", "amount"] {
        catalog
            .grant(&Grant {
                grantee: "vic".into(),
                privilege: Privilege::Select,
                object: Securable::table(&orders),
                column: Some(column.into()),
                granted_by: "test".into(),
                granted_at: String::new(),
            })
            .await
            .unwrap();
    }
    catalog
        .set_column_mask(&ColumnMask {
            table: orders,
            column: "amount".into(),
            grantee: "vic".into(),
            mask: Mask::Null,
        })
        .await
        .unwrap();
    let snapshot = catalog.access_snapshot().await.unwrap();
    engine.as_principal(snapshot.principal("vic", &[]))
}

/// The rows of a DESCRIBE without their `nullable` field (whether a key column may be NULL is
/// the write path's business, not this test's).
async fn described(engine: &Engine, sql: &str) -> Vec<String> {
    rows(engine, sql)
        .await
        .into_iter()
        .map(|r| {
            let mut f: Vec<&str> = r.split('|').collect();
            f.remove(2);
            f.join("|")
        })
        .collect()
}

#[tokio::test]
async fn show_lists_hubs_datasets_tables_and_columns() {
    let f = fixture().await;
    let e = &f.engine;
    assert_eq!(rows(e, "SHOW HUBS").await, ["main|", "us|"]);
    assert_eq!(
        rows(e, "SHOW DATASETS IN main").await,
        ["main|crm|source|", "main|sales|source|"]
    );
    assert_eq!(rows(e, "SHOW DATASETS").await.len(), 3);
    assert_eq!(
        rows(e, "SHOW TABLES IN us.sales").await,
        ["us|sales|orders|"]
    );
    assert_eq!(
        rows(e, "SHOW TABLES").await,
        [
            "main|crm|customers|",
            "main|sales|orders|",
            "us|sales|orders|"
        ]
    );
    assert_eq!(
        rows(e, "SHOW TABLES IN main.sales LIKE 'ord%'").await,
        ["main|sales|orders|"]
    );
    let described = described(e, "DESCRIBE sales.orders").await;
    assert_eq!(
        described,
        [
            "order_id|BIGINT|||false|false",
            "customer_id|BIGINT|||false|false",
            "amount|DOUBLE|||false|false"
        ],
    );
    assert_eq!(
        super::browse::described(e, "SHOW COLUMNS FROM main.sales.orders").await,
        described
    );
    let err = error(e, "SHOW TABLES IN main.nope").await;
    assert_eq!(err, "dataset 'main.nope' not found");
    let err = error(e, "DESCRIBE sales.ordres").await;
    assert!(
        err.starts_with("table 'main.sales.ordres' not found"),
        "{err}"
    );
}

#[tokio::test]
async fn a_user_sees_only_what_it_may_see() {
    let f = fixture().await;
    let vic = vic(&f.engine).await;
    assert_eq!(rows(&vic, "SHOW HUBS").await, ["main|"]);
    assert_eq!(rows(&vic, "SHOW DATASETS").await, ["main|sales|source|"]);
    assert_eq!(rows(&vic, "SHOW TABLES").await, ["main|sales|orders|"]);
    // The hidden column is absent; the masked one is marked.
    assert_eq!(
        described(&vic, "DESCRIBE sales.orders").await,
        [
            "order_id|BIGINT|||false|false",
            "amount|DOUBLE|||false|true"
        ]
    );
    // Hidden objects answer exactly like missing ones.
    for (sql, missing) in [
        ("DESCRIBE crm.customers", "DESCRIBE crm.nothing"),
        ("SHOW TABLES IN crm", "SHOW TABLES IN nothing"),
        ("SHOW DATASETS IN us", "SHOW DATASETS IN nothing"),
        (
            "SHOW COLUMNS FROM us.sales.orders",
            "SHOW COLUMNS FROM us.sales.nothing",
        ),
    ] {
        let hidden = error(&vic, sql).await;
        assert!(hidden.contains("not found"), "{sql}: {hidden}");
        let absent = error(&vic, missing).await;
        let names = |s: &str| s.split('\'').nth(1).map(str::to_string);
        assert_eq!(
            hidden.replace(&names(&hidden).unwrap(), "X"),
            absent.replace(&names(&absent).unwrap(), "X"),
            "{sql} vs {missing}"
        );
    }
    assert_eq!(
        rows(
            &vic,
            "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, data_type FROM information_schema.columns"
        )
        .await,
        [
            "main|sales|orders|order_id|1|BIGINT",
            "main|sales|orders|amount|2|DOUBLE"
        ]
    );
    assert_eq!(
        rows(
            &vic,
            "SELECT catalog_name, schema_name FROM information_schema.schemata"
        )
        .await,
        ["main|sales"]
    );
    assert_eq!(
        rows(
            &vic,
            "SELECT table_schema, table_name, table_type FROM information_schema.tables"
        )
        .await,
        ["sales|orders|BASE TABLE"]
    );
    // The administrator's information_schema lists everything.
    assert_eq!(
        rows(&f.engine, "SELECT count(*) FROM information_schema.tables").await,
        ["3"]
    );
    let err = error(&vic, "SELECT * FROM information_schema.colums").await;
    assert!(
        err.contains("did you mean 'information_schema.columns'"),
        "{err}"
    );
}

#[tokio::test]
async fn comment_on_sets_and_clears_descriptions() {
    let f = fixture().await;
    let e = &f.engine;
    for sql in [
        "COMMENT ON DATABASE us IS 'The US market'",
        "COMMENT ON SCHEMA main.sales IS 'Orders and invoices'",
        "COMMENT ON TABLE sales.orders IS 'One row per order'",
        "COMMENT ON COLUMN sales.orders.amount IS 'Gross, in EUR'",
    ] {
        rows(e, sql).await;
    }
    assert_eq!(
        rows(e, "SHOW DATABASES LIKE 'us'").await,
        ["us|The US market"]
    );
    assert_eq!(
        rows(e, "SHOW SCHEMAS IN main LIKE 'sales'").await,
        ["main|sales|source|Orders and invoices"]
    );
    assert_eq!(
        rows(e, "SHOW TABLES IN sales").await,
        ["main|sales|orders|One row per order"]
    );
    assert_eq!(
        rows(e, "SHOW COLUMNS FROM sales.orders LIKE 'amount'").await,
        ["amount|DOUBLE|true|Gross, in EUR||false|false"]
    );
    // NULL and '' clear; the change is audited.
    rows(e, "COMMENT ON TABLE sales.orders IS NULL").await;
    rows(e, "COMMENT ON COLUMN sales.orders.amount IS ''").await;
    assert_eq!(
        rows(
            e,
            "SELECT description FROM system.tables WHERE name = 'orders' AND hub = 'main'"
        )
        .await,
        [""]
    );
    assert_eq!(
        rows(e, "SELECT description FROM information_schema.columns WHERE column_name = 'amount' AND table_catalog = 'main'").await,
        [""]
    );
    let audited = rows(
        e,
        "SELECT target, outcome FROM system.audit WHERE action = 'comment' ORDER BY at",
    )
    .await;
    assert_eq!(audited.len(), 6, "{audited:?}");
    assert_eq!(audited[0], "hub us|ok");
    let err = error(e, "COMMENT ON COLUMN sales.orders.amout IS 'x'").await;
    assert!(err.contains("did you mean 'amount'"), "{err}");
    rows(e, "COMMENT IF EXISTS ON TABLE sales.nothing IS 'x'").await;
    let err = error(e, "COMMENT ON INDEX i IS 'x'").await;
    assert!(err.contains("not supported"), "{err}");
}

#[tokio::test]
async fn comment_on_needs_manage_and_hides_what_is_hidden() {
    let f = fixture().await;
    let vic = vic(&f.engine).await;
    let err = error(&vic, "COMMENT ON TABLE sales.orders IS 'mine'").await;
    assert_eq!(
        err,
        "permission denied: you need MANAGE on table main.sales.orders to do this"
    );
    let err = error(&vic, "COMMENT ON TABLE crm.customers IS 'x'").await;
    assert!(
        err.starts_with("table 'main.crm.customers' not found"),
        "{err}"
    );
    // With MANAGE, vic still cannot describe a column it cannot see.
    f.engine
        .catalog()
        .grant(&Grant {
            grantee: "vic".into(),
            privilege: Privilege::Manage,
            object: Securable::table(&TableRef::parse("sales.orders").unwrap()),
            column: None,
            granted_by: "test".into(),
            granted_at: String::new(),
        })
        .await
        .unwrap();
    let snapshot = f.engine.catalog().access_snapshot().await.unwrap();
    let vic = f.engine.as_principal(snapshot.principal("vic", &[]));
    rows(&vic, "COMMENT ON TABLE sales.orders IS 'mine'").await;
    assert_eq!(
        rows(
            &f.engine,
            "SELECT description FROM system.tables WHERE name = 'orders' AND hub = 'main'"
        )
        .await,
        ["mine"]
    );
    let err = error(&vic, "COMMENT ON COLUMN sales.orders.customer_id IS 'x'").await;
    assert!(
        err.starts_with("column 'main.sales.orders.customer_id' not found"),
        "{err}"
    );
    let denied = rows(
        &f.engine,
        "SELECT outcome FROM system.audit WHERE action = 'comment' AND principal = 'vic' ORDER BY at",
    )
    .await;
    assert_eq!(denied, ["denied", "denied", "ok", "denied"]);
}
