//! Models end to end through the CLI: a project folder planned and applied (datasets, table,
//! append and view models in DAG order), applied again with no change, drift repaired; a
//! failing check that leaves the target at its version and says why with failing rows; a
//! cycle, a SQL error and a malformed file refused with the file named; runs as the owner.

use std::path::{Path, PathBuf};

use basin_testkit::server::{Api, Server};

use crate::Basin;

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A shop with source tables, and a project folder of three models over them.
fn shop() -> (Basin, PathBuf) {
    let b = Basin::new();
    b.ok(&["dataset", "create", "source", "--layer", "source"]);
    b.ok(&[
        "sql",
        "CREATE TABLE source.customers (id BIGINT, name VARCHAR)",
    ]);
    b.ok(&[
        "sql",
        "INSERT INTO source.customers VALUES (1, 'Ada'), (2, 'Bob'), (3, 'Cy')",
    ]);
    b.ok(&[
        "sql",
        "CREATE TABLE source.orders (id BIGINT, customer_id BIGINT, status VARCHAR, amount DOUBLE)",
    ]);
    b.ok(&[
        "sql",
        "INSERT INTO source.orders VALUES (10, 1, 'OPEN', 80), (11, 1, 'shipped', 40), (12, 2, 'open', 15), (13, 3, 'cancelled', 0), (14, 2, 'lost', 5)",
    ]);
    let project = b.dir.path().join("project");
    write(
        &project,
        "basin.toml",
        r#"[project]
name = "shop"

[datasets.prepared]
layer = "prepared"
description = "Cleaned shop data"

[datasets.semantic]
layer = "semantic"
domain = "sales"
"#,
    );
    write(
        &project,
        "models/prepared/orders.sql",
        "-- description: Orders with an amount\n-- check not_null: id, customer_id\n-- check unique: id\n-- check relationships customer_id: source.customers.id\n-- warn accepted_values status: open, shipped\nSELECT id, customer_id, lower(status) AS status, amount FROM source.orders WHERE amount > 0\n",
    );
    write(
        &project,
        "models/semantic/sales.sql",
        "-- check row_count: 1..\nSELECT o.customer_id, c.name, sum(o.amount) AS total, count(*) AS orders\nFROM prepared.orders o JOIN source.customers c ON c.id = o.customer_id\nGROUP BY o.customer_id, c.name\n",
    );
    write(
        &project,
        "models/semantic/big_customers.sql",
        "-- materialized: view\nSELECT name, total FROM semantic.sales WHERE total > 100\n",
    );
    write(
        &project,
        "models/prepared/open_orders_log.sql",
        "-- materialized: append\nSELECT id, amount FROM prepared.orders WHERE status = 'open'\n",
    );
    (b, project)
}

fn count(b: &Basin, table: &str) -> i64 {
    b.json(&format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_project_is_planned_applied_and_kept_in_step() {
    let (b, project) = shop();
    let dir = project.to_str().unwrap();
    let plan = b.ok(&["plan", dir]);
    for line in [
        "+ dataset prepared (layer prepared)",
        "+ dataset semantic (layer semantic)",
        "+ model main.prepared.orders (table)",
        "+ model main.semantic.big_customers (view)",
        "+ model main.prepared.open_orders_log (append)",
        "Runs, in order: main.prepared.orders, main.prepared.open_orders_log, main.semantic.sales, main.semantic.big_customers",
        "6 to add, 0 to change, 0 to drop.",
    ] {
        assert!(plan.contains(line), "{line}\n{plan}");
    }
    // A plan changes nothing.
    assert!(
        b.fails(&["sql", "SELECT * FROM prepared.orders"])
            .contains("not found")
    );

    let applied = b.ok(&["apply", dir]);
    assert!(
        applied.contains("main.prepared.orders warned (apply): 4 rows"),
        "{applied}"
    );
    assert!(
        applied.contains("main.semantic.sales ok (apply): 2 rows"),
        "{applied}"
    );
    let sales = b.json("SELECT name, total, orders FROM semantic.sales ORDER BY name");
    assert_eq!(sales.len(), 2, "{sales:?}");
    assert_eq!(
        (sales[0]["name"].as_str(), sales[0]["total"].as_f64()),
        (Some("Ada"), Some(120.0))
    );
    let big = b.json("SELECT name FROM semantic.big_customers");
    assert_eq!(big.len(), 1, "{big:?}");
    assert_eq!(count(&b, "prepared.open_orders_log"), 2);
    let datasets = b.ok(&["--output", "json", "dataset", "list"]);
    assert!(datasets.contains("Cleaned shop data"), "{datasets}");
    // The warn check committed and says which rows it did not like.
    let status = b.ok(&["model", "status", "prepared.orders"]);
    assert!(
        status.contains("FAIL warn accepted_values status: open, shipped"),
        "{status}"
    );
    assert!(status.contains("lost"), "{status}");

    // The same folder again: nothing to do.
    assert!(b.ok(&["plan", dir]).contains("No changes"));
    let again = b.ok(&["apply", dir]);
    assert!(
        again.contains("No changes") && !again.contains("(apply)"),
        "{again}"
    );

    // Drift: a table dropped by hand shows in the plan and is built again.
    b.ok(&["sql", "DROP TABLE semantic.sales"]);
    let plan = b.ok(&["plan", dir]);
    assert!(
        plan.contains("! model main.semantic.sales: its table is missing; it is built again"),
        "{plan}"
    );
    b.ok(&["apply", dir]);
    assert_eq!(count(&b, "semantic.sales"), 2);

    // A change of SQL is planned as such, and what reads the model runs after it.
    write(
        &project,
        "models/semantic/sales.sql",
        "-- check row_count: 1..\nSELECT o.customer_id, c.name, sum(o.amount) AS total, count(*) AS orders, max(o.amount) AS biggest\nFROM prepared.orders o JOIN source.customers c ON c.id = o.customer_id\nGROUP BY o.customer_id, c.name\n",
    );
    let plan = b.ok(&["plan", dir]);
    assert!(plan.contains("~ model main.semantic.sales: sql"), "{plan}");
    assert!(
        plan.contains("Runs, in order: main.semantic.sales, main.semantic.big_customers"),
        "{plan}"
    );
    b.ok(&["apply", dir]);
    assert_eq!(
        b.json("SELECT max(biggest) AS m FROM semantic.sales")[0]["m"],
        80.0
    );

    // A model removed from the folder is dropped; its table stays.
    std::fs::remove_file(project.join("models/prepared/open_orders_log.sql")).unwrap();
    let plan = b.ok(&["plan", dir]);
    assert!(
        plan.contains("- model main.prepared.open_orders_log (its table stays)"),
        "{plan}"
    );
    b.ok(&["apply", dir]);
    assert_eq!(count(&b, "prepared.open_orders_log"), 2);
    let listed = b.ok(&["--output", "json", "model", "list"]);
    assert!(
        !listed.contains("open_orders_log") && listed.contains("semantic.sales"),
        "{listed}"
    );

    // Every run is in system.model_runs.
    let runs =
        b.json("SELECT model, status FROM system.model_runs WHERE model = 'main.semantic.sales'");
    assert!(runs.len() >= 3, "{runs:?}");
}

#[test]
fn a_failing_check_keeps_the_target_and_says_why() {
    let (b, project) = shop();
    let dir = project.to_str().unwrap();
    b.ok(&["apply", dir]);
    let history = |b: &Basin| b.ok(&["--output", "json", "table", "history", "prepared.orders"]);
    let before = history(&b);
    assert_eq!(count(&b, "prepared.orders"), 4);
    // An order of a customer that does not exist.
    b.ok(&[
        "sql",
        "INSERT INTO source.orders VALUES (15, 999, 'open', 30)",
    ]);
    let e = b.fails(&["model", "run", "prepared.orders", "--downstream"]);
    assert!(
        e.contains("'check relationships customer_id: source.customers.id' failed (1 failing)")
            && e.contains("main.prepared.orders keeps its version"),
        "{e}"
    );
    assert_eq!(count(&b, "prepared.orders"), 4);
    assert_eq!(history(&b), before, "the target changed");
    let status = b.ok(&["model", "status", "prepared.orders"]);
    assert!(
        status.contains("FAIL check relationships") && status.contains("999"),
        "{status}"
    );
    // Fixed upstream, the model and what reads it run again, in order.
    b.ok(&["sql", "DELETE FROM source.orders WHERE customer_id = 999"]);
    b.ok(&[
        "sql",
        "INSERT INTO source.orders VALUES (16, 3, 'open', 500)",
    ]);
    let out = b.ok(&["model", "run", "prepared.orders", "--downstream"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("main.prepared.orders warned (manual)"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("main.semantic.sales ok (downstream)")),
        "{out}"
    );
    let big = b.json("SELECT name FROM semantic.big_customers ORDER BY name");
    assert_eq!(big.len(), 2, "{big:?}");

    // A model runs as its owner: another user may neither run it nor apply over it.
    b.create_user("reader", "reader-password", &[]);
    b.ok(&["sql", "GRANT SELECT ON TABLE prepared.orders TO reader"]);
    let e = b.fails(&["--as", "reader", "model", "run", "prepared.orders"]);
    assert!(e.contains("permission denied"), "{e}");
    // Lineage shows only edges whose tables one sees: the reader sees prepared.orders, not
    // what feeds it.
    assert!(!b.json("SELECT * FROM system.lineage").is_empty());
    let seen = b.ok(&[
        "--as",
        "reader",
        "--output",
        "json",
        "sql",
        "SELECT * FROM system.lineage",
    ]);
    assert!(!seen.contains("source.orders"), "{seen}");
    write(
        &project,
        "models/semantic/big_customers.sql",
        "-- materialized: view\nSELECT name FROM semantic.sales\n",
    );
    let e = b.fails(&["--as", "reader", "apply", dir]);
    assert!(
        e.contains("permission denied") || e.contains("not found"),
        "{e}"
    );
    assert_eq!(b.json("SELECT * FROM semantic.big_customers").len(), 2);
}

#[test]
fn bad_projects_are_refused_naming_the_file_and_change_nothing() {
    let (b, project) = shop();
    let dir = project.to_str().unwrap();
    // A cycle, spelled out.
    write(
        &project,
        "models/prepared/a.sql",
        "SELECT * FROM prepared.b\n",
    );
    write(
        &project,
        "models/prepared/b.sql",
        "SELECT * FROM prepared.a\n",
    );
    let e = b.fails(&["plan", dir]);
    assert!(
        e.contains("cycle: main.prepared.a → main.prepared.b → main.prepared.a"),
        "{e}"
    );
    std::fs::remove_file(project.join("models/prepared/a.sql")).unwrap();
    std::fs::remove_file(project.join("models/prepared/b.sql")).unwrap();
    // Not a SELECT.
    write(
        &project,
        "models/prepared/bad.sql",
        "DELETE FROM source.orders\n",
    );
    let e = b.fails(&["apply", dir]);
    assert!(
        e.contains("models/prepared/bad.sql") && e.contains("exactly one query"),
        "{e}"
    );
    std::fs::remove_file(project.join("models/prepared/bad.sql")).unwrap();
    // A malformed header line, with its line number.
    write(
        &project,
        "models/prepared/typo.sql",
        "-- materialized: table\n-- chek not_null: id\nSELECT 1 AS id\n",
    );
    let e = b.fails(&["apply", dir]);
    assert!(
        e.contains("models/prepared/typo.sql:2: 'chek not_null' is not a header key"),
        "{e}"
    );
    std::fs::remove_file(project.join("models/prepared/typo.sql")).unwrap();
    // A malformed basin.toml, with its line.
    let toml = std::fs::read_to_string(project.join("basin.toml")).unwrap();
    write(
        &project,
        "basin.toml",
        &toml.replace("layer = \"semantic\"", "layer = \"gold\""),
    );
    let e = b.fails(&["plan", dir]);
    assert!(e.contains("basin.toml:") && e.contains("gold"), "{e}");
    // None of it changed the hub.
    assert!(
        b.fails(&["sql", "SELECT * FROM prepared.orders"])
            .contains("not found")
    );
    let datasets = b.ok(&["--output", "json", "dataset", "list"]);
    assert!(!datasets.contains("prepared"), "{datasets}");
    // A query that does not plan over tables that are there is refused before anything
    // changes; one over a table the same apply builds fails its run, naming the model.
    write(&project, "basin.toml", &toml);
    write(
        &project,
        "models/prepared/broken.sql",
        "SELECT no_such_column FROM source.orders\n",
    );
    let e = b.fails(&["apply", dir]);
    assert!(
        e.contains("models/prepared/broken.sql: the query does not plan")
            && e.contains("no_such_column"),
        "{e}"
    );
    assert!(
        !b.ok(&["--output", "json", "dataset", "list"])
            .contains("prepared")
    );
    write(
        &project,
        "models/prepared/broken.sql",
        "SELECT no_such_column FROM prepared.orders\n",
    );
    let e = b.fails(&["apply", dir]);
    assert!(
        e.contains("model main.prepared.broken failed") && e.contains("no_such_column"),
        "{e}"
    );
    assert!(
        b.fails(&["sql", "SELECT * FROM prepared.broken"])
            .contains("not found")
    );
    assert_eq!(count(&b, "prepared.orders"), 4);
}

/// The shop project with the model `files` triggered `on_change`, applied, and a server over
/// it: the server, its client and the administrator's token.
async fn serve_on_change(files: &[&str]) -> (Basin, Server, Api, String) {
    let (b, project) = shop();
    for file in files {
        let text = std::fs::read_to_string(project.join(file)).unwrap();
        write(&project, file, &format!("-- trigger: on_change\n{text}"));
    }
    b.ok(&["apply", project.to_str().unwrap()]);
    let server = Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", crate::server::ADMIN_PASSWORD).await;
    (b, server, s, admin)
}

/// In the server, `on_change` models run once after a burst of commits to what they read, and
/// what reads them runs after them.
#[tokio::test(flavor = "multi_thread")]
async fn on_change_models_run_once_after_a_burst_of_upstream_commits() {
    let (_b, _server, s, admin) =
        serve_on_change(&["models/prepared/orders.sql", "models/semantic/sales.sql"]).await;
    for id in 20..23 {
        let a = s
            .sql(
                &admin,
                &format!("INSERT INTO source.orders VALUES ({id}, 3, 'open', 200)"),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let runs = |model: &'static str| {
        let (s, admin) = (&s, &admin);
        async move {
            s.count(
                admin,
                &format!("SELECT count(*) FROM system.model_runs WHERE model = '{model}' AND trigger = 'upstream'"),
            )
            .await
        }
    };
    let mut total = 0.0;
    for _ in 0..80 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let a = s
            .sql(&admin, "SELECT total FROM semantic.sales WHERE name = 'Cy'")
            .await;
        total = a.body["rows"][0]["total"].as_f64().unwrap_or(0.0);
        if total == 600.0 {
            break;
        }
    }
    assert_eq!(total, 600.0, "the downstream model did not run");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(runs("main.prepared.orders").await, 1);
    assert_eq!(runs("main.semantic.sales").await, 1);
}

/// A commit made by another process (here the CLI beside the server) reaches `on_change`
/// models too: the server looks at the versions of the tables they read every few seconds.
#[tokio::test(flavor = "multi_thread")]
async fn on_change_models_see_commits_made_by_other_processes() {
    let (b, _server, s, admin) = serve_on_change(&["models/prepared/orders.sql"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    b.ok(&[
        "sql",
        "INSERT INTO source.orders VALUES (30, 3, 'open', 200)",
    ]);
    let runs = || async {
        s.count(
            &admin,
            "SELECT count(*) FROM system.model_runs WHERE model = 'main.prepared.orders' AND trigger = 'upstream'",
        )
        .await
    };
    for _ in 0..80 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if runs().await >= 1 {
            break;
        }
    }
    let found = s
        .count(&admin, "SELECT count(*) FROM prepared.orders WHERE id = 30")
        .await;
    assert_eq!(found, 1, "the model did not run after the CLI's commit");
    // Later looks at the versions find nothing new: no second run.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert_eq!(runs().await, 1);
}

/// The same through REST: a project's files planned and applied, models listed and run, a
/// malformed file refused with its name, and nothing without a login.
#[tokio::test(flavor = "multi_thread")]
async fn a_project_is_planned_and_applied_through_rest() {
    let (b, project) = shop();
    let mut files = serde_json::Map::new();
    for file in [
        "basin.toml",
        "models/prepared/orders.sql",
        "models/semantic/sales.sql",
        "models/semantic/big_customers.sql",
    ] {
        let text = std::fs::read_to_string(project.join(file)).unwrap();
        files.insert(file.into(), text.into());
    }
    let body = serde_json::json!({ "files": files });
    let server = crate::server::Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", crate::server::ADMIN_PASSWORD).await;
    let a = s
        .call("POST", "/api/v1/projects/plan", None, Some(body.clone()))
        .await;
    assert_eq!(a.status, 401, "{}", a.text);
    let a = s
        .call(
            "POST",
            "/api/v1/projects/plan",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["changes"], 5, "{}", a.text);
    assert!(
        a.body["text"]
            .as_str()
            .unwrap()
            .contains("+ model main.semantic.sales (table)")
    );
    let a = s
        .call(
            "POST",
            "/api/v1/projects/apply",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["runs"].as_array().unwrap().len(), 3, "{}", a.text);
    let a = s
        .call(
            "POST",
            "/api/v1/projects/plan",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(a.body["changes"], 0, "{}", a.text);
    let a = s.call("GET", "/api/v1/models", Some(&admin), None).await;
    assert_eq!(a.body["models"].as_array().unwrap().len(), 3, "{}", a.text);
    let a = s
        .call(
            "POST",
            "/api/v1/models/prepared.orders/run?downstream=true",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let statuses: Vec<&str> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["warned", "ok", "ok"], "{}", a.text);
    let a = s
        .call(
            "GET",
            "/api/v1/models/semantic.sales/runs",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.body.as_array().unwrap().len(), 2, "{}", a.text);
    // Lineage: what feeds the view, three steps up.
    let a = s
        .call(
            "GET",
            "/api/v1/lineage/main.semantic.big_customers?direction=up&depth=3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut edges: Vec<String> = a.body["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} -> {}",
                e["upstream"].as_str().unwrap(),
                e["downstream"].as_str().unwrap()
            )
        })
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "main.prepared.orders -> main.semantic.sales",
            "main.semantic.sales -> main.semantic.big_customers",
            "main.source.customers -> main.semantic.sales",
            "main.source.orders -> main.prepared.orders",
        ],
        "{}",
        a.text
    );
    let a = s
        .call(
            "GET",
            "/api/v1/lineage/main.source.orders?direction=down&depth=1",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.body["edges"].as_array().unwrap().len(), 1, "{}", a.text);
    let a = s
        .call(
            "GET",
            "/api/v1/lineage/main.source.orders?direction=sideways",
            Some(&admin),
            None,
        )
        .await;
    crate::server::problem(&a, 400);
    let mut bad = body.clone();
    bad["files"]["models/prepared/x.sql"] = "-- materialized: cube\nSELECT 1 AS x".into();
    let a = s
        .call("POST", "/api/v1/projects/apply", Some(&admin), Some(bad))
        .await;
    crate::server::problem(&a, 400);
    assert!(a.text.contains("models/prepared/x.sql:1"), "{}", a.text);
}

/// The example in examples/pipeline runs as its README says (with this build's binary), and a
/// second run loads nothing and changes nothing.
#[test]
fn the_pipeline_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("pipeline");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(crate::repo_root().join("examples/pipeline"))
        .arg(&example)
        .output()
        .unwrap();
    assert!(copy.status.success(), "{copy:?}");
    let _ = std::fs::remove_dir_all(example.join("data"));
    let run = || {
        let out = std::process::Command::new(example.join("run.sh"))
            .env("BASIN", basin_testkit::basin::basin_bin())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    let first = run();
    for says in [
        "2 files loaded (7 rows)",
        "main.prepared.orders ok (apply): 6 rows",
        "main.semantic.daily_sales ok (apply): 4 rows",
        "2026-11-25",
        "exported 4 rows in 2 files",
        "exports/admin/daily_sales/year=2026/month=11/day=24/",
    ] {
        assert!(first.contains(says), "{says}\n{first}");
    }
    let second = run();
    assert!(
        second.contains("0 files loaded") && second.contains("No changes"),
        "{second}"
    );
    assert!(second.contains("up to date"), "{second}");
    // A new day: loaded once, recomputed incrementally, exported to its own folder.
    let day = example.join("drops/orders/year=2026/month=11/day=26");
    std::fs::create_dir_all(&day).unwrap();
    std::fs::write(
        day.join("orders.csv"),
        "order_id,customer_id,status,amount\n1010,1,open,12.50\n",
    )
    .unwrap();
    let third = run();
    for says in [
        "1 files loaded (1 rows)",
        "main.prepared.orders ok (manual): 1 rows",
        "incremental: 1 key recomputed after changes to main.source.orders",
        "main.semantic.daily_sales ok (downstream): 1 rows",
        "year=2026/month=11/day=26/",
    ] {
        assert!(third.contains(says), "{says}\n{third}");
    }
}

#[test]
fn grants_are_declared_in_the_project_file() {
    let (b, project) = shop();
    b.create_user("analyst", "a-long-password-1", &[]);
    b.create_user("partner", "a-long-password-2", &[]);
    // A grant made by hand before the project declared it is not the project's to revoke.
    b.ok(&["grant", "SELECT ON DATASET source TO partner"]);
    let toml = std::fs::read_to_string(project.join("basin.toml")).unwrap();
    let with = |grants: &str| {
        std::fs::write(
            project.join("basin.toml"),
            format!("grants = [{grants}]\n{toml}"),
        )
        .unwrap()
    };
    with(
        r#""SELECT ON DATASET semantic TO analyst", "USAGE ON DATASET semantic TO partner", "SELECT (name, total) ON TABLE semantic.sales TO partner", "SELECT ON DATASET source TO partner""#,
    );
    let dir = project.to_str().unwrap();
    let plan = b.ok(&["plan", dir]);
    for says in [
        "  + GRANT SELECT ON DATASET main.semantic TO analyst",
        "  + GRANT SELECT (name) ON TABLE main.semantic.sales TO partner",
        "  + GRANT SELECT (total) ON TABLE main.semantic.sales TO partner",
    ] {
        assert!(plan.contains(says), "{says}\n{plan}");
    }
    b.ok(&["apply", dir]);
    assert!(b.ok(&["plan", dir]).contains("No changes"));
    let read = |user: &str, sql: &str| b.run(&["--as", user, "--output", "json", "sql", sql]);
    assert!(
        read("analyst", "SELECT * FROM semantic.sales")
            .status
            .success()
    );
    let partner = read("partner", "SELECT name, total FROM semantic.sales");
    assert!(
        partner.status.success(),
        "{}",
        String::from_utf8_lossy(&partner.stderr)
    );
    assert!(
        !read("partner", "SELECT orders FROM semantic.sales")
            .status
            .success()
    );
    // Revoked by hand: the plan makes it again (drift).
    b.ok(&["revoke", "SELECT ON DATASET semantic FROM analyst"]);
    assert!(
        b.ok(&["plan", dir])
            .contains("  + GRANT SELECT ON DATASET main.semantic TO analyst")
    );
    // Left the file: revoked by the next apply.
    with(r#""SELECT ON DATASET semantic TO analyst""#);
    let plan = b.ok(&["plan", dir]);
    assert!(
        plan.contains("  - REVOKE SELECT (total) ON TABLE main.semantic.sales FROM partner"),
        "{plan}"
    );
    assert!(!plan.contains("ON DATASET main.source"), "{plan}");
    b.ok(&["apply", dir]);
    assert!(
        !read("partner", "SELECT name FROM semantic.sales")
            .status
            .success()
    );
    assert!(b.ok(&["plan", dir]).contains("No changes"));
    // A grant that does not parse names the file.
    with(r#""SELEC ON DATASET semantic TO analyst""#);
    let e = b.fails(&["plan", dir]);
    assert!(
        e.contains("basin.toml: grant 'SELEC ON DATASET semantic TO analyst'"),
        "{e}"
    );
}

#[test]
fn an_audit_model_checks_a_table_and_writes_nothing() {
    let (b, project) = shop();
    std::fs::write(
        project.join("models/prepared/orders.sql"),
        "SELECT id, customer_id, lower(status) AS status, amount FROM source.orders WHERE amount > 0\n",
    )
    .unwrap();
    for f in [
        "models/semantic/sales.sql",
        "models/semantic/big_customers.sql",
        "models/prepared/open_orders_log.sql",
    ] {
        std::fs::remove_file(project.join(f)).unwrap();
    }
    std::fs::create_dir_all(project.join("models/source")).unwrap();
    std::fs::write(
        project.join("models/source/orders_audit.sql"),
        "-- materialized: audit\n-- trigger: on_change\n-- check unique: id\n-- warn accepted_values status: OPEN, shipped, open, cancelled, lost\nSELECT * FROM source.orders\n",
    )
    .unwrap();
    let dir = project.to_str().unwrap();
    let out = b.ok(&["apply", dir]);
    assert!(
        out.contains("+ model main.source.orders_audit (audit)"),
        "{out}"
    );
    assert!(
        out.contains("main.source.orders_audit ok (apply): 5 rows"),
        "{out}"
    );
    assert!(b.ok(&["plan", dir]).contains("No changes"));
    // A duplicate: the audit fails, names the key, and writes nothing.
    b.ok(&["sql", "INSERT INTO source.orders VALUES (10, 2, 'open', 1)"]);
    let e = b.fails(&["model", "run", "source.orders_audit"]);
    assert!(
        e.contains("the checks failed: 'check unique: id' failed (1 failing)"),
        "{e}"
    );
    let status = b.ok(&["model", "status", "source.orders_audit"]);
    assert!(
        status.contains("FAIL check unique: id") && status.contains("10"),
        "{status}"
    );
    assert_eq!(count(&b, "source.orders"), 6);
    assert!(
        b.json("SELECT count(*) AS n FROM system.tables WHERE name = 'orders_audit'")[0]["n"] == 0
    );
    // A model file that audits nothing is refused.
    std::fs::write(
        project.join("models/source/orders_audit.sql"),
        "-- materialized: audit\nSELECT * FROM source.orders\n",
    )
    .unwrap();
    let e = b.fails(&["plan", dir]);
    assert!(
        e.contains(
            "models/source/orders_audit.sql: materialized: audit checks its rows and writes nothing"
        ),
        "{e}"
    );
    // A custom check is parsed within the bounds of every statement (docs/sql.md).
    let deep = vec!["id = 0"; 1_100].join(" OR ");
    std::fs::write(
        project.join("models/source/orders_audit.sql"),
        format!("-- materialized: audit\n-- check sql: SELECT * FROM staged WHERE {deep}\nSELECT * FROM source.orders\n"),
    )
    .unwrap();
    let e = b.fails(&["apply", dir]);
    assert!(e.contains("nests more than 2000 operators deep"), "{e}");
}
