//! A declared primary key holds on every SQL write: no NULL key, no key twice.

use crate::*;

const ORDERS: &str = "SELECT order_id, customer_id, amount FROM sales.orders ORDER BY order_id";

#[tokio::test]
async fn primary_keys_hold_on_insert_update_and_overwrite() {
    let f = fixture().await;
    let e = &f.engine;
    let before = rows(e, ORDERS).await;

    // Keys already in the table.
    let err = error(
        e,
        "INSERT INTO sales.orders VALUES (10, 1, 1.0), (11, 1, 1.0), (13, 1, 1.0)",
    )
    .await;
    assert!(
        err.contains("2 row(s) would duplicate keys already in 'main.sales.orders', e.g. (order_id=10), (order_id=11); use MERGE INTO"),
        "{err}"
    );
    // A key twice in one statement.
    let err = error(
        e,
        "INSERT INTO sales.orders VALUES (13, 1, 1.0), (13, 2, 2.0)",
    )
    .await;
    assert!(
        err.contains(
            "1 row(s) repeat a key within this write to 'main.sales.orders', e.g. (order_id=13)"
        ),
        "{err}"
    );
    // No key at all.
    let err = error(
        e,
        "INSERT INTO sales.orders (customer_id, amount) VALUES (1, 1.0)",
    )
    .await;
    assert!(
        err.contains("1 row(s) have no value (NULL) in column 'order_id', part of the primary key of 'main.sales.orders'"),
        "{err}"
    );
    // An update onto another row's key, or to NULL.
    let err = error(
        e,
        "UPDATE sales.orders SET order_id = 10 WHERE order_id = 11",
    )
    .await;
    assert!(
        err.contains("the update of 'main.sales.orders' would give 1 key(s) more than one row, e.g. (order_id=10)"),
        "{err}"
    );
    let err = error(
        e,
        "UPDATE sales.orders SET order_id = NULL WHERE order_id = 11",
    )
    .await;
    assert!(
        err.contains("no value (NULL) in the primary key (order_id)"),
        "{err}"
    );
    // An overwrite with a key twice.
    let err = error(
        e,
        "INSERT OVERWRITE TABLE sales.orders VALUES (1, 1, 1.0), (1, 2, 2.0)",
    )
    .await;
    assert!(err.contains("repeat a key"), "{err}");
    assert_eq!(
        rows(e, ORDERS).await,
        before,
        "refused writes change nothing"
    );
    // No commit was made: the table is still at version 1 (created, then filled).
    error(e, "SELECT * FROM sales.orders VERSION AS OF 2").await;

    // Writes that keep every key once go through.
    rows(
        e,
        "INSERT INTO sales.orders VALUES (13, 1, 1.0), (14, 2, 2.0)",
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
        ["1", "111", "112", "113", "114"]
    );
    // A table without a key takes duplicates, as before.
    rows(e, "INSERT INTO crm.customers VALUES (1, 'Ada', 'GB')").await;
    assert_eq!(
        rows(e, "SELECT count(*) FROM crm.customers WHERE id = 1").await,
        ["2"]
    );
}
