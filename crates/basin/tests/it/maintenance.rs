//! Table maintenance end to end: `basin table optimize|vacuum`, the REST endpoints, the
//! server's maintainer, and what they promise — every row and every retained version stays
//! readable, a vacuumed version fails clearly, a racing writer loses nothing, and no clear copy
//! of a value tagged `pii` outlives a vacuum.

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};

/// A table `sales.orders` written by `commits` small appends of 10 rows each.
fn small_files(b: &Basin, commits: usize) {
    b.ok(&["dataset", "create", "sales", "--layer", "source"]);
    let mut sql =
        String::from("CREATE TABLE sales.orders (id BIGINT, region VARCHAR, amount DOUBLE);\n");
    for c in 0..commits {
        let rows: Vec<String> = (0..10)
            .map(|i| {
                let id = c * 10 + i;
                format!("({id}, '{}', {}.5)", ["eu", "us"][id % 2], id % 7)
            })
            .collect();
        sql.push_str(&format!(
            "INSERT INTO sales.orders VALUES {};\n",
            rows.join(", ")
        ));
    }
    let file = b.file("orders.sql", &sql);
    b.ok(&["sql", "-f", &file]);
}

fn json_out(b: &Basin, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&b.ok(&all)).unwrap()
}

fn files(b: &Basin) -> u64 {
    json_out(b, &["table", "show", "sales.orders"])["files"]
        .as_u64()
        .unwrap()
}

const TOTALS: &str =
    "SELECT count(*) AS n, sum(id) AS ids, sum(amount) AS amount FROM sales.orders";

#[test]
fn optimize_and_vacuum_keep_every_row_and_retained_version() {
    let b = Basin::new();
    small_files(&b, 24);
    assert_eq!(files(&b), 24);
    let before = b.json(TOTALS);
    assert_eq!(before[0]["n"], 240);

    let run = json_out(&b, &["table", "optimize", "sales.orders"]);
    assert_eq!(run["files_before"], 24, "{run}");
    assert_eq!(run["files_after"], 1, "{run}");
    assert!(run["bytes_rewritten"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(files(&b), 1);
    assert_eq!(b.json(TOTALS), before, "compaction changes no row");
    // Time travel still reads the versions before the compaction (their files are kept).
    let at_5 = "SELECT count(*) AS n FROM sales.orders VERSION AS OF 5";
    assert_eq!(b.json(at_5), vec![json!({"n": 50})]);
    // Nothing small is left: a second run changes nothing.
    let again = json_out(&b, &["table", "optimize", "sales.orders"]);
    assert_eq!(again["version"], run["version"], "{again}");

    // A vacuum keeping 7 days removes nothing; one keeping 0 hours removes the old files.
    let kept = json_out(&b, &["table", "vacuum", "sales.orders"]);
    assert_eq!(kept["files_deleted"], 0, "{kept}");
    assert_eq!(b.json(at_5), vec![json!({"n": 50})]);
    let vacuumed = json_out(
        &b,
        &["table", "vacuum", "sales.orders", "--retain-hours", "0"],
    );
    assert_eq!(vacuumed["files_deleted"], 24, "{vacuumed}");
    assert_eq!(b.json(TOTALS), before, "a vacuum changes no row");
    let e = b.fails(&["sql", at_5]);
    assert!(
        e.contains("version 5 of table 'main.sales.orders' was removed by a vacuum"),
        "{e}"
    );
    // The current version stays readable by number too.
    let current = vacuumed["version"].as_i64().unwrap();
    assert_eq!(
        b.json(&format!(
            "SELECT count(*) AS n FROM sales.orders VERSION AS OF {current}"
        )),
        vec![json!({"n": 240})]
    );
    // Each run is recorded.
    let runs = b.json(
        "SELECT operation, trigger, outcome, files_before, files_after, files_deleted FROM system.maintenance_runs ORDER BY started_at",
    );
    let ops: Vec<(&str, &str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["trigger"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("optimize", "manual", "ok"),
            ("optimize", "manual", "ok"),
            ("vacuum", "manual", "ok"),
            ("vacuum", "manual", "ok")
        ]
    );
    // Bad input: clear errors, nothing changed.
    let e = b.fails(&["table", "optimize", "sales.orders", "--zorder", "regoin"]);
    assert!(
        e.contains("column 'regoin' not found") && e.contains("did you mean 'region'"),
        "{e}"
    );
    let e = b.fails(&["table", "optimize", "sales.nosuch"]);
    assert!(e.contains("not found"), "{e}");
    assert_eq!(b.json(TOTALS), before);
}

#[test]
fn zorder_and_the_maintenance_policy() {
    let b = Basin::new();
    small_files(&b, 4);
    let run = json_out(
        &b,
        &[
            "table",
            "optimize",
            "sales.orders",
            "--zorder",
            "region,amount",
        ],
    );
    assert_eq!(run["files_after"], 1, "{run}");
    let policy = json_out(&b, &["table", "maintenance", "sales.orders"]);
    assert_eq!(
        policy,
        json!({"auto": true, "min_files": 16, "target_file_bytes": 134217728, "retention_hours": 168, "zorder": []})
    );
    let set = json_out(
        &b,
        &[
            "table",
            "maintenance",
            "sales.orders",
            "--auto",
            "false",
            "--min-files",
            "4",
            "--retain-hours",
            "24",
            "--zorder",
            "region",
        ],
    );
    assert_eq!(set["auto"], false);
    assert_eq!(set["min_files"], 4);
    assert_eq!(set["zorder"], json!(["region"]));
    let e = b.fails(&["table", "maintenance", "sales.orders", "--min-files", "1"]);
    assert!(e.contains("min_files of at least 2"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_over_rest_is_for_managers_and_the_maintainer_compacts_by_itself() {
    let b = Basin::new();
    small_files(&b, 20);
    b.create_user("reader", "reader-password", &[]);
    b.ok(&["sql", "GRANT SELECT ON TABLE sales.orders TO reader"]);
    // A second table the maintainer compacts by itself (the first has auto off).
    b.ok(&["sql", "CREATE TABLE sales.events AS SELECT 1 AS id"]);
    for i in 2..20 {
        b.ok(&["sql", &format!("INSERT INTO sales.events VALUES ({i})")]);
    }
    b.ok(&["table", "maintenance", "sales.orders", "--auto", "false"]);
    b.ok(&["table", "maintenance", "sales.events", "--min-files", "8"]);

    let mut server = Server::start(&b, &["--maintenance-interval-secs", "1"]);
    server.kill_at_exit(Some(b.dir.path().to_path_buf()));
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let reader = server.login("reader", "reader-password").await;
    let table = "/api/v1/hubs/main/datasets/sales/tables/orders";

    // A reader may see the policy, not run maintenance.
    let a = s
        .call("GET", &format!("{table}/maintenance"), Some(&reader), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["auto"], false);
    problem(
        &s.call("POST", &format!("{table}/optimize"), Some(&reader), None)
            .await,
        403,
    );
    problem(
        &s.call(
            "POST",
            &format!("{table}/vacuum"),
            Some(&reader),
            Some(json!({"retain_hours": 0})),
        )
        .await,
        403,
    );
    problem(
        &s.call("PUT", &format!("{table}/maintenance"), Some(&reader), Some(json!({"auto": true, "min_files": 4, "target_file_mib": 64, "retain_hours": 24, "zorder": []}))).await,
        403,
    );
    // Bad input names the problem.
    let a = s
        .call(
            "POST",
            &format!("{table}/optimize"),
            Some(&admin),
            Some(json!({"target_file_mb": 1})),
        )
        .await;
    problem(&a, 400);
    assert!(a.text.contains("target_file_mb"), "{}", a.text);
    assert_eq!(
        s.count(&admin, "SELECT count(*) FROM sales.orders").await,
        200
    );

    // Compaction racing a writer loses nothing: inserts while the table is compacted.
    let writer = {
        let (s, admin) = (server.client(), admin.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                let a = s
                    .sql(
                        &admin,
                        &format!(
                            "INSERT INTO sales.orders VALUES ({}, 'eu', 1.0)",
                            10_000 + i
                        ),
                    )
                    .await;
                assert_eq!(a.status, 200, "{}", a.text);
            }
        })
    };
    for _ in 0..3 {
        let a = s
            .call("POST", &format!("{table}/optimize"), Some(&admin), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["operation"], "optimize");
    }
    writer.await.unwrap();
    assert_eq!(
        s.count(&admin, "SELECT count(*) FROM sales.orders").await,
        230
    );
    assert_eq!(
        s.count(&admin, "SELECT count(DISTINCT id) FROM sales.orders")
            .await,
        230,
        "no row lost or doubled"
    );

    // The maintainer compacts sales.events by itself (at least 8 small files), not sales.orders
    // (auto off), and records its runs.
    let mut events_files = u64::MAX;
    for _ in 0..120 {
        let a = s
            .call(
                "GET",
                "/api/v1/hubs/main/datasets/sales/tables/events",
                Some(&admin),
                None,
            )
            .await;
        events_files = a.body["stats"]["files"].as_u64().unwrap_or(u64::MAX);
        if events_files == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(
        events_files, 1,
        "the maintainer did not compact sales.events"
    );
    let runs = s
        .rows(&admin, "SELECT table_name, operation, trigger FROM system.maintenance_runs WHERE trigger = 'auto' AND operation = 'optimize'")
        .await;
    assert!(runs.iter().all(|r| r["table_name"] == "events"), "{runs:?}");
    assert_eq!(
        s.count(&admin, "SELECT count(*) FROM sales.events").await,
        19
    );
    // A reader sees only the runs of the tables it sees.
    let seen = s
        .rows(
            &reader,
            "SELECT DISTINCT table_name FROM system.maintenance_runs",
        )
        .await;
    assert!(seen.iter().all(|r| r["table_name"] == "orders"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_clear_copy_of_a_value_tagged_pii_outlives_a_vacuum() {
    let b = Basin::new();
    b.ok(&["dataset", "create", "crm", "--layer", "source"]);
    let people = b.file(
        "people.csv",
        "id,email\n1,ada.lovelace@example.org\n2,alan.turing@example.org\n",
    );
    b.ok(&["ingest", "crm.people", &people]);
    let location = json_out(&b, &["table", "show", "crm.people"])["location"]
        .as_str()
        .unwrap()
        .to_string();
    let holding = || -> Vec<std::path::PathBuf> {
        basin_testkit::fixtures::files_under(std::path::Path::new(&location))
            .into_iter()
            .filter(|f| {
                let bytes = std::fs::read(f).unwrap();
                bytes.windows(20).any(|w| w == b"ada.lovelace@example")
            })
            .collect()
    };
    assert!(
        !holding().is_empty(),
        "the clear value is on disk before it is tagged"
    );

    let mut server = Server::start(&b, &["--maintenance-interval-secs", "0"]);
    server.kill_at_exit(Some(b.dir.path().to_path_buf()));
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let a = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(&admin),
            Some(json!({"object": "table main.crm.people", "column": "email", "tags": ["pii"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Encrypted in the current version; the old files (and the log's statistics) still hold it
    // for time travel until a vacuum.
    assert!(
        !holding().is_empty(),
        "old versions keep the clear value until a vacuum"
    );
    let a = s
        .call(
            "POST",
            "/api/v1/hubs/main/datasets/crm/tables/people/vacuum",
            Some(&admin),
            Some(json!({"retain_hours": 0})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["files_deleted"].as_u64().unwrap() >= 1, "{}", a.text);
    assert_eq!(
        holding(),
        Vec::<std::path::PathBuf>::new(),
        "clear values left after the vacuum"
    );
    assert_eq!(
        s.rows(&admin, "SELECT id, email FROM crm.people ORDER BY id")
            .await,
        vec![
            json!({"id": 1, "email": "ada.lovelace@example.org"}),
            json!({"id": 2, "email": "alan.turing@example.org"})
        ],
        "the administrator still reads the values in clear"
    );
}
