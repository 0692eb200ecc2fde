//! Governance on every path, not only reads: the findings of the security review, each
//! reproduced through SQL and shown closed.

use basin_catalog::access::Securable;
use basin_core::TableRef;
use basin_sql::Engine;
use basin_tables::Write;

use crate::{error, fixture, rows};

/// A user with the grants `sql` gives it (run by the operator).
async fn user(engine: &Engine, name: &str, grants: &[&str]) -> Engine {
    let catalog = engine.catalog();
    catalog
        .create_user(name, None, &Default::default())
        .await
        .unwrap();
    for g in grants {
        engine
            .execute(&format!("{g} TO {name}"))
            .await
            .unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let snapshot = catalog.access_snapshot().await.unwrap();
    engine.as_principal(snapshot.principal(name, &[]))
}

/// Tags a column `pii` and encrypts it, as an administrator does.
async fn tag_pii(engine: &Engine, table: &str, column: &str) {
    tag_pii_as(engine, table, column, &["pii"]).await
}

/// Sets a column's tags (which make it PII) and encrypts it, as an administrator does.
async fn tag_pii_as(engine: &Engine, table: &str, column: &str, tags: &[&str]) {
    let t = TableRef::parse(table).unwrap();
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    engine
        .catalog()
        .set_tags(&Securable::table(&t), Some(column), &tags)
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

const CUSTOMERS: &str = "SELECT id, name, country FROM crm.customers ORDER BY id";

#[tokio::test]
async fn explain_analyze_cannot_write() {
    let f = fixture().await;
    let reader = user(
        &f.engine,
        "reader",
        &["GRANT SELECT ON TABLE crm.customers"],
    )
    .await;
    let before = rows(&f.engine, CUSTOMERS).await;
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO crm.customers VALUES (9, 'Mallory', 'XX')",
        "EXPLAIN ANALYZE INSERT OVERWRITE crm.customers SELECT 9, 'Mallory', 'XX'",
        "EXPLAIN INSERT INTO crm.customers VALUES (9, 'Mallory', 'XX')",
    ] {
        for engine in [&reader, &f.engine] {
            let e = error(engine, sql).await;
            assert!(e.contains("EXPLAIN works on queries"), "{sql}: {e}");
        }
    }
    assert_eq!(rows(&f.engine, CUSTOMERS).await, before);
    // EXPLAIN of a query still works, for everyone who may read.
    assert!(
        !rows(&reader, "EXPLAIN SELECT * FROM crm.customers")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn time_travel_shows_old_clear_values_through_the_current_policy() {
    let f = fixture().await;
    tag_pii(&f.engine, "crm.customers", "name").await;
    let reader = user(
        &f.engine,
        "reader",
        &["GRANT SELECT ON TABLE crm.customers"],
    )
    .await;
    // Version 0 was written before 'name' became PII: still, the reader sees only tokens.
    let old = rows(
        &reader,
        "SELECT name FROM crm.customers VERSION AS OF 0 ORDER BY id",
    )
    .await;
    let now = rows(&reader, "SELECT name FROM crm.customers ORDER BY id").await;
    assert!(old.iter().all(|v| v.starts_with("enc:v")), "{old:?}");
    assert_eq!(old, now, "old clear values read as the tokens of today");
    // Restoring that version makes no clear value current: it is encrypted again at once.
    let t = TableRef::parse("crm.customers").unwrap();
    f.engine
        .tables()
        .commit(&f.engine.actor(), &t, Write::Restore { version: 0 })
        .await
        .unwrap();
    assert_eq!(
        rows(&reader, "SELECT name FROM crm.customers ORDER BY id").await,
        now,
        "the reader still sees tokens"
    );
    let raw =
        basin_lake::LakeTable::open(&f.engine.catalog().require_table(&t).await.unwrap().location)
            .await
            .unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_table("raw", raw.provider().await.unwrap())
        .unwrap();
    let stored = ctx
        .sql("SELECT count(*) FROM raw WHERE name NOT LIKE 'enc:v%'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let clear =
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(stored[0].column(0))
            .value(0);
    assert_eq!(clear, 0, "no clear value is stored in the current version");
    // An administrator (UNMASK) reads old and new versions in clear.
    assert_eq!(
        rows(
            &f.engine,
            "SELECT name FROM crm.customers VERSION AS OF 0 ORDER BY id"
        )
        .await,
        ["Ada", "Grace", "Alan"]
    );
    assert_eq!(
        rows(&f.engine, "SELECT name FROM crm.customers ORDER BY id").await,
        ["Ada", "Grace", "Alan"]
    );
}

#[tokio::test]
async fn copied_tokens_never_decrypt() {
    let f = fixture().await;
    tag_pii(&f.engine, "crm.customers", "name").await;
    // Mallory sees tokens and may create tables in 'sales'.
    let mallory = user(
        &f.engine,
        "mallory",
        &[
            "GRANT SELECT ON TABLE crm.customers",
            "GRANT CREATE ON DATASET sales",
        ],
    )
    .await;
    rows(
        &mallory,
        "CREATE TABLE sales.loot AS SELECT id, name FROM crm.customers",
    )
    .await;
    // She owns the copy but cannot unmask it, tag it pii, or mask it herself.
    let e = error(&mallory, "GRANT UNMASK ON TABLE sales.loot TO mallory").await;
    assert!(e.contains("only administrators grant UNMASK"), "{e}");
    // Even when an administrator tags the copy pii, its values are encrypted again: whoever
    // unmasks it reads the tokens, never the names.
    tag_pii(&f.engine, "sales.loot", "name").await;
    let unmasked = rows(&f.engine, "SELECT name FROM sales.loot ORDER BY id").await;
    assert!(
        unmasked.iter().all(|v| v.starts_with("enc:v")),
        "{unmasked:?}"
    );
    assert!(!unmasked.iter().any(|v| v == "Ada"));
}

#[tokio::test]
async fn writing_pii_needs_unmask() {
    let f = fixture().await;
    tag_pii(&f.engine, "crm.customers", "name").await;
    let writer = user(
        &f.engine,
        "writer",
        &["GRANT SELECT, MODIFY ON TABLE crm.customers"],
    )
    .await;
    // A guessed value written into a PII column would be comparable with the tokens.
    let e = error(
        &writer,
        "INSERT INTO crm.customers (id, name, country) VALUES (9, 'Ada', 'GB')",
    )
    .await;
    assert!(e.contains("personal data") && e.contains("UNMASK"), "{e}");
    // Other columns stay writable.
    rows(
        &writer,
        "INSERT INTO crm.customers (id, country) VALUES (9, 'GB')",
    )
    .await;
    assert_eq!(
        rows(&f.engine, "SELECT count(*) FROM crm.customers").await,
        ["4"]
    );
}

#[tokio::test]
async fn merge_cannot_store_clear_pii() {
    let f = fixture().await;
    tag_pii(&f.engine, "crm.customers", "name").await;
    let e = error(
        &f.engine,
        "MERGE INTO crm.customers t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET name = 'leaked'",
    )
    .await;
    assert!(e.contains("pii") && e.contains("same name"), "{e}");
    // Reads keep working, and the value is unchanged.
    assert_eq!(
        rows(&f.engine, "SELECT name FROM crm.customers WHERE id = 1").await,
        ["Ada"]
    );
    // From the source column of the same name, the value is encrypted on its way in.
    rows(
        &f.engine,
        "MERGE INTO crm.customers t USING (SELECT 1 AS id, 'Ada L.' AS name) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name",
    )
    .await;
    assert_eq!(
        rows(&f.engine, "SELECT name FROM crm.customers WHERE id = 1").await,
        ["Ada L."]
    );
}

#[tokio::test]
async fn history_hides_parameters_from_restricted_readers() {
    let f = fixture().await;
    rows(&f.engine, "DELETE FROM sales.orders WHERE customer_id = 2").await;
    let analyst = user(
        &f.engine,
        "analyst",
        &["GRANT SELECT (order_id, amount) ON TABLE sales.orders"],
    )
    .await;
    let history = "SELECT parameters FROM system.history WHERE table_name = 'orders' AND operation = 'DELETE'";
    let seen = rows(&analyst, history).await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|p| p.contains("redacted") && !p.contains("customer_id")),
        "{seen:?}"
    );
    // Storage paths are for administrators.
    assert_eq!(
        rows(
            &analyst,
            "SELECT location FROM system.tables WHERE name = 'orders' AND hub = 'main'"
        )
        .await,
        ["null"]
    );
    // Whoever sees the whole table sees the predicate.
    let full = rows(&f.engine, history).await;
    assert!(full.iter().any(|p| p.contains("customer_id")), "{full:?}");
}

#[tokio::test]
async fn create_answers_hidden_like_missing() {
    let f = fixture().await;
    // No grant at all in 'crm': a hidden table and a missing one answer alike.
    let outsider = user(
        &f.engine,
        "outsider",
        &["GRANT SELECT ON TABLE sales.orders"],
    )
    .await;
    let hidden = error(&outsider, "CREATE TABLE crm.customers (x INT)").await;
    let missing = error(&outsider, "CREATE TABLE crm.nothing_here (x INT)").await;
    assert_eq!(
        hidden.replace("customers", "T"),
        missing.replace("nothing_here", "T")
    );
    assert!(!hidden.contains("already exists"), "{hidden}");
    let hidden = error(
        &outsider,
        "CREATE TABLE IF NOT EXISTS crm.customers (x INT)",
    )
    .await;
    assert!(!hidden.contains("already exists"), "{hidden}");
    // CREATE on a dataset does not show its tables.
    let creator = user(&f.engine, "creator", &["GRANT CREATE ON DATASET crm"]).await;
    assert!(
        rows(
            &creator,
            "SELECT name FROM system.tables WHERE dataset = 'crm'"
        )
        .await
        .is_empty()
    );
    let e = error(&creator, "SELECT * FROM crm.customers").await;
    assert!(e.contains("not found"), "{e}");
    // It may create a table, which it then owns.
    rows(&creator, "CREATE TABLE crm.mine (x INT)").await;
    rows(&creator, "INSERT INTO crm.mine VALUES (1)").await;
    assert_eq!(rows(&creator, "SELECT x FROM crm.mine").await, ["1"]);
}

#[tokio::test]
async fn unmask_on_a_tag_follows_column_tags() {
    let f = fixture().await;
    let catalog = f.engine.catalog();
    catalog
        .define_tag("classification", &["pii".into(), "pci".into()])
        .await
        .unwrap();
    rows(
        &f.engine,
        "CREATE TABLE crm.cards AS SELECT 1 AS id, 'alice@x' AS email, '4111' AS card",
    )
    .await;
    tag_pii_as(&f.engine, "crm.cards", "email", &["classification=pii"]).await;
    // 'pci' alone is not PII: the card column is tagged pii as well.
    tag_pii_as(
        &f.engine,
        "crm.cards",
        "card",
        &["classification=pci", "pii"],
    )
    .await;
    let payments = user(
        &f.engine,
        "payments",
        &[
            "GRANT SELECT ON TABLE crm.cards",
            "GRANT UNMASK ON TAG classification IN ('pci')",
        ],
    )
    .await;
    let seen = rows(&payments, "SELECT email, card FROM crm.cards").await;
    let [row] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    let (email, card) = row.split_once('|').unwrap();
    assert!(email.starts_with("enc:v"), "PII stays encrypted: {email}");
    assert_eq!(card, "4111", "PCI is unmasked by the tag grant");
}

#[tokio::test]
async fn row_filters_with_any_function_are_checked_once_and_work() {
    let f = fixture().await;
    let t = TableRef::parse("crm.customers").unwrap();
    basin_sql::check_policy_expression(
        &f.engine,
        &t,
        basin_sql::PolicyExpression::RowFilter("coalesce(country, 'GB') = 'GB'"),
    )
    .await
    .unwrap();
    let e = basin_sql::check_policy_expression(
        &f.engine,
        &t,
        basin_sql::PolicyExpression::RowFilter("no_such_column = 1"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot be used as a row filter"), "{e}");
    let gb = user(&f.engine, "gb", &["GRANT SELECT ON TABLE crm.customers"]).await;
    f.engine
        .catalog()
        .set_row_filter(&basin_catalog::access::RowFilter {
            table: t,
            grantee: "gb".into(),
            expression: "coalesce(country, 'GB') = 'GB'".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        rows(&gb, "SELECT id FROM crm.customers ORDER BY id").await,
        ["1", "3"]
    );
}

#[tokio::test]
async fn every_write_is_one_event_and_one_audit_row_of_its_principal() {
    let f = fixture().await;
    let owner = user(&f.engine, "owner", &["GRANT CREATE ON DATASET sales"]).await;
    let mut events = f.engine.tables().subscribe();
    for sql in [
        "CREATE TABLE sales.items (id BIGINT, n BIGINT)",
        "INSERT INTO sales.items VALUES (1, 1), (2, 2)",
        "UPDATE sales.items SET n = 3 WHERE id = 1",
        "DELETE FROM sales.items WHERE id = 2",
        "MERGE INTO sales.items t USING (SELECT 5 AS id, 5 AS n) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, n) VALUES (s.id, s.n)",
    ] {
        rows(&owner, sql).await;
        let event = events
            .try_recv()
            .unwrap_or_else(|e| panic!("{sql}: no event ({e})"));
        assert_eq!(event.table, "main.sales.items");
        assert_eq!(event.principal, "owner");
        assert!(events.try_recv().is_err(), "{sql}: more than one event");
    }
    let audit = f.engine.catalog().audit_events(None, 1000).await.unwrap();
    let mine: Vec<_> = audit
        .iter()
        .filter(|e| e.target == "main.sales.items" && e.outcome == "ok")
        .collect();
    assert_eq!(mine.len(), 5, "{mine:?}");
    assert!(mine.iter().all(|e| e.principal == "owner"));
    // A refused write leaves an audit row too, and no event.
    let reader = user(&f.engine, "reader", &["GRANT SELECT ON TABLE sales.items"]).await;
    error(&reader, "DELETE FROM sales.items").await;
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn hidden_columns_are_not_named_by_keys_or_partitions() {
    let f = fixture().await;
    let analyst = user(
        &f.engine,
        "analyst",
        &["GRANT SELECT (customer_id, amount) ON TABLE sales.orders"],
    )
    .await;
    // The key column order_id is hidden from the analyst: no listing names it.
    assert_eq!(
        rows(
            &analyst,
            "SELECT primary_key FROM system.tables WHERE name = 'orders' AND hub = 'main'"
        )
        .await,
        [""]
    );
    let (table, _, _) =
        basin_sql::access::table_details(&analyst, &TableRef::parse("sales.orders").unwrap())
            .await
            .unwrap();
    assert!(table.primary_key.is_empty(), "{:?}", table.primary_key);
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "amount"]);
    // Whoever sees the key sees it named.
    assert_eq!(
        rows(
            &f.engine,
            "SELECT primary_key FROM system.tables WHERE name = 'orders' AND hub = 'main'"
        )
        .await,
        ["order_id"]
    );
}

#[tokio::test]
async fn table_changes_read_through_the_readers_policy() {
    let f = fixture().await;
    for sql in [
        "UPDATE crm.customers SET name = 'Ada L.' WHERE id = 1",
        "DELETE FROM crm.customers WHERE id = 2",
    ] {
        rows(&f.engine, sql).await;
    }
    tag_pii(&f.engine, "crm.customers", "name").await;
    let reader = user(
        &f.engine,
        "reader",
        &["GRANT SELECT ON TABLE crm.customers"],
    )
    .await;
    let t = TableRef::parse("crm.customers").unwrap();
    f.engine
        .catalog()
        .set_row_filter(&basin_catalog::access::RowFilter {
            table: t.clone(),
            grantee: "reader".into(),
            expression: "country = 'GB'".into(),
        })
        .await
        .unwrap();
    let changes = "SELECT id, name, _change_type, _commit_version FROM table_changes('crm.customers', 1, 2) ORDER BY _commit_version, _change_type";
    // The administrator sees every change in clear, before and after.
    assert_eq!(
        rows(&f.engine, changes).await,
        [
            "1|Ada L.|update_postimage|1",
            "1|Ada|update_preimage|1",
            "2|Grace|delete|2"
        ]
    );
    // The reader: only the rows its filter admits, PII as tokens, also in the old versions.
    let seen = rows(&reader, changes).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        let cells: Vec<&str> = r.split('|').collect();
        assert_eq!(cells[0], "1", "{seen:?}");
        assert!(
            !cells[1].starts_with("Ada"),
            "a clear name reached the reader: {seen:?}"
        );
    }
    // A range outside the history names the versions there are.
    let e = error(
        &reader,
        "SELECT * FROM table_changes('crm.customers', 1, 99)",
    )
    .await;
    assert!(e.contains("up to the latest, 3"), "{e}");
    let e = error(&reader, "SELECT * FROM table_changes(crm.customers, 1)").await;
    assert!(e.contains("quoted name"), "{e}");
}
