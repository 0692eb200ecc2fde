//! `basin serve`'s logs, read from the real server's stderr: one line per request and per
//! commit, no library internals at the default level, a constant volume per commit however long
//! a table's history, `--log-format json` for log shippers, and no secrets or values.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server};

const READER_PASSWORD: &str = "reader-password-77";
/// A value of a written row, as personal data may be: it must not reach the log.
const LITERAL: &str = "alice-secret@example.com";

/// `basin serve` (default log filter, `format`) with its stderr in a file; killed when dropped.
struct Logged {
    api: Server,
    stderr: PathBuf,
}

impl Logged {
    fn start(basin: &Basin, format: &str) -> Logged {
        let jwks = basin.file("jwks.json", &basin_testkit::server::jwks().to_string());
        let stderr = basin.dir.path().join(format!("serve-{format}.log"));
        let mut command =
            basin_testkit::server::serve_command(basin, &jwks, &["--log-format", format]);
        command
            .env_remove("BASIN_LOG")
            .env_remove("BASIN_LOG_FORMAT")
            .stderr(std::fs::File::create(&stderr).unwrap());
        Logged {
            api: Server::spawn(command),
            stderr,
        }
    }

    fn bytes(&self) -> u64 {
        std::fs::metadata(&self.stderr).unwrap().len()
    }

    fn lines(&self) -> Vec<String> {
        read_lines(&self.stderr)
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn setup(basin: &Basin) {
    basin.ok(&["dataset", "create", "ops", "--layer", "source"]);
    basin.ok(&["sql", "CREATE TABLE ops.events (n BIGINT, note VARCHAR)"]);
    let created = basin
        .command()
        .args(["user", "create", "reader"])
        .env("BASIN_PASSWORD", READER_PASSWORD)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    basin.ok(&["sql", "GRANT SELECT ON TABLE ops.events TO reader"]);
}

/// Writes `commits` one-row INSERTs; returns the log's size before the first and after each.
async fn insert(s: &Logged, token: &str, commits: usize) -> Vec<u64> {
    let mut sizes = vec![s.bytes()];
    for i in 1..=commits {
        let sql = format!("INSERT INTO ops.events VALUES ({i}, '{LITERAL}')");
        let a = s.api.sql(token, &sql).await;
        assert_eq!(a.status, 200, "{sql}: {}", a.text);
        sizes.push(s.bytes());
    }
    sizes
}

/// A refused write (SELECT only), a failed one (a value that is no BIGINT), a bad login.
async fn misbehave(s: &Logged, admin: &str) {
    let reader = s.api.login("reader", READER_PASSWORD).await;
    let denied = s
        .api
        .sql(
            &reader,
            &format!("INSERT INTO ops.events VALUES (0, '{LITERAL}')"),
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    let bad = s
        .api
        .sql(
            admin,
            &format!("INSERT INTO ops.events VALUES ('{LITERAL}', 'x')"),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.text.contains(LITERAL),
        "the client is told: {}",
        bad.text
    );
    let wrong = s
        .api
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(serde_json::json!({"user": "admin", "password": "wrong-password-55"})),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
}

/// No password, token or written value in the log.
fn assert_no_secrets(log: &str, tokens: &[&str]) {
    for secret in [
        ADMIN_PASSWORD,
        READER_PASSWORD,
        "wrong-password-55",
        LITERAL,
    ]
    .iter()
    .chain(tokens)
    {
        assert!(!log.contains(secret), "'{secret}' is in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_volume_per_commit_stays_constant_and_names_each_commit() {
    const COMMITS: usize = 150;
    let basin = Basin::new();
    setup(&basin);
    let s = Logged::start(&basin, "text");
    let admin = s.api.login("admin", ADMIN_PASSWORD).await;
    let sizes = insert(&s, &admin, COMMITS).await;

    let first = sizes[30] - sizes[0];
    let last = sizes[COMMITS] - sizes[COMMITS - 30];
    println!("log bytes for the first 30 commits: {first}, for the last 30: {last}");
    assert!(
        last * 2 <= first * 3,
        "log volume per commit grew with the table's history: {first} bytes for the first 30 commits, {last} for the last 30"
    );
    assert!(
        last / 30 < 1024,
        "{} bytes of log per one-row INSERT",
        last / 30
    );

    let lines = s.lines();
    for line in &lines {
        // `<timestamp> <LEVEL> <target>: <message> <fields>`
        let target = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            target.starts_with("basin"),
            "a library's line at the default level: {line}"
        );
    }
    let commits: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" basin_tables::log: commit principal="))
        .collect();
    assert_eq!(commits.len(), COMMITS, "one line per commit");
    for (i, line) in commits.iter().enumerate() {
        for field in [
            "principal=\"admin\"".to_string(),
            "operation=\"insert\"".to_string(),
            "table=\"main.ops.events\"".to_string(),
            format!("version={} ", i + 1),
            "rows=1 ".to_string(),
            "duration_ms=".to_string(),
        ] {
            assert!(line.contains(&field), "no {field} in: {line}");
        }
    }
    let requests = lines
        .iter()
        .filter(|l| l.contains(" basin_server::api: request ") && l.contains("path=/api/v1/query"))
        .count();
    assert_eq!(requests, COMMITS, "one line per request");

    misbehave(&s, &admin).await;
    let log = std::fs::read_to_string(&s.stderr).unwrap();
    assert_no_secrets(&log, &[&admin]);
    assert!(
        log.contains("status=403") && log.contains("principal=\"reader\""),
        "the refused request is logged with its principal:\n{log}"
    );
    assert!(
        log.contains("WARN basin_tables::log: commit failed"),
        "the failed write is logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let basin = Basin::new();
    setup(&basin);
    let s = Logged::start(&basin, "json");
    let admin = s.api.login("admin", ADMIN_PASSWORD).await;
    insert(&s, &admin, 5).await;
    misbehave(&s, &admin).await;

    let lines = s.lines();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(e.get(field).is_some(), "no {field} in {e}");
        }
        assert!(e["target"].as_str().unwrap().starts_with("basin"), "{e}");
    }
    let commits: Vec<&Value> = events.iter().filter(|e| e["message"] == "commit").collect();
    assert_eq!(commits.len(), 5, "{lines:#?}");
    for (i, c) in commits.iter().enumerate() {
        assert_eq!(c["level"], "INFO");
        assert_eq!(c["principal"], "admin");
        assert_eq!(c["operation"], "insert");
        assert_eq!(c["table"], "main.ops.events");
        assert_eq!(c["version"], i as i64 + 1);
        assert_eq!(c["rows"], 1);
        assert!(
            c["duration_ms"].is_number() && c["origin"].is_string(),
            "{c}"
        );
    }
    let requests: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 1 + 5 + 4, "{lines:#?}");
    for r in &requests {
        for field in [
            "request_id",
            "method",
            "path",
            "status",
            "duration_ms",
            "principal",
        ] {
            assert!(r.get(field).is_some(), "no {field} in {r}");
        }
    }
    assert!(
        requests
            .iter()
            .any(|r| r["status"] == 403 && r["principal"] == "reader")
    );
    assert!(
        requests
            .iter()
            .any(|r| r["status"] == 401 && r["principal"] == "anonymous")
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "commit failed" && e["level"] == "WARN"),
        "{lines:#?}"
    );
    assert_no_secrets(&lines.join("\n"), &[&admin]);
}
