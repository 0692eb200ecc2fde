//! Column-level lineage and OpenLineage events, end to end: models with a CTE, a join,
//! aliases, expressions and aggregates applied through the CLI; their column edges in
//! `system.column_lineage` and `GET /api/v1/lineage/…`, as each principal may see them; the
//! run events written to a file validated against the OpenLineage spec's JSON schemas.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::Basin;

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Source tables and a project of three models: `prepared.orders` (aliases, expressions, a
/// filter), `semantic.sales` (a CTE, a join, aggregates) and `semantic.whales` (a check that
/// fails).
fn shop(b: &Basin) -> std::path::PathBuf {
    b.ok(&["dataset", "create", "source", "--layer", "source"]);
    b.ok(&[
        "sql",
        "CREATE TABLE source.customers (id BIGINT, name VARCHAR, email VARCHAR)",
    ]);
    b.ok(&[
        "sql",
        "INSERT INTO source.customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', 'bob@example.com')",
    ]);
    b.ok(&[
        "sql",
        "CREATE TABLE source.orders (id BIGINT, customer_id BIGINT, status VARCHAR, amount DOUBLE)",
    ]);
    b.ok(&[
        "sql",
        "INSERT INTO source.orders VALUES (10, 1, 'OPEN', 80), (11, 1, 'shipped', 40), (12, 2, 'open', 15), (13, 2, 'lost', 0)",
    ]);
    let project = b.dir.path().join("project");
    write(
        &project,
        "basin.toml",
        "[project]\nname = \"shop\"\n\n[datasets.prepared]\nlayer = \"prepared\"\n\n[datasets.semantic]\nlayer = \"semantic\"\n",
    );
    write(
        &project,
        "models/prepared/orders.sql",
        "SELECT id, customer_id AS customer, lower(status) AS status, amount * 1.19 AS gross\nFROM source.orders WHERE amount > 0\n",
    );
    write(
        &project,
        "models/semantic/sales.sql",
        "WITH big AS (SELECT customer, gross FROM prepared.orders WHERE gross > 10)\nSELECT c.name AS customer_name, sum(b.gross) AS total, count(*) AS orders\nFROM big b JOIN source.customers c ON c.id = b.customer\nGROUP BY c.name\n",
    );
    write(
        &project,
        "models/semantic/whales.sql",
        "-- check row_count: 100..\nSELECT customer_name FROM semantic.sales WHERE total > 1000\n",
    );
    project
}

/// Rows of `system.column_lineage` as `upstream.column -> downstream.column kind`.
fn column_edges(rows: &[Value]) -> Vec<String> {
    let mut edges: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}.{} -> {}.{} {}",
                r["upstream"].as_str().unwrap(),
                r["upstream_column"].as_str().unwrap(),
                r["downstream"].as_str().unwrap(),
                r["downstream_column"].as_str().unwrap_or("*"),
                r["kind"].as_str().unwrap(),
            )
        })
        .collect();
    edges.sort();
    edges
}

const SALES_EDGES: [&str; 6] = [
    "main.prepared.orders.customer -> main.semantic.sales.* join",
    "main.prepared.orders.gross -> main.semantic.sales.* filter",
    "main.prepared.orders.gross -> main.semantic.sales.total aggregation",
    "main.source.customers.id -> main.semantic.sales.* join",
    "main.source.customers.name -> main.semantic.sales.* group_by",
    "main.source.customers.name -> main.semantic.sales.customer_name identity",
];

#[tokio::test]
async fn column_lineage_through_ctes_joins_aliases_expressions_and_aggregates() {
    let b = Basin::new();
    let project = shop(&b);
    let events = b.dir.path().join("openlineage.ndjson");
    let out = b
        .command()
        .args(["apply", &project.display().to_string()])
        .env("BASIN_OPENLINEAGE_URL", &events)
        .output()
        .unwrap();
    // whales fails its check; the others build.
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("failed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        b.json("SELECT count(*) AS n FROM semantic.sales")[0]["n"],
        2
    );

    let all = column_edges(&b.json("SELECT * FROM system.column_lineage"));
    let mut expected = vec![
        "main.source.orders.amount -> main.prepared.orders.* filter",
        "main.source.orders.amount -> main.prepared.orders.gross transformation",
        "main.source.orders.customer_id -> main.prepared.orders.customer identity",
        "main.source.orders.id -> main.prepared.orders.id identity",
        "main.source.orders.status -> main.prepared.orders.status transformation",
    ];
    expected.extend(SALES_EDGES);
    expected.sort();
    // semantic.whales has no table (its check failed): there is nothing of it to see yet.
    assert_eq!(all, expected);
    // The table-level rows of system.lineage are still there, one per table edge.
    let tables = b.json("SELECT upstream, downstream FROM system.lineage WHERE kind = 'model'");
    assert_eq!(tables.len(), 3, "{tables:?}");

    // A reader who sees semantic.sales and only the id of source.customers (not
    // prepared.orders, nor customers.name) sees only the edges between what it sees.
    b.create_user("reader", "reader-password", &[]);
    b.ok(&["sql", "GRANT SELECT ON TABLE semantic.sales TO reader"]);
    b.ok(&[
        "sql",
        "GRANT SELECT (id) ON TABLE source.customers TO reader",
    ]);
    let seen = b.ok(&[
        "--as",
        "reader",
        "--output",
        "json",
        "sql",
        "SELECT * FROM system.column_lineage",
    ]);
    let seen: Vec<Value> = serde_json::from_str(&seen).unwrap();
    assert_eq!(
        column_edges(&seen),
        ["main.source.customers.id -> main.semantic.sales.* join"]
    );

    // REST: the column edges along the table edges followed, filtered the same way.
    let server = crate::server::Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", crate::server::ADMIN_PASSWORD).await;
    let reader = server.login("reader", "reader-password").await;
    let rest_edges = |body: &Value| {
        let rows: Vec<Value> = body["columns"].as_array().unwrap().clone();
        column_edges(&rows)
    };
    let a = s
        .call(
            "GET",
            "/api/v1/lineage/main.semantic.sales?direction=up&depth=2",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = rest_edges(&a.body);
    assert!(
        got.contains(
            &"main.source.orders.amount -> main.prepared.orders.gross transformation".to_string()
        ) && got.contains(
            &"main.prepared.orders.gross -> main.semantic.sales.total aggregation".to_string()
        ) && !got.iter().any(|e| e.contains("whales")),
        "{got:?}"
    );
    assert_eq!(got.len(), 5 + SALES_EDGES.len(), "{got:?}");
    let a = s
        .call(
            "GET",
            "/api/v1/lineage/main.semantic.sales?direction=up&depth=2",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        rest_edges(&a.body),
        ["main.source.customers.id -> main.semantic.sales.* join"]
    );
    assert!(!a.text.contains("prepared.orders"), "{}", a.text);
    // The model's record, as listed, does not carry its column lineage past that filter.
    let a = s.call("GET", "/api/v1/models", Some(&reader), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["models"].as_array().unwrap().len(), 1, "{}", a.text);
    assert!(!a.text.contains("column_lineage"), "{}", a.text);

    // OpenLineage: a START and an end event per run, valid per the spec's schemas.
    let text = std::fs::read_to_string(&events).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["job"]["name"].as_str().unwrap(),
                e["eventType"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "prepared.orders START",
            "prepared.orders COMPLETE",
            "semantic.sales START",
            "semantic.sales COMPLETE",
            "semantic.whales START",
            "semantic.whales FAIL",
        ]
    );
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    assert_ne!(events[0]["run"]["runId"], events[2]["run"]["runId"]);
    let sales = &events[3];
    assert_eq!(sales["job"]["namespace"], "basin://main");
    let mut inputs: Vec<&str> = sales["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    inputs.sort();
    assert_eq!(inputs, ["prepared.orders", "source.customers"]);
    let output = &sales["outputs"][0];
    assert_eq!(output["name"], "semantic.sales");
    let total = &output["facets"]["columnLineage"]["fields"]["total"]["inputFields"][0];
    assert_eq!(total["namespace"], "basin://main");
    assert_eq!(total["name"], "prepared.orders");
    assert_eq!(total["field"], "gross");
    assert_eq!(total["transformations"][0]["type"], "DIRECT");
    assert_eq!(total["transformations"][0]["subtype"], "AGGREGATION");
    let schema: Vec<&str> = output["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(schema, ["customer_name", "total", "orders"]);
    assert!(
        events[5]["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("row_count"),
        "{}",
        events[5]
    );
    let report = validate(Path::new(&b.dir.path().join("openlineage.ndjson")));
    assert_eq!(report["events"], 6, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");

    // The validator does catch what the spec forbids: an unknown event type, a run without
    // an id, a column lineage facet without its fields.
    let mut bad = events[3].clone();
    bad["eventType"] = "DONE".into();
    bad["run"].as_object_mut().unwrap().remove("runId");
    bad["outputs"][0]["facets"]["columnLineage"]
        .as_object_mut()
        .unwrap()
        .remove("fields");
    let bad_file = b.file("bad.ndjson", &format!("{bad}\n"));
    let report = validate(Path::new(&bad_file));
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("DONE") && errors.contains("runId") && errors.contains("fields"),
        "{report}"
    );
}

/// Validates each event of an NDJSON file against the RunEvent schema its `schemaURL` names,
/// and each facet against the schema its `_schemaURL` names, with the spec's schemas vendored
/// under vendor/openlineage (see its README): `{"events": n, "errors": [...]}`.
fn validate(file: &Path) -> Value {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Python jsonschema package is missing: install it with `python3 -m pip install jsonschema` (./scripts/test does)"
    );
    let script = r#"
import json, pathlib, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
spec = pathlib.Path(sys.argv[1])
docs = [json.loads(p.read_text()) for p in [spec / "OpenLineage.json", *sorted((spec / "facets").glob("*.json"))]]
registry = Registry().with_resources([(d["$id"], Resource.from_contents(d)) for d in docs])
def check(ref, value, where, errors):
    # An unknown schema URL is an error too (unresolvable), never a pass.
    try:
        v = Draft202012Validator({"$ref": ref}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors.extend(f"{where}: {e.message} (at {'/'.join(map(str, e.absolute_path))})" for e in v.iter_errors(value))
    except Exception as e:
        errors.append(f"{where}: {ref}: {e!r}")
errors, n = [], 0
for n, line in enumerate(open(sys.argv[2]), 1):
    event = json.loads(line)
    check(event.get("schemaURL", ""), event, f"event {n}", errors)
    facets = [("run", f) for f in event.get("run", {}).get("facets", {}).items()]
    facets += [("job", f) for f in event.get("job", {}).get("facets", {}).items()]
    for d in event.get("inputs", []) + event.get("outputs", []):
        facets += [(d["name"], f) for f in d.get("facets", {}).items()]
    for owner, (name, facet) in facets:
        check(facet.get("_schemaURL", ""), facet, f"event {n} {owner} facet {name}", errors)
print(json.dumps({"events": n, "errors": errors}))
"#;
    let spec = crate::repo_root().join("vendor/openlineage/spec");
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&spec)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One HTTP request as the loopback endpoint below received it: its headers and its body.
struct Received {
    head: String,
    body: String,
}

/// A loopback HTTP endpoint that answers every request `200` and hands each over.
fn endpoint() -> (String, std::sync::mpsc::Receiver<Received>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let body = String::from_utf8(body).unwrap();
            if tx.send(Received { head, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn openlineage_events_are_posted_and_a_dead_endpoint_fails_no_run() {
    let b = Basin::new();
    let project = shop(&b);
    std::fs::remove_file(project.join("models/semantic/whales.sql")).unwrap();
    b.ok(&["apply", &project.display().to_string()]);

    let (url, received) = endpoint();
    let out = b
        .command()
        .args(["model", "run", "prepared.orders"])
        .env("BASIN_OPENLINEAGE_URL", &url)
        .env("BASIN_OPENLINEAGE_API_KEY", "s3cr3t-key")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command waited for its events to be posted before it ended.
    let events: Vec<Received> = (0..2)
        .filter_map(|_| {
            received
                .recv_timeout(std::time::Duration::from_secs(5))
                .ok()
        })
        .collect();
    let kinds: Vec<String> = events
        .iter()
        .map(|r| {
            let e: Value = serde_json::from_str(&r.body).unwrap();
            format!(
                "{} {}",
                e["job"]["name"].as_str().unwrap(),
                e["eventType"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds, ["prepared.orders START", "prepared.orders COMPLETE"]);
    for r in &events {
        assert!(r.head.starts_with("POST /api/v1/lineage "), "{}", r.head);
        let head = r.head.to_lowercase();
        assert!(
            head.contains("authorization: bearer s3cr3t-key"),
            "{}",
            r.head
        );
        assert!(
            head.contains("content-type: application/json"),
            "{}",
            r.head
        );
    }

    // Nothing listens there: the run succeeds all the same, and the key is not logged.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://user:pw@{}/lineage", l.local_addr().unwrap())
    };
    let out = b
        .command()
        .args(["model", "run", "prepared.orders"])
        .env("BASIN_OPENLINEAGE_URL", &dead)
        .env("BASIN_OPENLINEAGE_API_KEY", "s3cr3t-key")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("main.prepared.orders ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = dead.replace("user:pw@", "");
    assert!(
        stderr.contains(&format!("could not post an OpenLineage event to {shown}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cr3t-key") && !stderr.contains("user:pw"),
        "{stderr}"
    );
}
