//! A declared primary key holds on every SQL write: no NULL key, no key twice. A refused write
//! makes no commit. (One test per statement: a long test's future overflows a test thread's
//! stack in debug builds.)

use crate::*;

const ORDERS: &str = "SELECT order_id, customer_id, amount FROM sales.orders ORDER BY order_id";

/// `sql` fails with an error containing `expected`, and sales.orders stays at version 1.
async fn refused(e: &basin_sql::Engine, sql: &str, expected: &str) {
    let err = error(e, sql).await;
    assert!(err.contains(expected), "{sql}: {err}");
    let newer = error(e, "SELECT * FROM sales.orders VERSION AS OF 2").await;
    assert!(!newer.is_empty(), "no commit was made");
}

#[tokio::test]
async fn inserts_and_overwrites_keep_keys() {
    let f = fixture().await;
    let e = &f.engine;
    let before = rows(e, ORDERS).await;
    refused(
        e,
        "INSERT INTO sales.orders VALUES (10, 1, 1.0), (11, 1, 1.0), (13, 1, 1.0)",
        "2 row(s) would duplicate keys already in 'main.sales.orders', e.g. (order_id=10), (order_id=11); use MERGE INTO",
    )
    .await;
    refused(
        e,
        "INSERT INTO sales.orders VALUES (13, 1, 1.0), (13, 2, 2.0)",
        "1 row(s) repeat a key within this write to 'main.sales.orders', e.g. (order_id=13)",
    )
    .await;
    refused(
        e,
        "INSERT INTO sales.orders (customer_id, amount) VALUES (1, 1.0)",
        "the rows written into 'main.sales.orders' have no value for its primary key",
    )
    .await;
    refused(
        e,
        "INSERT INTO sales.orders VALUES (NULL, 1, 1.0)",
        "1 row(s) have no value (NULL) in column 'order_id', part of the primary key of 'main.sales.orders'",
    )
    .await;
    refused(
        e,
        "INSERT OVERWRITE TABLE sales.orders VALUES (1, 1, 1.0), (1, 2, 2.0)",
        "repeat a key",
    )
    .await;
    assert_eq!(rows(e, ORDERS).await, before);
    rows(
        e,
        "INSERT INTO sales.orders VALUES (13, 1, 1.0), (14, 2, 2.0)",
    )
    .await;
    // A table without a key takes duplicates, as before.
    rows(e, "INSERT INTO crm.customers VALUES (1, 'Ada', 'GB')").await;
    assert_eq!(
        rows(e, "SELECT count(*) FROM crm.customers WHERE id = 1").await,
        ["2"]
    );
}

#[tokio::test]
async fn updates_keep_keys() {
    let f = fixture().await;
    let e = &f.engine;
    refused(
        e,
        "UPDATE sales.orders SET order_id = 10 WHERE order_id = 11",
        "the update of 'main.sales.orders' would give 1 key(s) more than one row, e.g. (order_id=10)",
    )
    .await;
    refused(
        e,
        "UPDATE sales.orders SET order_id = NULL WHERE order_id = 11",
        "no value (NULL) in the primary key (order_id)",
    )
    .await;
    rows(e, "UPDATE sales.orders SET order_id = order_id + 100").await;
    rows(
        e,
        "UPDATE sales.orders SET order_id = 1 WHERE order_id = 110",
    )
    .await;
    assert_eq!(
        rows(e, "SELECT order_id FROM sales.orders ORDER BY order_id").await,
        ["1", "111", "112"]
    );
}

#[tokio::test]
async fn merges_keep_the_keys_they_insert() {
    let f = fixture().await;
    let e = &f.engine;
    rows(e, "CREATE TABLE sales.incoming AS SELECT * FROM (VALUES (20, 1, 1.0), (20, 2, 2.0)) AS v(order_id, customer_id, amount)").await;
    refused(
        e,
        "MERGE INTO sales.orders t USING sales.incoming s ON t.order_id = s.order_id
         WHEN NOT MATCHED THEN INSERT (order_id, customer_id, amount) VALUES (s.order_id, s.customer_id, s.amount)",
        "1 row(s) repeat a key within this write to 'main.sales.orders', e.g. (order_id=20)",
    )
    .await;
    refused(
        e,
        "MERGE INTO sales.orders t USING (SELECT 10 AS id, 3 AS customer_id, 1.0 AS amount) AS s ON t.customer_id = s.customer_id
         WHEN NOT MATCHED THEN INSERT (order_id, customer_id, amount) VALUES (s.id, s.customer_id, s.amount)",
        "1 row(s) would duplicate keys already in 'main.sales.orders', e.g. (order_id=10); a WHEN MATCHED clause updates them instead",
    )
    .await;
    refused(
        e,
        "MERGE INTO sales.orders t USING sales.incoming s ON t.order_id = s.order_id
         WHEN NOT MATCHED THEN INSERT (customer_id, amount) VALUES (s.customer_id, s.amount)",
        "no value (NULL) in column 'order_id'",
    )
    .await;
    refused(
        e,
        "MERGE INTO sales.orders t USING (SELECT 10 AS order_id, 11 AS new_id) AS s ON t.order_id = s.order_id
         WHEN MATCHED THEN UPDATE SET order_id = s.new_id",
        "cannot set its key column 'order_id'",
    )
    .await;
    rows(
        e,
        "MERGE INTO sales.orders t USING (SELECT 21 AS order_id, 3 AS customer_id, 1.0 AS amount) AS s ON t.order_id = s.order_id
         WHEN NOT MATCHED THEN INSERT (order_id, customer_id, amount) VALUES (s.order_id, s.customer_id, s.amount)",
    )
    .await;
    assert_eq!(
        rows(e, "SELECT order_id FROM sales.orders ORDER BY order_id").await,
        ["10", "11", "12", "21"]
    );
}
