//! Concurrent writers on one table: inside the server they take turns per table (appends share
//! group commits), so none fails; across processes (the CLI beside the server) a commit that
//! loses is run again on the new snapshot. Every answer can be trusted: the table holds
//! exactly the writes answered 200.

use std::time::Duration;

use serde_json::Value;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Answer, Api, Server};

/// Runs `statements` on `clients` concurrent connections, each its statements in order.
async fn concurrently(
    s: &Server,
    token: &str,
    clients: usize,
    statements: Vec<String>,
) -> Vec<Answer> {
    each_concurrently(s, token, clients, |_| statements.clone()).await
}

/// Runs `statements(client)` on `clients` concurrent connections.
async fn each_concurrently(
    s: &Server,
    token: &str,
    clients: usize,
    statements: impl Fn(usize) -> Vec<String>,
) -> Vec<Answer> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let api: Api = s.client();
            let token = token.to_string();
            let statements = statements(c);
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for sql in statements {
                    answers.push(api.sql(&token, &sql).await);
                }
                answers
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every answer is a 200.
fn all_committed(answers: &[Answer]) {
    for a in answers {
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

fn setup() -> Basin {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "ops", "--layer", "source"]);
    basin.ok(&[
        "sql",
        "CREATE TABLE ops.counter (id BIGINT, n BIGINT); INSERT INTO ops.counter VALUES (1, 0)",
    ]);
    basin.ok(&["sql", "CREATE TABLE ops.events (client BIGINT, seq BIGINT)"]);
    basin
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_in_one_server_all_commit() {
    let basin = setup();
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;

    // 5 clients × 10 read-modify-write UPDATEs of one row: each runs on the latest snapshot.
    let updates = vec!["UPDATE ops.counter SET n = n + 1 WHERE id = 1".to_string(); 10];
    all_committed(&concurrently(&s, &admin, 5, updates).await);
    let rows: Vec<Value> = s.client().rows(&admin, "SELECT n FROM ops.counter").await;
    assert_eq!(rows[0]["n"].as_i64(), Some(50));

    // 8 clients × 20 INSERTs into one table: group commits, none fails, none is lost.
    let inserts: Vec<String> = (0..20)
        .map(|i| format!("INSERT INTO ops.events VALUES (1, {i})"))
        .collect();
    let before = s.client().table_version(&admin, "main.ops.events").await;
    all_committed(&concurrently(&s, &admin, 8, inserts).await);
    let n = s
        .client()
        .count(&admin, "SELECT count(*) FROM ops.events")
        .await;
    assert_eq!(n, 160);
    let versions = s.client().table_version(&admin, "main.ops.events").await - before;
    println!("160 INSERTs from 8 clients made {versions} versions");
    assert!(versions <= 160, "{versions} versions");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_that_breaks_a_key_fails_alone_not_its_group() {
    let basin = setup();
    basin.ok(&[
        "sql",
        "CREATE TABLE ops.keyed (id BIGINT PRIMARY KEY, client BIGINT)",
    ]);
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;
    // Each client inserts 10 keys of its own and, in the middle, key 1, which only one of
    // them can have: the appends grouped with a losing key-1 insert still commit.
    let answers = each_concurrently(&s, &admin, 8, |c| {
        let mut statements: Vec<String> = (0..10)
            .map(|i| format!("INSERT INTO ops.keyed VALUES ({}, {c})", 1000 + c * 100 + i))
            .collect();
        statements.insert(5, format!("INSERT INTO ops.keyed VALUES (1, {c})"));
        statements
    })
    .await;
    let mut refused = 0;
    for a in &answers {
        match a.status {
            200 => {}
            400 => {
                let detail = a.body["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains("'id'") || detail.contains("key"),
                    "{detail}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert_eq!(refused, 7, "only the 7 late inserts of key 1 fail");
    let n = s
        .client()
        .count(&admin, "SELECT count(*) FROM ops.keyed")
        .await;
    assert_eq!(n, 81);
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_during_writes_see_whole_commits() {
    let basin = setup();
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;
    // Each INSERT adds 3 rows: a reader must never see a count that is not a multiple of 3,
    // nor a count that goes down.
    let inserts: Vec<String> = (0..10)
        .map(|i| format!("INSERT INTO ops.events VALUES (1, {i}), (2, {i}), (3, {i})"))
        .collect();
    let reader = {
        let (api, token) = (s.client(), admin.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..40 {
                seen.push(api.count(&token, "SELECT count(*) FROM ops.events").await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    all_committed(&concurrently(&s, &admin, 6, inserts).await);
    let seen = reader.await.unwrap();
    assert!(
        seen.iter().all(|n| n % 3 == 0),
        "half a commit seen: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "went back: {seen:?}");
    let n = s
        .client()
        .count(&admin, "SELECT count(*) FROM ops.events")
        .await;
    assert_eq!(n, 180);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_the_server_update_one_row_without_losing_an_update() {
    let basin = setup();
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;
    // Two CLI processes and three server clients increment one counter at the same time: the
    // commits that lose across processes run again on the new snapshot.
    let cli: Vec<_> = (0..2)
        .map(|_| {
            let mut command = basin.command();
            command.args(["sql", "UPDATE ops.counter SET n = n + 1 WHERE id = 1"]);
            tokio::task::spawn_blocking(move || {
                for _ in 0..5 {
                    let out = command.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    let updates = vec!["UPDATE ops.counter SET n = n + 1 WHERE id = 1".to_string(); 10];
    all_committed(&concurrently(&s, &admin, 3, updates).await);
    for c in cli {
        c.await.unwrap();
    }
    let rows: Vec<Value> = s.client().rows(&admin, "SELECT n FROM ops.counter").await;
    assert_eq!(rows[0]["n"].as_i64(), Some(40));
}
