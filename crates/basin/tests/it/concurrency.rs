//! Concurrent writers on one table through the real server: every answer can be trusted — a
//! 200 means the write committed, a `409 write_conflict` means nothing was committed and says
//! that running it again is safe — and no library internals reach the client.

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
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let api: Api = s.client();
            let token = token.to_string();
            let statements = statements.clone();
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

/// The number of 200s; fails on any other answer than a clean 409 write conflict.
fn committed(answers: &[Answer]) -> i64 {
    let mut ok = 0;
    for a in answers {
        match a.status {
            200 => ok += 1,
            409 => {
                assert_eq!(a.body["code"], "write_conflict", "{}", a.text);
                let detail = a.body["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains("'main.ops.counter'") || detail.contains("'main.ops.events'"),
                    "{detail}"
                );
                assert!(detail.contains("running it again is safe"), "{detail}");
                for internal in ["file://", "Isolation", "Failed to commit transaction"] {
                    assert!(!detail.contains(internal), "library internals in: {detail}");
                }
            }
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    println!(
        "{ok} of {} writes committed, the others answered 409",
        answers.len()
    );
    ok
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_get_answers_they_can_trust() {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "ops", "--layer", "source"]);
    basin.ok(&[
        "sql",
        "CREATE TABLE ops.counter (id BIGINT, n BIGINT); INSERT INTO ops.counter VALUES (1, 0)",
    ]);
    basin.ok(&["sql", "CREATE TABLE ops.events (client BIGINT, seq BIGINT)"]);
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;

    let updates = vec!["UPDATE ops.counter SET n = n + 1 WHERE id = 1".to_string(); 10];
    let answers = concurrently(&s, &admin, 5, updates).await;
    let ok = committed(&answers);
    let rows: Vec<Value> = s.client().rows(&admin, "SELECT n FROM ops.counter").await;
    assert_eq!(
        rows[0]["n"].as_i64(),
        Some(ok),
        "n must count exactly the updates answered 200"
    );

    let inserts: Vec<String> = (0..20)
        .map(|i| format!("INSERT INTO ops.events VALUES (1, {i})"))
        .collect();
    let answers = concurrently(&s, &admin, 8, inserts).await;
    let ok = committed(&answers);
    let n = s
        .client()
        .count(&admin, "SELECT count(*) FROM ops.events")
        .await;
    assert_eq!(
        n, ok,
        "the table must hold exactly the inserts answered 200"
    );
}
