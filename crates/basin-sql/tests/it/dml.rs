use crate::*;

#[tokio::test]
async fn insert_overwrite_update_delete() {
    let f = fixture().await;
    let e = &f.engine;
    assert_eq!(
        rows(
            e,
            "INSERT INTO sales.orders (order_id, amount) VALUES (13, 1.25)"
        )
        .await,
        ["insert|1|2"]
    );
    assert_eq!(
        rows(
            e,
            "SELECT order_id, customer_id, amount FROM sales.orders WHERE order_id = 13"
        )
        .await,
        ["13|null|1.25"]
    );
    assert_eq!(
        rows(
            e,
            "UPDATE sales.orders SET amount = amount * 2 WHERE customer_id = 1"
        )
        .await,
        ["update|2|3"]
    );
    assert_eq!(
        rows(
            e,
            "SELECT amount FROM sales.orders WHERE customer_id = 1 ORDER BY order_id"
        )
        .await,
        ["10.0", "15.0"]
    );
    assert_eq!(
        rows(e, "DELETE FROM sales.orders WHERE amount < 2").await,
        ["delete|1|4"]
    );
    assert_eq!(rows(e, "SELECT count(*) FROM sales.orders").await, ["3"]);
    rows(e, "INSERT OVERWRITE TABLE sales.orders SELECT order_id + 100, customer_id, amount FROM sales.orders WHERE customer_id = 2").await;
    assert_eq!(rows(e, "SELECT order_id FROM sales.orders").await, ["112"]);
    let err = error(e, "INSERT INTO sales.orders VALUES (1, 2, 3.0, 4)").await;
    assert!(
        err.contains("4 value(s) per row but 3 target column(s)"),
        "{err}"
    );
    let err = error(
        e,
        "INSERT INTO sales.orders (order_id, amont) VALUES (1, 2)",
    )
    .await;
    assert!(err.contains("did you mean 'amount'"), "{err}");
    let err = error(e, "INSERT INTO sales.orders VALUES ('x', 1, 1.0)").await;
    assert!(!err.is_empty());
    assert_eq!(
        rows(e, "SELECT order_id FROM sales.orders").await,
        ["112"],
        "a failed insert changes nothing"
    );
}

#[tokio::test]
async fn merge_into_updates_inserts_and_deletes() {
    let f = fixture().await;
    let e = &f.engine;
    e.execute("CREATE TABLE sales.changes AS SELECT * FROM (VALUES (11, 1, 8.0, false), (12, 2, 0.0, true), (14, 3, 9.0, false)) AS v(order_id, customer_id, amount, cancelled)")
        .await
        .unwrap();
    let out = rows(
        e,
        "MERGE INTO sales.orders t USING sales.changes s ON t.order_id = s.order_id
         WHEN MATCHED AND s.cancelled THEN DELETE
         WHEN MATCHED THEN UPDATE SET amount = s.amount
         WHEN NOT MATCHED THEN INSERT (order_id, customer_id, amount) VALUES (s.order_id, s.customer_id, s.amount)",
    )
    .await;
    assert_eq!(out, ["merge|3|2"]);
    assert_eq!(
        rows(
            e,
            "SELECT order_id, customer_id, amount FROM sales.orders ORDER BY order_id"
        )
        .await,
        ["10|1|5.0", "11|1|8.0", "14|3|9.0"]
    );
    // A subquery as the source.
    rows(
        e,
        "MERGE INTO sales.orders USING (SELECT 10 AS order_id, 50.0 AS amount) AS s ON orders.order_id = s.order_id
         WHEN MATCHED THEN UPDATE SET amount = s.amount",
    )
    .await;
    assert_eq!(
        rows(e, "SELECT amount FROM sales.orders WHERE order_id = 10").await,
        ["50.0"]
    );
}

#[tokio::test]
async fn merge_from_a_source_with_other_column_names_writes_only_the_targets_columns() {
    let f = fixture().await;
    let e = &f.engine;
    e.execute("CREATE TABLE sales.staged AS SELECT * FROM (VALUES (11, 7, 8.0), (14, 3, 9.0)) AS v(id, cid, total)")
        .await
        .unwrap();
    let out = rows(
        e,
        "MERGE INTO sales.orders t USING sales.staged s ON t.order_id = s.id
         WHEN MATCHED THEN UPDATE SET amount = s.total
         WHEN NOT MATCHED THEN INSERT (order_id, customer_id, amount) VALUES (s.id, s.cid, s.total)",
    )
    .await;
    assert_eq!(out, ["merge|2|2"]);
    assert_eq!(
        rows(
            e,
            "SELECT order_id, customer_id, amount FROM sales.orders ORDER BY order_id"
        )
        .await,
        ["10|1|5.0", "11|1|8.0", "12|2|100.0", "14|3|9.0"]
    );
    let columns = rows(e, "SELECT name FROM system.columns WHERE hub = 'main' AND table_name = 'orders' ORDER BY ordinal").await;
    assert_eq!(
        columns,
        ["order_id", "customer_id", "amount"],
        "the source's columns are not added"
    );
}

#[tokio::test]
async fn create_table_as_select_and_alter_table() {
    let f = fixture().await;
    let e = &f.engine;
    rows(e, "CREATE TABLE sales.big_orders AS SELECT order_id, amount FROM sales.orders WHERE amount > 6").await;
    assert_eq!(
        rows(e, "SELECT order_id FROM sales.big_orders ORDER BY order_id").await,
        ["11", "12"]
    );
    let err = error(e, "CREATE TABLE sales.big_orders AS SELECT 1 AS x").await;
    assert!(err.contains("already exists"), "{err}");
    rows(
        e,
        "CREATE TABLE IF NOT EXISTS sales.big_orders AS SELECT 1 AS x",
    )
    .await;

    rows(e, "ALTER TABLE sales.big_orders ADD COLUMN note VARCHAR").await;
    assert_eq!(
        rows(
            e,
            "SELECT order_id, note FROM sales.big_orders ORDER BY order_id"
        )
        .await,
        ["11|null", "12|null"]
    );
    rows(e, "INSERT INTO sales.big_orders VALUES (99, 1.0, 'hello')").await;
    assert_eq!(
        rows(e, "SELECT note FROM sales.big_orders WHERE order_id = 99").await,
        ["hello"]
    );
    assert_eq!(
        rows(
            e,
            "SELECT name, data_type FROM system.columns WHERE table_name = 'big_orders'"
        )
        .await,
        ["order_id|BIGINT", "amount|DOUBLE", "note|VARCHAR"]
    );
    let err = error(e, "CREATE TABLE sales.bad AS SELECT 1 AS \"Bad Name\"").await;
    assert!(err.contains("invalid column name 'Bad Name'"), "{err}");
    let err = error(e, "DROP SCHEMA sales").await;
    assert!(err.contains("not supported"), "{err}");
    let err = error(e, "CREATE TABLE nowhere.t AS SELECT 1 AS x").await;
    assert!(err.contains("dataset 'main.nowhere' not found"), "{err}");
}
