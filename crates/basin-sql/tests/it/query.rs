use crate::*;

#[tokio::test]
async fn joins_across_datasets_and_hubs() {
    let f = fixture().await;
    let got = rows(
        &f.engine,
        "SELECT c.name, sum(o.amount) AS total FROM sales.orders o JOIN crm.customers c ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name",
    )
    .await;
    assert_eq!(got, ["Ada|12.5", "Grace|100.0"]);
    let got = rows(
        &f.engine,
        "SELECT o.order_id, c.name FROM us.sales.orders o JOIN main.crm.customers c ON o.customer_id = c.id",
    )
    .await;
    assert_eq!(got, ["20|Grace"]);
    let got = rows(
        &f.engine,
        "WITH big AS (SELECT * FROM sales.orders WHERE amount > 6) SELECT count(*) FROM big",
    )
    .await;
    assert_eq!(got, ["2"]);
}

#[tokio::test]
async fn time_travel_by_version_and_timestamp() {
    let f = fixture().await;
    // sales.orders: version 0 = create, version 1 = insert of 3 rows.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.engine
        .execute("DELETE FROM sales.orders WHERE order_id = 10")
        .await
        .unwrap();
    assert_eq!(
        rows(&f.engine, "SELECT count(*) FROM sales.orders").await,
        ["2"]
    );
    assert_eq!(
        rows(
            &f.engine,
            "SELECT count(*) FROM sales.orders VERSION AS OF 1"
        )
        .await,
        ["3"]
    );
    assert_eq!(
        rows(
            &f.engine,
            "SELECT count(*) FROM sales.orders VERSION AS OF 0"
        )
        .await,
        ["0"]
    );
    let sql = format!("SELECT count(*) FROM sales.orders TIMESTAMP AS OF '{between}'");
    assert_eq!(rows(&f.engine, &sql).await, ["3"]);
    // Old and new versions of one table in one query.
    let got = rows(
        &f.engine,
        "SELECT o.order_id FROM sales.orders VERSION AS OF 1 o LEFT JOIN sales.orders n ON o.order_id = n.order_id WHERE n.order_id IS NULL",
    )
    .await;
    assert_eq!(got, ["10"]);
    let err = error(&f.engine, "SELECT * FROM sales.orders VERSION AS OF 99").await;
    assert!(err.contains("no version 99"), "{err}");
    let err = error(
        &f.engine,
        "SELECT * FROM sales.orders TIMESTAMP AS OF 'yesterday'",
    )
    .await;
    assert!(err.contains("cannot read 'yesterday' as a time"), "{err}");
}

#[tokio::test]
async fn system_tables_describe_the_catalog() {
    let f = fixture().await;
    assert_eq!(
        rows(&f.engine, "SELECT name FROM system.hubs ORDER BY name").await,
        ["main", "us"]
    );
    assert_eq!(
        rows(
            &f.engine,
            "SELECT hub, name, layer FROM system.datasets ORDER BY hub, name"
        )
        .await,
        ["main|crm|source", "main|sales|source", "us|sales|source"]
    );
    assert_eq!(
        rows(
            &f.engine,
            "SELECT hub, dataset, name, primary_key FROM system.tables ORDER BY hub, dataset, name"
        )
        .await,
        [
            "main|crm|customers|",
            "main|sales|orders|order_id",
            "us|sales|orders|"
        ]
    );
    assert_eq!(
        rows(&f.engine, "SELECT ordinal, name, data_type FROM system.columns WHERE dataset = 'sales' AND hub = 'main'").await,
        ["1|order_id|BIGINT", "2|customer_id|BIGINT", "3|amount|DOUBLE"]
    );
    let history = rows(
        &f.engine,
        "SELECT version, operation FROM system.history WHERE hub = 'main' AND table_name = 'orders' ORDER BY version",
    )
    .await;
    assert_eq!(history, ["0|CREATE TABLE", "1|WRITE"]);
}

#[tokio::test]
async fn explain_shows_a_plan() {
    let f = fixture().await;
    let plan = rows(
        &f.engine,
        "EXPLAIN SELECT order_id FROM sales.orders WHERE amount > 10",
    )
    .await
    .join("\n");
    assert!(
        plan.contains("logical_plan") && plan.contains("amount"),
        "{plan}"
    );
}

#[tokio::test]
async fn unknown_names_are_named_with_a_suggestion() {
    let f = fixture().await;
    let err = error(&f.engine, "SELECT * FROM sales.ordres").await;
    assert_eq!(
        err,
        "table 'main.sales.ordres' not found; did you mean 'main.sales.orders'?"
    );
    let err = error(&f.engine, "SELECT * FROM sale.orders").await;
    assert_eq!(
        err,
        "dataset 'main.sale' not found; did you mean 'main.sales'?"
    );
    let err = error(&f.engine, "SELECT amout FROM sales.orders").await;
    assert!(
        err.starts_with("column 'amout' not found; did you mean 'amount'?"),
        "{err}"
    );
    let err = error(&f.engine, "SELECT * FROM system.tabels").await;
    assert!(err.contains("did you mean 'system.tables'"), "{err}");
    let err = error(&f.engine, "SELECT * FROM orders").await;
    assert!(err.contains("dataset.table"), "{err}");
    let err = error(&f.engine, "SELEC 1").await;
    assert!(err.starts_with("SQL syntax error"), "{err}");
}

/// sqlparser backtracks: without a bound, a dotted name of n parts before an unclosed bracket
/// takes 2^n steps (40 parts: days of CPU). Basin bounds the work by the text's length.
#[tokio::test]
async fn a_statement_that_makes_the_parser_backtrack_is_refused_at_once() {
    let f = fixture().await;
    let runaway = format!("SELECT {}[(", vec!["a"; 40].join("."));
    let err = error(&f.engine, &runaway).await;
    assert!(err.contains("takes too long to parse"), "{err}");
    assert!(err.contains("brackets"), "{err}");
    let dotted = "SELECT main.sales.orders.order_id FROM main.sales.orders ORDER BY 1 LIMIT 1";
    assert_eq!(rows(&f.engine, dotted).await, ["10"]);
}

/// Operators in a row build a tree as deep as the row is long, and cloning, planning and
/// dropping it recurse: 10,000 `OR`s overflowed the stack and aborted the process, 400 integer
/// `+`s took 13 s to plan. Such statements are refused before they are parsed.
#[tokio::test]
async fn a_statement_too_deep_to_plan_safely_is_refused_with_the_way_out() {
    let f = fixture().await;
    let chain = |n: usize, term: &str, op: &str| vec![term; n].join(op);
    let filter = |condition: String| format!("SELECT count(*) FROM sales.orders WHERE {condition}");
    let too_deep = [
        filter(chain(1_100, "order_id = 1", " OR ")),
        // Keywords inside a chain do not start a new one.
        filter(chain(2_100, "order_id IS DISTINCT FROM 1", " AND ")),
        filter(chain(
            2_100,
            "CASE WHEN order_id = 1 THEN true ELSE false END",
            " OR ",
        )),
        // Parentheses do not hide a chain's depth: 40 levels of 100.
        filter((0..40).fold("order_id = 1".to_string(), |inner, _| {
            format!("({inner}) OR {}", chain(50, "order_id = 1", " OR "))
        })),
        chain(300, "SELECT 1", " UNION ALL "),
        format!(
            "COPY (SELECT 1 WHERE {}) TO 'out'",
            chain(1_100, "1 = 1", " OR ")
        ),
        // A keyword used as a name does not start a new chain.
        format!(
            "SELECT 1 FROM (SELECT true AS \"on\") s WHERE {}",
            chain(2_100, "on", " OR ")
        ),
        format!("SELECT make_array(1){}", "[1]".repeat(2_100)),
    ];
    for sql in &too_deep {
        let err = error(&f.engine, sql).await;
        assert!(err.contains("more than 2000 operators deep"), "{err}");
        assert!(err.contains("x IN (…)"), "{err}");
    }
    let interval = format!("SELECT {}'1' DAY", "INTERVAL ".repeat(3_000));
    let err = error(&f.engine, &interval).await;
    assert!(err.contains("INTERVAL INTERVAL"), "{err}");
    let too_large = [
        format!("SELECT {} FROM sales.orders", chain(130, "order_id", " + ")),
        format!(
            "SELECT {} FROM sales.orders",
            chain(130, "order_id::bigint", " + ")
        ),
        format!(
            "SELECT {} FROM sales.orders",
            chain(30, &format!("({})", chain(6, "order_id", "*")), " - ")
        ),
    ];
    for sql in &too_large {
        let err = error(&f.engine, sql).await;
        assert!(
            err.contains("arithmetic expression of more than 128 operators"),
            "{err}"
        );
    }

    let joins = |n: usize| {
        let more = (1..n).map(|i| format!("JOIN sales.orders t{i} ON t{i}.order_id = t0.order_id"));
        format!(
            "SELECT count(*) FROM sales.orders t0 {}",
            more.collect::<Vec<_>>().join(" ")
        )
    };
    let err = error(&f.engine, &joins(101)).await;
    assert!(
        err.contains("joins more than 100 tables in one FROM"),
        "{err}"
    );
    let tables = (0..101)
        .map(|i| format!("sales.orders t{i}"))
        .collect::<Vec<_>>();
    let err = error(
        &f.engine,
        &format!("SELECT 1 FROM {} LIMIT 1", tables.join(", ")),
    )
    .await;
    assert!(
        err.contains("joins more than 100 tables in one FROM"),
        "{err}"
    );

    // Statements well inside the bounds run.
    assert_eq!(rows(&f.engine, &joins(20)).await, ["3"]);
    assert_eq!(
        rows(&f.engine, &filter(chain(400, "order_id > 0", " OR "))).await,
        ["3"]
    );
    let weighted = (0..60)
        .map(|i| format!("{i} * order_id"))
        .collect::<Vec<_>>()
        .join(" + ");
    assert_eq!(
        rows(&f.engine, &format!("SELECT {weighted} FROM sales.orders"))
            .await
            .len(),
        3
    );
    let nested = format!("SELECT {}1{} AS n", "(".repeat(40), ")".repeat(40));
    assert_eq!(rows(&f.engine, &nested).await, ["1"]);
    let list: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let long_in = filter(format!("order_id IN ({})", list.join(", ")));
    assert_eq!(rows(&f.engine, &long_in).await, ["3"]);
    let cases = (0..300)
        .map(|i| format!("WHEN order_id = {i} THEN {i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let case = format!("SELECT CASE {cases} ELSE -1 END FROM sales.orders ORDER BY 1");
    assert_eq!(rows(&f.engine, &case).await, ["10", "11", "12"]);
    let values = (0..5_000)
        .map(|i| format!("({i}, -{i})"))
        .collect::<Vec<_>>();
    let inserted = format!(
        "SELECT count(*) FROM (VALUES {}) v(a, b)",
        values.join(", ")
    );
    assert_eq!(rows(&f.engine, &inserted).await, ["5000"]);
}
