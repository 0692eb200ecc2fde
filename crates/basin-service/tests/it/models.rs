//! Incremental models over a real catalog and real Delta tables: after any sequence of upstream
//! inserts, updates and deletes, an incremental run leaves the table equal to a full rebuild
//! (property-based), and each run recomputes only what changed.

use std::collections::BTreeMap;

use basin_core::TableRef;
use basin_service::{Hub, Project, Session};
use basin_testkit::{DataDir, rows};
use proptest::prelude::*;

const PROJECT: &str = "[project]\nname = \"shop\"\n\n[datasets.semantic]\nlayer = \"semantic\"\n";

/// Sales per region and status: a join, a filter, GROUP BY, an aggregate that deletes cannot
/// be subtracted from (max) and HAVING.
const SALES: &str = "-- materialized: incremental
-- unique_key: region, status
SELECT c.region, o.status, count(*) AS orders, sum(o.amount) AS revenue, max(o.amount) AS biggest
FROM source.orders o JOIN source.customers c ON o.customer_id = c.id
WHERE o.amount > 0
GROUP BY c.region, o.status
HAVING count(*) >= 1";

/// Each order with its customer's region, if any: a LEFT JOIN keyed by the order.
const ORDERS: &str = "-- materialized: incremental
-- unique_key: id
SELECT o.id, o.amount, upper(o.status) AS status, c.region
FROM source.orders o LEFT JOIN source.customers c ON o.customer_id = c.id";

fn project() -> Project {
    Project::from_files(&BTreeMap::from([
        ("basin.toml".to_string(), PROJECT.to_string()),
        ("models/semantic/sales.sql".to_string(), SALES.to_string()),
        ("models/semantic/orders.sql".to_string(), ORDERS.to_string()),
    ]))
    .unwrap()
}

/// A hub with `source.orders` and `source.customers` filled, and the project applied.
async fn shop(data: &DataDir) -> (Hub, Session) {
    let hub = crate::hub_of(data);
    data.catalog.ensure_admin("admin").await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    for sql in [
        "CREATE TABLE source.customers (id BIGINT, region VARCHAR)",
        "INSERT INTO source.customers VALUES (1, 'north'), (2, 'south'), (3, 'north')",
        "CREATE TABLE source.orders (id BIGINT, customer_id BIGINT, status VARCHAR, amount BIGINT)",
        "INSERT INTO source.orders VALUES (1, 1, 'open', 10), (2, 2, 'open', 20), (3, 3, 'shipped', 30), (4, 9, 'open', 5)",
    ] {
        rows(admin.engine(), sql).await;
    }
    let applied = admin.apply_project(&project(), None).await.unwrap();
    assert!(
        applied.runs.iter().all(|r| r.status == "ok"),
        "{:?}",
        applied.runs
    );
    (hub, admin)
}

/// The model's table and what a full rebuild would hold now, each sorted.
async fn table_and_rebuild(admin: &Session, table: &str, file: &str) -> (Vec<String>, Vec<String>) {
    let sql = file
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut have = rows(admin.engine(), &format!("SELECT * FROM {table}")).await;
    let mut want = rows(admin.engine(), &sql).await;
    have.sort();
    want.sort();
    (have, want)
}

async fn run(admin: &Session, hub: &Hub, table: &str) -> basin_catalog::ModelRun {
    let t = TableRef::parse(table).unwrap();
    let mut runs = admin.run_model(hub, &t, false, false).await.unwrap();
    let run = runs.remove(0);
    assert_eq!(run.status, "ok", "{run:?}");
    run
}

/// One upstream change.
#[derive(Debug, Clone)]
enum Op {
    InsertOrder {
        id: i64,
        customer: i64,
        status: &'static str,
        amount: i64,
    },
    Reprice {
        modulo: i64,
        delta: i64,
    },
    SetStatus {
        id: i64,
        status: &'static str,
    },
    DeleteOrders {
        modulo: i64,
        rest: i64,
    },
    InsertCustomer {
        id: i64,
        region: &'static str,
    },
    MoveCustomer {
        id: i64,
        region: &'static str,
    },
    DeleteCustomer {
        id: i64,
    },
}

impl Op {
    fn sql(&self) -> String {
        match self {
            Op::InsertOrder {
                id,
                customer,
                status,
                amount,
            } => {
                format!("INSERT INTO source.orders VALUES ({id}, {customer}, '{status}', {amount})")
            }
            Op::Reprice { modulo, delta } => format!(
                "UPDATE source.orders SET amount = amount + {delta} WHERE id % {modulo} = 0"
            ),
            Op::SetStatus { id, status } => {
                format!("UPDATE source.orders SET status = '{status}' WHERE id = {id}")
            }
            Op::DeleteOrders { modulo, rest } => {
                format!("DELETE FROM source.orders WHERE id % {modulo} = {rest}")
            }
            Op::InsertCustomer { id, region } => {
                format!("INSERT INTO source.customers VALUES ({id}, '{region}')")
            }
            Op::MoveCustomer { id, region } => {
                format!("UPDATE source.customers SET region = '{region}' WHERE id = {id}")
            }
            Op::DeleteCustomer { id } => format!("DELETE FROM source.customers WHERE id = {id}"),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(vec!["open", "shipped", "lost"]);
    let region = prop::sample::select(vec!["north", "south", "east"]);
    prop_oneof![
        3 => (1..40i64, 0..6i64, status.clone(), -10..60i64).prop_map(|(id, customer, status, amount)| {
            Op::InsertOrder { id, customer, status, amount }
        }),
        2 => (2..5i64, -25..25i64).prop_map(|(modulo, delta)| Op::Reprice { modulo, delta }),
        1 => (1..40i64, status).prop_map(|(id, status)| Op::SetStatus { id, status }),
        1 => (3..7i64, 0..3i64).prop_map(|(modulo, rest)| Op::DeleteOrders { modulo, rest }),
        1 => (0..7i64, region.clone()).prop_map(|(id, region)| Op::InsertCustomer { id, region }),
        1 => (0..7i64, region).prop_map(|(id, region)| Op::MoveCustomer { id, region }),
        1 => (0..7i64).prop_map(|id| Op::DeleteCustomer { id }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// After any sequence of upstream changes, with runs in between, each incremental model
    /// holds exactly what a full rebuild would.
    #[test]
    fn an_incremental_model_equals_its_full_rebuild(steps in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..5)) {
        crate::on_large_stack(move || async move {
            let data = DataDir::with(&["main"], &["source"]).await;
            let (hub, admin) = shop(&data).await;
            for ops in &steps {
                for op in ops {
                    rows(admin.engine(), &op.sql()).await;
                }
                for (table, file) in [("main.semantic.sales", SALES), ("main.semantic.orders", ORDERS)] {
                    let done = run(&admin, &hub, table).await;
                    assert!(done.refresh.starts_with("incremental") || done.refresh.starts_with("up to date"), "{table}: {}", done.refresh);
                    let (have, want) = table_and_rebuild(&admin, table, file).await;
                    assert_eq!(have, want, "{table} after {ops:?}");
                }
            }
        });
    }
}

/// Keyed by status and order: changes to many orders bound the id by its range (the status
/// stays listed), and the orders inside that range that did not change come out the same.
const BY_STATUS: &str = "-- materialized: incremental
-- unique_key: status, id
SELECT o.status, o.id, o.amount * 2 AS doubled FROM source.orders o";

#[test]
fn many_changed_keys_are_replaced_through_their_range() {
    crate::on_large_stack(|| async {
        let data = DataDir::with(&["main"], &["source"]).await;
        let (hub, admin) = shop(&data).await;
        let mut files = BTreeMap::from([
            ("basin.toml".to_string(), PROJECT.to_string()),
            (
                "models/semantic/by_status.sql".to_string(),
                BY_STATUS.to_string(),
            ),
        ]);
        files.insert("models/semantic/sales.sql".into(), SALES.into());
        files.insert("models/semantic/orders.sql".into(), ORDERS.into());
        admin
            .apply_project(&Project::from_files(&files).unwrap(), None)
            .await
            .unwrap();
        // Orders that the next changes leave alone, inside the range those changes span.
        rows(
            admin.engine(),
            "INSERT INTO source.orders VALUES (101, 1, 'open', 7), (151, 2, 'open', 8), (199, 3, 'shipped', 9)",
        )
        .await;
        run(&admin, &hub, "main.semantic.by_status").await;
        let many: Vec<String> = (0..100)
            .map(|i| format!("({}, 1, 'open', {i})", 100 + 2 * i))
            .collect();
        for sql in [
            format!("INSERT INTO source.orders VALUES {}", many.join(", ")),
            "UPDATE source.orders SET amount = amount + 1 WHERE id % 10 = 0".into(),
            "DELETE FROM source.orders WHERE id % 7 = 0".into(),
        ] {
            rows(admin.engine(), &sql).await;
        }
        let done = run(&admin, &hub, "main.semantic.by_status").await;
        assert!(
            done.refresh.starts_with("incremental: "),
            "{}",
            done.refresh
        );
        let t = TableRef::parse("main.semantic.by_status").unwrap();
        let last = basin_sql::access::table_history(admin.engine(), &t, Some(1))
            .await
            .unwrap();
        assert!(
            last[0].parameters.contains("id >= 100 AND id <= 298"),
            "{}",
            last[0].parameters
        );
        let (have, want) = table_and_rebuild(&admin, "main.semantic.by_status", BY_STATUS).await;
        assert_eq!(have, want);
        assert_eq!(have.len(), 4 + 3 + 100 - 14);
    });
}

#[test]
fn runs_say_how_they_built_and_an_unchanged_upstream_costs_nothing() {
    crate::on_large_stack(|| async {
        let data = DataDir::with(&["main"], &["source"]).await;
        let (hub, admin) = shop(&data).await;
        let first = rows(
            admin.engine(),
            "SELECT refresh FROM system.model_runs WHERE model = 'main.semantic.sales'",
        )
        .await;
        assert_eq!(first, vec!["full: first build"]);
        let idle = run(&admin, &hub, "main.semantic.sales").await;
        assert_eq!(
            (idle.refresh.as_str(), idle.version),
            ("up to date: nothing it reads changed", -1)
        );
        rows(
            admin.engine(),
            "UPDATE source.orders SET amount = 11 WHERE id = 1",
        )
        .await;
        let one = run(&admin, &hub, "main.semantic.sales").await;
        assert_eq!(
            one.refresh,
            "incremental: 1 key recomputed after changes to main.source.orders"
        );
        assert_eq!(one.rows_out, 1);
        // A change by hand to the model's table: the next run rebuilds it.
        rows(
            admin.engine(),
            "DELETE FROM semantic.sales WHERE status = 'open'",
        )
        .await;
        let repaired = run(&admin, &hub, "main.semantic.sales").await;
        assert!(
            repaired
                .refresh
                .starts_with("full: version 2 changed the table outside the model (delete)"),
            "{}",
            repaired.refresh
        );
        let (have, want) = table_and_rebuild(&admin, "main.semantic.sales", SALES).await;
        assert_eq!(have, want);
        // Asked for, or after the model's SQL changes, the table is rebuilt in full.
        let t = TableRef::parse("main.semantic.sales").unwrap();
        let full = admin
            .run_model(&hub, &t, false, true)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(full.refresh, "full: asked for");
        let changed = SALES.replace("max(o.amount)", "min(o.amount)");
        let project = Project::from_files(&BTreeMap::from([
            ("basin.toml".to_string(), PROJECT.to_string()),
            ("models/semantic/sales.sql".to_string(), changed),
            ("models/semantic/orders.sql".to_string(), ORDERS.to_string()),
        ]))
        .unwrap();
        let applied = admin.apply_project(&project, None).await.unwrap();
        assert_eq!(
            applied.runs[0].refresh,
            "full: first build of this definition"
        );
        // A query that cannot be maintained says why in the plan, and is rebuilt at each run.
        let ranked = "-- materialized: incremental\n-- unique_key: id\nSELECT id, rank() OVER (ORDER BY amount) AS r FROM source.orders";
        let project = Project::from_files(&BTreeMap::from([
            ("basin.toml".to_string(), PROJECT.to_string()),
            ("models/semantic/ranked.sql".to_string(), ranked.to_string()),
        ]))
        .unwrap();
        let plan = admin
            .plan_project(&project, None)
            .await
            .unwrap()
            .to_string();
        assert!(plan.contains("not maintainable incrementally (the window function rank() reads rows of other keys): each run rebuilds it in full"), "{plan}");
    });
}

/// An UPDATE of one of two equal rows keeps its images in the change feed (delta-rs computes
/// them as an `EXCEPT ALL`, which DataFusion used to plan as a set difference), so an
/// incremental model reading the feed sees the change.
#[test]
fn an_update_among_equal_rows_keeps_its_change_images() {
    crate::on_large_stack(|| async {
        let data = DataDir::with(&["main"], &["source"]).await;
        let (hub, admin) = shop(&data).await;
        for sql in [
            "INSERT INTO source.customers VALUES (2, 'east')",
            "UPDATE source.customers SET region = 'south' WHERE id = 2",
        ] {
            rows(admin.engine(), sql).await;
        }
        let mut update = rows(
            admin.engine(),
            "SELECT id, region, _change_type FROM table_changes('main.source.customers', 3, 3)",
        )
        .await;
        update.sort();
        assert_eq!(
            update,
            ["2|east|update_preimage", "2|south|update_postimage"]
        );
        let done = run(&admin, &hub, "main.semantic.sales").await;
        assert!(done.refresh.starts_with("incremental"), "{}", done.refresh);
        let (have, want) = table_and_rebuild(&admin, "main.semantic.sales", SALES).await;
        assert_eq!(have, want);
    });
}
