use serde_json::json;

use crate::*;

#[test]
fn every_command_has_help() {
    // Walks the command tree from the top-level help, so a new command is covered too.
    let b = Basin::new();
    let mut pending = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).chain(["--help"]).collect();
        let out = b.ok(&args);
        assert!(out.contains("Usage:"), "{args:?}: {out}");
        seen += 1;
        let commands = out
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty());
        for line in commands {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                pending.push(path.iter().cloned().chain([name.to_string()]).collect());
            }
        }
    }
    assert!(seen > 40, "only {seen} commands have help");
}

#[test]
fn a_user_walks_from_files_to_sql() {
    let b = Basin::new();
    assert!(b.ok(&["init"]).contains("1 hub(s): main"));
    b.ok(&["hub", "create", "us", "--description", "US market"]);
    b.ok(&[
        "dataset",
        "create",
        "us.sales",
        "--layer",
        "source",
        "--domain",
        "sales",
        "--owner",
        "ana",
        "--tag",
        "pii",
        "--update-frequency",
        "daily",
    ]);
    let hubs = b.json("SELECT name FROM system.hubs ORDER BY name");
    assert_eq!(hubs, vec![json!({"name": "main"}), json!({"name": "us"})]);

    let csv = b.file(
        "orders.csv",
        "id,amount,day\n1,10.5,2024-01-01\n2,20,2024-01-02\n",
    );
    let out = b.run(&[
        "ingest",
        "us.sales.orders",
        &csv,
        "--key",
        "id",
        "--load-id",
        "l1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Loaded 2 row(s)"));
    let again = b.run(&["ingest", "us.sales.orders", &csv, "--load-id", "l1"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("committed before"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let rows = b.json("SELECT id, amount FROM us.sales.orders ORDER BY id");
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "amount": 10.5}),
            json!({"id": 2, "amount": 20.0})
        ]
    );
    let csv_out = b.ok(&[
        "--output",
        "csv",
        "sql",
        "SELECT id FROM us.sales.orders ORDER BY id",
    ]);
    assert_eq!(csv_out, "id\n1\n2\n");
    let table_out = b.ok(&["sql", "SELECT count(*) AS n FROM us.sales.orders"]);
    assert!(
        table_out.contains("| n |") && table_out.contains("(1 row)"),
        "{table_out}"
    );

    let sql_file = b.file("q.sql", "UPDATE us.sales.orders SET amount = 0 WHERE id = 2;\nSELECT sum(amount) AS s FROM us.sales.orders;");
    assert!(
        b.ok(&["--output", "csv", "sql", "-f", &sql_file])
            .contains("s\n10.5")
    );

    let show = b.ok(&["table", "show", "us.sales.orders"]);
    assert!(
        show.contains("primary key: id")
            && show.contains("version:     1")
            && show.contains("DOUBLE"),
        "{show}"
    );
    let history = b.ok(&["--output", "csv", "table", "history", "us.sales.orders"]);
    assert!(
        history.starts_with("version,timestamp,operation,parameters\n1,"),
        "{history}"
    );
    b.ok(&["table", "restore", "us.sales.orders", "--version", "0"]);
    assert_eq!(
        b.json("SELECT sum(amount) AS s FROM us.sales.orders"),
        vec![json!({"s": 30.5})]
    );

    let listed = b.ok(&["--output", "json", "dataset", "list", "--hub", "us"]);
    assert!(
        listed.contains("\"layer\":\"source\"") && listed.contains("\"tags\":\"pii\""),
        "{listed}"
    );
    assert!(b.ok(&["dataset", "show", "us.sales"]).contains("orders"));
}

#[test]
fn errors_go_to_stderr_with_a_non_zero_exit() {
    let b = Basin::new();
    b.ok(&["init"]);
    assert!(
        b.fails(&["sql", "SELECT * FROM sales.nothing"])
            .contains("dataset 'main.sales' not found")
    );
    assert!(
        b.fails(&["dataset", "create", "Sales", "--layer", "source"])
            .contains("invalid dataset name 'Sales'")
    );
    assert!(
        b.fails(&["dataset", "create", "sales", "--layer", "gold"])
            .contains("expected one of source, prepared, semantic")
    );
    assert!(
        b.fails(&["ingest", "sales.t", "/no/such.csv"])
            .contains("does not exist")
    );
    b.ok(&["dataset", "create", "raw", "--layer", "source"]);
    let bad = b.file("bad.csv", "id\n1\nx\n");
    let err = b.fails(&["ingest", "raw.t", &bad, "--schema", "id BIGINT"]);
    assert!(
        err.contains("bad.csv:3: column 'id': 'x' is not a valid BIGINT"),
        "{err}"
    );
    assert!(
        b.fails(&["ingest", "raw.t", &bad, "--delimiter", ";;"])
            .contains("single ASCII character")
    );
    assert!(
        b.fails(&["table", "restore", "raw.t", "--version", "3"])
            .contains("table 'main.raw.t' not found")
    );
    // Engine settings from the environment: a good one is used, a bad one is named.
    let run = |variable: &str, value: &str| {
        b.command()
            .env(variable, value)
            .args(["sql", "SELECT 1 AS one"])
            .output()
            .unwrap()
    };
    assert!(
        run("DATAFUSION_EXECUTION_BATCH_SIZE", "1024")
            .status
            .success()
    );
    let bad = run("DATAFUSION_EXECUTION_BATCH_SIZE", "many");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains(
            "environment variable DATAFUSION_EXECUTION_BATCH_SIZE='many' is not a valid value"
        ),
        "{err}"
    );
}

#[test]
fn sql_reads_statements_from_stdin() {
    let b = Basin::new();
    b.ok(&["init"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_basin"))
        .args([
            "--data-dir",
            b.data_dir().to_str().unwrap(),
            "--output",
            "csv",
            "sql",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1 + 1 AS two;")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n2\n");
}

#[test]
fn demo_loads_samples_and_answers_queries() {
    let b = Basin::new();
    let out = b.ok(&["demo"]);
    assert!(out.contains("Revenue by country"), "{out}");
    assert!(out.contains("| 2026-02 | 30     |"), "{out}");
    // The upsert changed customer 3; version 0 still has the old segment.
    assert!(out.contains("| Alan Turing | enterprise |"), "{out}");
    assert!(out.contains("| Alan Turing | smb     |"), "{out}");
    // Running it again adds nothing (load ids).
    b.ok(&["demo"]);
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.orders"),
        vec![json!({"n": 60})]
    );
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.customers"),
        vec![json!({"n": 9})]
    );
}
