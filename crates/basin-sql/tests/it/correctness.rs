//! Right answers or clear errors: checked arithmetic, assignment casts, time travel bounds,
//! TABLESAMPLE, clean engine errors, the failing statement of a script.

use crate::*;

#[tokio::test]
async fn integer_overflow_is_an_error() {
    let f = fixture().await;
    let e = &f.engine;
    for sql in [
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775807 - 2",
        "SELECT 9223372036854775807 * 2",
        "SELECT -(-9223372036854775807 - 1)",
        "SELECT order_id * 4611686018427387904 FROM sales.orders",
        "SELECT CAST(2147483647 AS INT) + CAST(1 AS INT)",
    ] {
        let err = error(e, sql).await;
        assert!(err.contains("out of range"), "{sql}: {err}");
        assert!(!err.contains("Arrow error"), "{sql}: {err}");
    }
    let err = error(e, "SELECT 9223372036854775807 + 1").await;
    assert_eq!(
        err,
        "bigint out of range: 9223372036854775807 + 1 does not fit in BIGINT; cast an operand to DECIMAL(38, 0) (exact) or DOUBLE for a wider range"
    );
    // In range, the answers and the column names are the usual ones.
    assert_eq!(
        rows(
            e,
            "SELECT 9223372036854775806 + 1, -9223372036854775807 - 1, 3 * -4, -(5)"
        )
        .await,
        ["9223372036854775807|-9223372036854775808|-12|-5"]
    );
    let out = e
        .execute("SELECT order_id + 1 FROM sales.orders")
        .await
        .unwrap();
    assert_eq!(
        out.schema.field(0).name(),
        "sales.orders.order_id + Int64(1)"
    );
    // Writes compute with the same rules.
    let err = error(
        e,
        "INSERT INTO sales.orders SELECT order_id * 9223372036854775807, customer_id, amount FROM sales.orders",
    )
    .await;
    assert!(err.contains("bigint out of range"), "{err}");
    assert_eq!(rows(e, "SELECT count(*) FROM sales.orders").await, ["3"]);
}

#[tokio::test]
async fn sum_of_bigint_is_exact() {
    let f = fixture().await;
    let e = &f.engine;
    let big = "(VALUES (9223372036854775807), (9223372036854775807)) AS t(v)";
    assert_eq!(
        rows(e, &format!("SELECT sum(v) FROM {big}")).await,
        ["18446744073709551614"]
    );
    assert_eq!(
        rows(e, &format!("SELECT sum(v) OVER () FROM {big}")).await,
        ["18446744073709551614", "18446744073709551614"]
    );
    assert_eq!(
        rows(e, "SELECT sum(order_id) + 1, sum(order_id) > 10 FROM sales.orders HAVING sum(order_id) > 1").await,
        ["34|true"]
    );
}

#[tokio::test]
async fn assignment_casts_refuse_what_does_not_fit() {
    let f = fixture().await;
    let e = &f.engine;
    rows(
        e,
        "CREATE TABLE sales.events (id INT, at TIMESTAMP, small SMALLINT, price DECIMAL(5, 2))",
    )
    .await;
    let err = error(e, "INSERT INTO sales.events (id, at) VALUES (1, 9.5)").await;
    assert!(
        err.contains("cannot store 9.5")
            && err.contains("main.sales.events.at (TIMESTAMP)")
            && err.contains("'2026-01-01 12:00:00'"),
        "{err}"
    );
    let err = error(e, "INSERT INTO sales.events (id, small) VALUES (1, 70000)").await;
    assert!(
        err.contains("cannot store 70000") && err.contains("main.sales.events.small (SMALLINT)"),
        "{err}"
    );
    let err = error(
        e,
        "INSERT INTO sales.events (id, price) VALUES (1, 12345.5)",
    )
    .await;
    assert!(
        err.contains("cannot store 12345.5") && err.contains("main.sales.events.price"),
        "{err}"
    );
    let err = error(
        e,
        "INSERT INTO sales.events (id, at) VALUES (1, 'yesterday')",
    )
    .await;
    assert!(
        err.contains("cannot store 'yesterday'") && err.contains("main.sales.events.at"),
        "{err}"
    );
    assert_eq!(rows(e, "SELECT count(*) FROM sales.events").await, ["0"]);
    // What fits is stored; a fraction assigned to an integer is rounded.
    rows(
        e,
        "INSERT INTO sales.events VALUES (1, '2026-01-01 12:00:00', 2.5, 1.25)",
    )
    .await;
    assert_eq!(
        rows(e, "SELECT id, at, small, price FROM sales.events").await,
        ["1|2026-01-01T12:00:00Z|3|1.25"]
    );
    // UPDATE: the same refusals, and checked arithmetic, before anything is written.
    let err = error(e, "UPDATE sales.events SET at = 9.5").await;
    assert!(
        err.contains("cannot store 9.5") && err.contains("main.sales.events.at"),
        "{err}"
    );
    let err = error(e, "UPDATE sales.events SET small = small * 100000").await;
    assert!(err.contains("main.sales.events.small"), "{err}");
    let err = error(
        e,
        "UPDATE sales.events SET id = id + CAST(2147483647 AS INT)",
    )
    .await;
    assert!(err.contains("integer out of range"), "{err}");
    rows(e, "UPDATE sales.events SET small = 7.5").await;
    assert_eq!(
        rows(e, "SELECT id, at, small, price FROM sales.events").await,
        ["1|2026-01-01T12:00:00Z|8|1.25"]
    );
}

#[tokio::test]
async fn a_script_says_which_statement_failed() {
    let f = fixture().await;
    let e = &f.engine;
    let err = error(
        e,
        "SELECT 1;\nINSERT INTO sales.orders VALUES (13, 1, 2.0);\nINSERT INTO sales.orders SELECT order_id * 9223372036854775807, customer_id, amount FROM sales.orders WHERE order_id = 10;\nSELECT 2",
    )
    .await;
    assert!(
        err.starts_with("statement 3 (INSERT INTO sales.orders SELECT order_id …): writing to table 'main.sales.orders' failed: bigint out of range: 10 * 9223372036854775807 does not fit in BIGINT"),
        "{err}"
    );
    // The statements before it ran; a NotFound keeps its kind inside a script.
    assert_eq!(rows(e, "SELECT count(*) FROM sales.orders").await, ["4"]);
    let err = e
        .execute("SELECT 1; SELECT * FROM sales.nope")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            basin_sql::SqlError::NotFound { .. } | basin_sql::SqlError::Catalog(_)
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("statement 2 (SELECT * FROM sales.nope): table"),
        "{err}"
    );
}

#[tokio::test]
async fn engine_errors_are_said_once_without_paths() {
    let f = fixture().await;
    let e = &f.engine;
    for sql in [
        "SELECT 1 / 0",
        "SELECT CAST('x' AS INT)",
        "SELECT * FROM sales.orders VERSION AS OF 99",
        "SELECT order_id FROM sales.orders WHERE amount = 'abc'",
    ] {
        let err = error(e, sql).await;
        for noise in [
            "External error",
            "Execution error",
            "Arrow error",
            "file://",
            "bug report",
            "/tmp",
        ] {
            assert!(!err.contains(noise), "{sql}: {err}");
        }
        let first = err.split(": ").next().unwrap_or_default();
        assert_eq!(err.matches(first).count(), 1, "{sql} repeats itself: {err}");
    }
}

#[tokio::test]
async fn time_travel_and_restore_stay_within_the_history() {
    let f = fixture().await;
    let e = &f.engine;
    // sales.orders: version 0 (create), 1 (insert).
    let err = error(e, "SELECT * FROM sales.orders VERSION AS OF 99").await;
    assert_eq!(
        err,
        "table 'main.sales.orders' has no version 99: its versions are 0 to 1; `basin table history main.sales.orders` or system.history lists them"
    );
    let err = error(e, "SELECT * FROM sales.orders TIMESTAMP AS OF '2000-01-01'").await;
    assert!(
        err.starts_with("table 'main.sales.orders' has no data as of 2000-01-01T00:00:00+00:00: its first commit (version 0) is at 20"),
        "{err}"
    );
    assert_eq!(
        rows(e, "SELECT count(*) FROM sales.orders VERSION AS OF 0").await,
        ["0"]
    );
    let table = basin_core::TableRef::new("main", "sales", "orders").unwrap();
    for version in [99, 1, -1] {
        let err = e
            .tables()
            .commit(&e.actor(), &table, basin_tables::Write::Restore { version })
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot restore table 'main.sales.orders' to version {version}: pick a version from 0 to 0 (the current version is 1); `basin table history main.sales.orders` lists them"
            )
        );
    }
}

#[tokio::test]
async fn tablesample_samples_the_rows_one_may_see() {
    let f = fixture().await;
    let e = &f.engine;
    rows(e, "CREATE TABLE sales.many AS SELECT id, id % 2 AS odd FROM (SELECT unnest(range(0, 2000)) AS id)").await;
    let count = |sql: String| async move { rows(e, &sql).await[0].parse::<i64>().unwrap() };
    let all = count("SELECT count(*) FROM sales.many TABLESAMPLE BERNOULLI (100)".into()).await;
    assert_eq!(all, 2000);
    assert_eq!(
        count("SELECT count(*) FROM sales.many TABLESAMPLE SYSTEM (0)".into()).await,
        0
    );
    let some = count("SELECT count(*) FROM sales.many TABLESAMPLE BERNOULLI (10)".into()).await;
    assert!((100..=300).contains(&some), "{some}");
    // REPEATABLE: the same rows each time, other rows for another seed.
    let ids = "SELECT id FROM sales.many m TABLESAMPLE BERNOULLI (5) REPEATABLE (7) WHERE m.odd = 1 ORDER BY id";
    let first = rows(e, ids).await;
    assert!((20..=90).contains(&first.len()), "{}", first.len());
    assert_eq!(rows(e, ids).await, first);
    assert_ne!(rows(e, &ids.replace("(7)", "(8)")).await, first);
    // Time travel and a join.
    assert_eq!(
        rows(e, "SELECT count(*) FROM sales.orders VERSION AS OF 1 TABLESAMPLE BERNOULLI (100) JOIN crm.customers c ON customer_id = c.id").await,
        ["3"]
    );
    for (sql, says) in [
        (
            "SELECT * FROM sales.many TABLESAMPLE BERNOULLI (150)",
            "percentage from 0 to 100",
        ),
        (
            "SELECT * FROM sales.many TABLESAMPLE (10 ROWS)",
            "ROWS on sales.many is not supported",
        ),
        (
            "SELECT * FROM sales.many TABLESAMPLE BERNOULLI (5) REPEATABLE (1.5)",
            "whole number",
        ),
    ] {
        let err = error(e, sql).await;
        assert!(err.contains(says), "{sql}: {err}");
    }
}

#[tokio::test]
async fn tablesample_is_governed() {
    let f = fixture().await;
    // eve sees the GB customers only (ids 1 and 3): a full sample shows those, not more.
    let eve = crate::policy::eve(&f.engine).await;
    assert_eq!(
        rows(
            &eve,
            "SELECT id FROM crm.customers TABLESAMPLE BERNOULLI (100) REPEATABLE (1) ORDER BY id"
        )
        .await,
        ["1", "3"]
    );
    assert_eq!(
        rows(
            &eve,
            "SELECT count(*) FROM crm.customers TABLESAMPLE SYSTEM (100)"
        )
        .await,
        ["2"]
    );
}

#[tokio::test]
async fn merge_refuses_values_its_columns_cannot_take() {
    let f = fixture().await;
    let e = &f.engine;
    rows(e, "CREATE TABLE sales.events (id INT, seen TIMESTAMP)").await;
    rows(
        e,
        "INSERT INTO sales.events VALUES (1, '2026-01-01 00:00:00')",
    )
    .await;
    for sql in [
        "MERGE INTO sales.events t USING (SELECT 2 AS id, 9.5 AS v) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, seen) VALUES (s.id, s.v)",
        "MERGE INTO sales.events t USING (SELECT 1 AS id, 9.5 AS v) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET seen = s.v",
    ] {
        let err = error(e, sql).await;
        assert!(
            err.contains("cannot store s.v (DOUBLE) in column main.sales.events.seen (TIMESTAMP)"),
            "{sql}: {err}"
        );
    }
    assert_eq!(
        rows(e, "SELECT id, seen FROM sales.events").await,
        ["1|2026-01-01T00:00:00Z"]
    );
    rows(e, "MERGE INTO sales.events t USING (SELECT 2 AS id, 3 AS n) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id + s.n)").await;
    assert_eq!(rows(e, "SELECT count(*) FROM sales.events").await, ["2"]);
}

#[tokio::test]
async fn except_all_and_intersect_all_count_copies() {
    let f = fixture().await;
    let e = &f.engine;
    let left = "(VALUES (1, 'a'), (1, 'a'), (1, 'a'), (2, 'b'), (NULL, 'n'), (NULL, 'n'))";
    let right = "(VALUES (1, 'a'), (2, 'b'), (2, 'b'), (NULL, 'n'), (3, 'c'))";
    let run = |op: &str| {
        format!(
            "SELECT * FROM (SELECT * FROM {left} AS l(x, y) {op} SELECT * FROM {right} AS r(x, y)) ORDER BY x, y"
        )
    };
    // m - n copies of each row (at least none), and min(m, n): the standard's counts.
    assert_eq!(rows(e, &run("EXCEPT ALL")).await, ["1|a", "1|a", "null|n"]);
    assert_eq!(
        rows(e, &run("INTERSECT ALL")).await,
        ["1|a", "2|b", "null|n"]
    );
    // The plain forms stay sets.
    assert_eq!(rows(e, &run("EXCEPT")).await, Vec::<String>::new());
    assert_eq!(rows(e, &run("INTERSECT")).await, ["1|a", "2|b", "null|n"]);
    // Chained with a plain form, and over columns of different types (coerced by casts).
    assert_eq!(
        rows(
            e,
            "SELECT * FROM ((VALUES (1), (1)) EXCEPT ALL (VALUES (1)) EXCEPT (VALUES (2)))"
        )
        .await,
        ["1"]
    );
    assert_eq!(
        rows(e, "SELECT * FROM (SELECT CAST(x AS INT) AS x FROM (VALUES (1), (1), (2)) AS t(x) EXCEPT ALL SELECT 1) ORDER BY x").await,
        ["1", "2"]
    );
    // A semi or anti join the query writes itself is left alone.
    assert_eq!(
        rows(e, &format!("SELECT x FROM {left} AS l(x, y) WHERE x NOT IN (SELECT x FROM {right} AS r(x, y) WHERE x IS NOT NULL) ORDER BY x")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        rows(e, &format!("SELECT x FROM {left} AS l(x, y) WHERE EXISTS (SELECT 1 FROM {right} AS r(x, y) WHERE r.x = l.x) ORDER BY x")).await,
        ["1", "1", "1", "2"]
    );
}
