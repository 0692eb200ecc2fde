//! Streamed records end to end (`POST …/records`): queryable as soon as they are acknowledged,
//! governed like committed rows, committed once, exactly once across retries, graceful
//! shutdowns and `kill -9`; bad input refused clearly with nothing stored.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Basin;
use crate::crash::{Rng, kills};
use crate::server::{ADMIN_PASSWORD, Answer, Api, Server, problem};

const EVENTS: &str = "/api/v1/hubs/main/datasets/fleet/tables/events";

/// Posts a body of records to fleet.events.
async fn post(s: &Api, token: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    post_to(s, EVENTS, token, body, headers).await
}

/// Posts a body of records to the table at `table` (its REST path).
async fn post_to(
    s: &Api,
    table: &str,
    token: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = s
        .http
        .post(format!("{}{table}/records", s.url))
        .bearer_auth(token)
        .body(body);
    if !headers.iter().any(|(k, _)| *k == "content-type") {
        req = req.header("content-type", "application/x-ndjson");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Api::answer(req.send().await.unwrap()).await
}

/// Sets how long fleet.events buffers records before it commits them.
async fn commit_after(s: &Api, admin: &str, max_age_ms: u64) {
    let settings = json!({"max_age_ms": max_age_ms, "max_mib": 64, "unknown_fields": "reject"});
    let a = s
        .call(
            "PUT",
            &format!("{EVENTS}/stream"),
            Some(admin),
            Some(settings),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

fn ndjson(records: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A data directory with `fleet.events`, a reader `alice` (row filter region = 'eu', vehicle
/// masked, driver PII she may not see in clear) and a producer `feeder` (MODIFY).
fn fleet() -> Basin {
    let b = Basin::new();
    b.ok(&["dataset", "create", "fleet", "--layer", "source"]);
    b.ok(&[
        "sql",
        "CREATE TABLE fleet.events (id BIGINT, vehicle VARCHAR, region VARCHAR, driver VARCHAR, speed DOUBLE)",
    ]);
    b.ok(&["role", "create", "analyst"]);
    b.create_user("alice", "alice-password", &["--role", "analyst"]);
    b.create_user("feeder", "feeder-password", &[]);
    b.create_user("reader", "reader-password", &[]);
    b
}

async fn count(s: &Api, token: &str, sql: &str) -> i64 {
    s.count(token, sql).await
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_queryable_at_once_governed_committed_once_and_bad_input_is_refused() {
    let b = fleet();
    let mut server = Server::start(&b, &["--max-body-mib", "1"]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    for statement in [
        "GRANT SELECT, MODIFY ON TABLE fleet.events TO analyst",
        "GRANT SELECT, MODIFY, UNMASK ON TABLE fleet.events TO feeder",
        "GRANT SELECT ON TABLE fleet.events TO reader",
    ] {
        let a = s.sql(&admin, statement).await;
        assert_eq!(a.status, 200, "{statement}: {}", a.text);
    }
    for (path, body) in [
        (
            "/api/v1/tags/classification",
            json!({"allowed_values": ["public", "pii"]}),
        ),
        (
            "/api/v1/policies/row-filters",
            json!({"table": "fleet.events", "grantee": "analyst", "expression": "region = 'eu'"}),
        ),
        (
            "/api/v1/policies/masks",
            json!({"table": "fleet.events", "column": "vehicle", "grantee": "analyst", "mask": "keep_last(2)"}),
        ),
        (
            "/api/v1/tags",
            json!({"object": "table main.fleet.events", "column": "driver", "tags": ["classification=pii"]}),
        ),
    ] {
        let a = s.call("PUT", path, Some(&admin), Some(body.clone())).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    // Records stay buffered (an hour) unless something commits them.
    commit_after(&s, &admin, 3_600_000).await;
    let (alice, feeder, reader) = (
        server.login("alice", "alice-password").await,
        server.login("feeder", "feeder-password").await,
        server.login("reader", "reader-password").await,
    );

    let records: Vec<Value> = (1..=4)
        .map(|i| json!({"id": i, "vehicle": format!("WVW-{i:04}"), "region": if i % 2 == 0 { "eu" } else { "us" }, "driver": format!("driver-{i}"), "speed": i as f64 * 10.5}))
        .collect();
    let before = s.table_version(&admin, "fleet.events").await;
    let a = post(
        &s,
        &feeder,
        ndjson(&records),
        &[("Idempotency-Key", "batch-1")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["accepted"].as_u64(), a.body["replayed"].as_bool()),
        (Some(4), Some(false))
    );

    // Queryable at once, before any commit.
    assert_eq!(s.table_version(&admin, "fleet.events").await, before);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        4
    );
    // The buffered rows are filtered, masked and protected like committed ones.
    let seen = s
        .rows(
            &alice,
            "SELECT id, vehicle, driver FROM fleet.events ORDER BY id",
        )
        .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["id"], 2);
    let masked = seen[0]["vehicle"].as_str().unwrap();
    assert!(masked.ends_with("02") && masked != "WVW-0002", "{masked}");
    assert_ne!(seen[0]["driver"], "driver-2", "PII shown in clear to alice");
    let clear = s
        .rows(&admin, "SELECT driver FROM fleet.events WHERE id = 2")
        .await;
    assert_eq!(clear[0]["driver"], "driver-2");
    // Time travel reads the committed version only.
    assert_eq!(
        count(
            &s,
            &admin,
            "SELECT count(*) FROM fleet.events VERSION AS OF 0"
        )
        .await,
        0
    );
    // No clear PII in the stream log.
    for f in walk(&b.data_dir().join("wal")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == b"driver-2"),
            "clear PII in the stream log {}",
            f.display()
        );
    }

    // A retry with the same key is answered, not taken again.
    let again = post(
        &s,
        &feeder,
        ndjson(&records),
        &[("Idempotency-Key", "batch-1")],
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["sequence"], a.body["sequence"]);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        4
    );

    // Who may not modify the table, or may but does not see all of it, is refused.
    problem(&post(&s, &reader, ndjson(&records), &[]).await, 403);
    problem(&post(&s, &alice, ndjson(&records), &[]).await, 403);

    // Bad input: a clear error, nothing stored, the server goes on.
    let partly = post(&s, &feeder, b"{\"id\": 10, \"speed\": 1}\n{\"id\": \"ten\"}\n{\"id\": 11, \"colour\": \"red\"}\n{\"id\": 12".to_vec(), &[]).await;
    assert_eq!(partly.status, 200, "{}", partly.text);
    assert_eq!(partly.body["accepted"], 1);
    let refused: Vec<u64> = partly.body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, vec![1, 2, 3], "{}", partly.text);
    assert!(
        partly.text.contains("'colour' is not a column"),
        "{}",
        partly.text
    );
    for (body, content_type, status, says) in [
        (
            b"{\"id\": 1".to_vec(),
            "application/x-ndjson",
            400,
            "no record of the request was taken",
        ),
        (
            b"{\"name\": \"\xff\"}".to_vec(),
            "application/x-ndjson",
            400,
            "invalid UTF-8",
        ),
        (
            b"[{\"id\": 1},".to_vec(),
            "application/json",
            400,
            "not a JSON array",
        ),
        (
            b"".to_vec(),
            "application/x-ndjson",
            400,
            "holds no records",
        ),
        (
            b"id,speed\n1,2\n".to_vec(),
            "text/csv",
            415,
            "not a format of records",
        ),
        (
            format!("{{\"vehicle\": \"{}\"}}", "x".repeat(2 << 20)).into_bytes(),
            "application/x-ndjson",
            413,
            "limit",
        ),
    ] {
        let a = post(&s, &feeder, body, &[("content-type", content_type)]).await;
        problem(&a, status);
        assert!(a.text.contains(says), "{says}: {}", a.text);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&ndjson(&[json!({"id": 20, "region": "eu"})]))
        .unwrap();
    let a = post(
        &s,
        &feeder,
        gz.finish().unwrap(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let missing = s
        .http
        .post(format!(
            "{}/api/v1/hubs/main/datasets/fleet/tables/nope/records",
            s.url
        ))
        .bearer_auth(&feeder)
        .body("{\"id\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        6
    );

    // Any write other than an append commits the buffer first, and sees its rows.
    let a = s.sql(&admin, "DELETE FROM fleet.events WHERE id = 1").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(s.table_version(&admin, "fleet.events").await >= before + 2);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        5
    );

    // A graceful shutdown commits what is buffered; nothing is doubled after the restart.
    let a = post(
        &s,
        &feeder,
        ndjson(&[json!({"id": 30, "region": "eu"})]),
        &[("Idempotency-Key", "last")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    server.terminate();
    assert!(server.wait_exit().success());
    let committed: Vec<Value> =
        b.json("SELECT count(*) AS n, count(DISTINCT id) AS d FROM fleet.events");
    assert_eq!(
        (committed[0]["n"].as_i64(), committed[0]["d"].as_i64()),
        (Some(6), Some(6))
    );
    assert!(
        segments(&b).is_empty(),
        "log segments left after a clean stop: {:?}",
        segments(&b)
    );
    let server = Server::start(&b, &[]);
    let s = server.client();
    let feeder = server.login("feeder", "feeder-password").await;
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let a = post(
        &s,
        &feeder,
        ndjson(&[json!({"id": 30, "region": "eu"})]),
        &[("Idempotency-Key", "last")],
    )
    .await;
    assert_eq!(
        a.body["replayed"], true,
        "the key outlives a restart: {}",
        a.text
    );
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        6
    );
}

/// The crash test: a producer streams numbered records while the server is killed with
/// SIGKILL and restarted; a request cut off by a kill is retried with its key after the
/// restart. At the end every acknowledged number is in the table exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_record_survives_kill_9_exactly_once() {
    let b = fleet();
    b.ok(&[
        "sql",
        "GRANT SELECT, MODIFY ON TABLE fleet.events TO feeder",
    ]);
    let mut rng = Rng::seeded("every_acknowledged_record_survives_kill_9_exactly_once");
    let mut acknowledged = BTreeSet::new();
    let mut next = 0u64;
    // A request whose answer the kill cut off: (its key, its numbers).
    let mut unanswered: Option<(String, Vec<u64>)> = None;
    for round in 0..=kills(3) {
        let server = Server::start(&b, &[]);
        let s = server.client();
        let feeder = server.login("feeder", "feeder-password").await;
        if round == 0 {
            let admin = server.login("admin", ADMIN_PASSWORD).await;
            // Commits every 300 ms, so that kills land before, during and after commits.
            commit_after(&s, &admin, 300).await;
        }
        let last = round == kills(3);
        let kill_at = tokio::time::Instant::now()
            + rng.delay(Duration::from_millis(1500))
            + Duration::from_millis(200);
        loop {
            let (key, numbers) = unanswered.take().unwrap_or_else(|| {
                let numbers: Vec<u64> = (next..next + 50).collect();
                next += 50;
                (format!("req-{}", numbers[0]), numbers)
            });
            let body = ndjson(
                &numbers
                    .iter()
                    .map(|n| json!({"id": n, "region": "eu"}))
                    .collect::<Vec<_>>(),
            );
            let headers = [("Idempotency-Key", key.as_str())];
            let send = post(&s, &feeder, body, &headers);
            let answer = if last {
                Some(send.await)
            } else {
                tokio::select! {
                    a = send => Some(a),
                    _ = tokio::time::sleep_until(kill_at) => None,
                }
            };
            match answer {
                Some(a) if a.status == 200 => {
                    assert_eq!(a.body["accepted"].as_u64(), Some(50), "{}", a.text);
                    acknowledged.extend(numbers);
                }
                Some(a) => panic!("request {key} failed: {}", a.text),
                None => {
                    unanswered = Some((key, numbers));
                    break;
                }
            }
            if last && next >= 1000 {
                break;
            }
            if !last && tokio::time::Instant::now() >= kill_at {
                break;
            }
        }
        drop(server); // SIGKILL (for the last round too: recovery reads the log back)
    }
    let server = Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    // In pages: a long run stores more records than one answer holds.
    let mut rows = Vec::new();
    for low in (0..next).step_by(200_000) {
        let page = format!(
            "SELECT id, count(*) AS n FROM fleet.events WHERE id >= {low} AND id < {} GROUP BY id",
            low + 200_000
        );
        rows.extend(s.rows(&admin, &page).await);
    }
    let doubled: Vec<&Value> = rows.iter().filter(|r| r["n"] != 1).collect();
    assert!(doubled.is_empty(), "records stored twice: {doubled:?}");
    let stored: BTreeSet<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    let lost: Vec<&u64> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    // Every request cut off by a kill was retried with its key, and answered.
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "records stored that were never acknowledged"
    );
    assert!(acknowledged.len() >= 1000);
}

fn segments(b: &Basin) -> Vec<std::path::PathBuf> {
    walk(&b.data_dir().join("wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A table partitioned by time takes its `year`/`month`/`day`/`hour` from a timestamp field of
/// the records, whatever the records say of them.
#[tokio::test(flavor = "multi_thread")]
async fn streamed_records_land_in_time_partitions_derived_from_a_field() {
    let b = fleet();
    b.ok(&[
        "sql",
        "CREATE TABLE fleet.trips (ts TIMESTAMP, km DOUBLE, year INT, month INT, day INT, hour INT)",
    ]);
    // Set with the CLI, read through REST.
    let e = b.fails(&[
        "table",
        "stream",
        "fleet.trips",
        "--unknown-fields",
        "maybe",
    ]);
    assert!(e.contains("use reject, evolve or quarantine"), "{e}");
    b.ok(&[
        "table",
        "stream",
        "fleet.trips",
        "--max-age-ms",
        "3600000",
        "--partition-time-field",
        "ts",
    ]);
    let server = Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let trips = "/api/v1/hubs/main/datasets/fleet/tables/trips";
    let a = s
        .call("GET", &format!("{trips}/stream"), Some(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (
            a.body["partition_time_field"].as_str(),
            a.body["max_age_ms"].as_u64()
        ),
        (Some("ts"), Some(3_600_000))
    );
    let body = ndjson(&[
        json!({"ts": "2026-11-26T05:30:00", "km": 12.5}),
        json!({"ts": "2026-12-31T23:59:00", "km": 3.0, "year": 1999}),
    ]);
    let a = post_to(&s, trips, &admin, body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = s
        .rows(
            &admin,
            "SELECT year, month, day, hour FROM fleet.trips ORDER BY ts",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"year": 2026, "month": 11, "day": 26, "hour": 5}),
            json!({"year": 2026, "month": 12, "day": 31, "hour": 23})
        ]
    );
}

/// When the server's buffer is full, requests of records get 429 with Retry-After and nothing
/// is taken; once the buffer is committed, requests are taken again.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_buffer_answers_429_until_it_is_committed() {
    let b = fleet();
    let server = Server::start(&b, &["--stream-buffer-mib", "16"]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    commit_after(&s, &admin, 3_600_000).await;
    let batch: Vec<Value> = (0..2000)
        .map(|i| json!({"id": i, "vehicle": format!("vehicle-{i:06}-{}", "x".repeat(100)), "region": "eu"}))
        .collect();
    let body = ndjson(&batch);
    let (mut taken, mut full) = (0i64, None);
    for _ in 0..500 {
        let resp = s
            .http
            .post(format!("{}{EVENTS}/records", s.url))
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            let retry = resp.headers().get("retry-after").cloned();
            full = Some((retry, Api::answer(resp).await));
            break;
        }
        assert_eq!(resp.status(), 200);
        taken += 2000;
    }
    let (retry, answer) = full.expect("the buffer never filled");
    assert!(retry.is_some(), "429 without Retry-After");
    problem(&answer, 429);
    assert!(answer.text.contains("buffer"), "{}", answer.text);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        taken
    );
    // A write other than an append commits the buffer; records are taken again.
    let a = s.sql(&admin, "DELETE FROM fleet.events WHERE id < 0").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = post(&s, &admin, body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        count(&s, &admin, "SELECT count(*) FROM fleet.events").await,
        taken + 2000
    );
}
