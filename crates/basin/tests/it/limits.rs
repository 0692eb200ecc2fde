//! End-to-end: the limits of the real `basin serve` — memory per query, queries at once, request
//! bodies, parallel logins, errors while streaming, and storage outages.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};

/// Rows in `big.numbers`.
const NUMBERS: u64 = 200_000;

/// One group whose `array_agg` holds ~400 MB: an aggregate without GROUP BY cannot spill.
const MEMORY_HOG: &str = "SELECT array_agg(repeat('x', 2000)) AS a FROM big.numbers";

/// The table `big.numbers`: column `v`, 1..=[`NUMBERS`], in one file (read in batches of 8192).
fn numbers(basin: &Basin) {
    basin.ok(&["dataset", "create", "big", "--layer", "source"]);
    let mut csv = String::from("v\n");
    for v in 1..=NUMBERS {
        csv.push_str(&format!("{v}\n"));
    }
    let path = basin.file("numbers.csv", &csv);
    basin.ok(&["ingest", "big.numbers", &path]);
}

/// All of `big.numbers`, but the row with `v = fail_at` cannot be cast: execution fails there.
fn failing_at(fail_at: u64) -> String {
    format!(
        "SELECT CAST(CASE WHEN v = {fail_at} THEN 'x' ELSE '1' END AS INT) AS c FROM big.numbers"
    )
}

/// `/health` and a small query, each answering 200; returns how long `/health` took.
async fn still_serving(s: &Server, token: &str) -> Duration {
    let started = Instant::now();
    let health = s.call("GET", "/health", None, None).await;
    let latency = started.elapsed();
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(
        s.count(token, "SELECT count(*) AS n FROM big.numbers WHERE v <= 10")
            .await,
        10
    );
    latency
}

async fn query(s: &Server, token: &str, body: Value) -> reqwest::Response {
    s.http
        .post(format!("{}/api/v1/query", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_over_the_memory_limit_fails_alone() {
    let basin = Basin::new();
    numbers(&basin);
    let s = Server::start(&basin, &["--memory-limit", "64MiB"]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;

    let (hog, latency) = tokio::join!(s.sql(&admin, MEMORY_HOG), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        still_serving(&s, &admin).await
    });
    println!("/health answered in {latency:?} while the memory hog ran");
    problem(&hog, 400);
    assert_eq!(hog.body["code"], "memory_limit_exceeded", "{}", hog.text);
    let detail = hog.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("64 MiB") && detail.contains("--memory-limit"),
        "the error does not name the limit: {detail}"
    );
    still_serving(&s, &admin).await;

    // A sort of ~100 MB spills to disk. DataFusion's final merge of the sorted partitions cannot
    // spill, and when both partitions finish sorting together it may need more than the limit
    // (seen under load): then the answer ends with an error record naming the limit — never a
    // cut-off body, never a crash — and the server keeps serving.
    let answer = s
        .sql(
            &admin,
            "SELECT v FROM (SELECT v, repeat('y', 500) AS pad FROM big.numbers) ORDER BY pad, v DESC",
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let sorted = answer.body["rows"].as_array().unwrap().clone();
    match answer.body.get("error") {
        None => {
            assert_eq!(sorted.len() as u64, NUMBERS);
            assert_eq!(sorted[0]["v"], NUMBERS, "{:?}", &sorted[..3]);
        }
        Some(error) => {
            println!("the sort ran out of memory in its final merge: {error}");
            assert_eq!(error["code"], "memory_limit_exceeded", "{error}");
            assert!(
                error["detail"].as_str().unwrap().contains("64 MiB"),
                "{error}"
            );
        }
    }
    still_serving(&s, &admin).await;

    // The CLI takes the same limit.
    let stderr = basin.fails(&["--memory-limit", "64MiB", "sql", MEMORY_HOG]);
    assert!(stderr.contains("64 MiB"), "{stderr}");
    let stderr = basin.fails(&["--memory-limit", "lots", "sql", "SELECT 1"]);
    assert!(stderr.contains("'lots' is not a size"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn excess_queries_wait_then_get_503() {
    let basin = Basin::new();
    numbers(&basin);
    let s = Server::start(&basin, &["--max-concurrent-queries", "1"]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    // A result far larger than the socket buffers, left unread: its query keeps its slot.
    let held = query(
        &s,
        &admin,
        json!({"sql": "SELECT repeat('x', 1000) AS s FROM big.numbers"}),
    )
    .await;
    assert_eq!(held.status(), 200);
    let started = Instant::now();
    let busy = s.sql(&admin, "SELECT 1 AS one").await;
    problem(&busy, 503);
    assert_eq!(busy.body["code"], "busy", "{}", busy.text);
    println!("the second query was refused after {:?}", started.elapsed());
    assert_eq!(s.call("GET", "/health", None, None).await.status, 200);
    drop(held);
    // The slot comes back once the client goes away.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = s.sql(&admin, "SELECT 1 AS one").await;
        if a.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `head` and then up to `body_bytes` of body on a raw connection; returns the status line
/// of the answer and how long it took.
async fn raw_post(url: &str, head: &str, chunked: bool, body_bytes: usize) -> (String, Duration) {
    let addr = url.trim_start_matches("http://");
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b'a'; 16 * 1024];
    let mut sent = 0;
    while sent < body_bytes {
        // The server may answer and close before everything is sent.
        let ok = if chunked {
            let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
            frame.extend_from_slice(&piece);
            frame.extend_from_slice(b"\r\n");
            tcp.write_all(&frame).await
        } else {
            tcp.write_all(&piece).await
        };
        if ok.is_err() {
            break;
        }
        sent += piece.len();
    }
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut answer))
        .await
        .expect("the server answers")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_limited_per_endpoint() {
    let basin = Basin::new();
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;

    // A login declaring 1 GiB is refused before its body is read.
    let head = "POST /api/v1/login HTTP/1.1\r\nHost: basin\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n";
    let (status, took) = raw_post(&s.url, head, false, 64 * 1024).await;
    println!("1 GiB login refused in {took:?}");
    assert!(status.contains(" 413 "), "{status}");
    // Without a declared length, reading stops after a few KiB.
    let head = "POST /api/v1/login HTTP/1.1\r\nHost: basin\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (status, _) = raw_post(&s.url, head, true, 256 * 1024).await;
    assert!(status.contains(" 413 "), "{status}");

    // JSON endpoints take 1 MiB.
    let big = "SELECT 1 AS one -- ".to_string() + &"x".repeat(2 * 1024 * 1024);
    let a = s.sql(&admin, &big).await;
    problem(&a, 413);

    // An over-long user name is refused before the catalog or the audit log see it.
    let long = "u".repeat(1000);
    let a = s
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"user": long, "password": "whatever-password"})),
        )
        .await;
    problem(&a, 400);
    assert!(
        a.body["detail"].as_str().unwrap().contains("256"),
        "{}",
        a.text
    );
    let n = s
        .count(
            &admin,
            "SELECT count(*) AS n FROM system.audit WHERE length(principal) > 256 OR length(target) > 256",
        )
        .await;
    assert_eq!(n, 0, "an over-long user name reached the audit log");
    assert_eq!(s.call("GET", "/health", None, None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_logins_do_not_stall_health() {
    let basin = Basin::new();
    let s = Server::start(&basin, &[]);
    let logins = futures::future::join_all((0..32).map(|i| {
        let s = &s;
        async move {
            let password = if i % 2 == 0 {
                ADMIN_PASSWORD
            } else {
                "wrong-password-1"
            };
            let user = if i % 2 == 0 {
                "admin".to_string()
            } else {
                format!("nobody{i}")
            };
            s.call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"user": user, "password": password})),
            )
            .await
            .status
        }
    }));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let started = Instant::now();
            let health = s.call("GET", "/health", None, None).await;
            assert_eq!(health.status, 200);
            worst = worst.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    };
    let (statuses, worst) = tokio::join!(logins, probe);
    println!("/health took at most {worst:?} during 32 parallel logins");
    assert!(
        worst < Duration::from_secs(10),
        "/health stalled for {worst:?}"
    );
    for (i, status) in statuses.iter().enumerate() {
        let expected = if i % 2 == 0 { 200 } else { 401 };
        assert!(
            *status == expected || *status == 503,
            "login {i} answered {status}"
        );
    }
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_while_streaming_are_explicit() {
    let basin = Basin::new();
    numbers(&basin);
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;

    // Failing before the first rows (every row fails, so no batch can come first, whatever
    // order the partitions finish in): a real error status, in every format.
    let failing_everywhere =
        "SELECT CAST(CASE WHEN v >= 0 THEN 'x' ELSE '1' END AS INT) AS c FROM big.numbers";
    for format in ["json", "csv", "arrow"] {
        let resp = query(
            &s,
            &admin,
            json!({"sql": failing_everywhere, "format": format}),
        )
        .await;
        problem(&Server::answer(resp).await, 400);
    }
    // Timing out before the first rows: 504.
    let resp = query(
        &s,
        &admin,
        json!({"sql": "SELECT count(*) FROM big.numbers a, big.numbers b WHERE a.v + b.v = 7", "timeout_ms": 200}),
    )
    .await;
    problem(&Server::answer(resp).await, 504);

    // Failing after rows were sent: the status is out, the body ends with an error record. (The
    // failing row is in the file's last batch: whatever the partitioning, batches precede it.)
    let sql = failing_at(NUMBERS - 10);
    let resp = query(&s, &admin, json!({"sql": sql, "format": "json"})).await;
    assert_eq!(resp.status(), 200);
    let json: Value = serde_json::from_str(&resp.text().await.unwrap()).expect("still valid JSON");
    assert_eq!(json["error"]["code"], "query_failed", "{}", json["error"]);
    assert_eq!(json["error"]["status"], 400);
    let sent = json["rows"].as_array().unwrap().len();
    assert!(sent > 0 && (sent as u64) < NUMBERS, "{sent} rows");
    assert_eq!(json["row_count"], sent);

    let resp = query(&s, &admin, json!({"sql": sql, "format": "csv"})).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("#error,400,query_failed,"), "{last}");
    assert!(text.lines().count() > 2);

    let resp = query(&s, &admin, json!({"sql": sql, "format": "arrow"})).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.is_err(),
        "an Arrow answer cut off by an error must not end like a complete one"
    );

    // Failed queries are audited as such.
    let failed = s
        .count(
            &admin,
            "SELECT count(*) AS n FROM system.audit WHERE action = 'query' AND outcome = 'error'",
        )
        .await;
    assert!(failed >= 7, "{failed} failed queries audited");
    still_serving(&s, &admin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_outage_answers_503() {
    let basin = Basin::new();
    numbers(&basin);
    basin.ok(&["dataset", "create", "sales", "--layer", "prepared"]);
    for table in ["products", "stores"] {
        let csv = basin.file(&format!("{table}.csv"), "id,name\n1,a\n2,b\n");
        basin.ok(&["ingest", &format!("sales.{table}"), &csv]);
    }
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        s.count(&admin, "SELECT count(*) AS n FROM sales.products")
            .await,
        2
    );

    // Works as root too, where permissions do not deny: the table's directory becomes a file.
    let dir = basin.data_dir().join("hubs/main/sales/products");
    assert!(dir.is_dir(), "no table directory at {}", dir.display());
    std::fs::rename(&dir, dir.with_extension("moved")).unwrap();
    std::fs::write(&dir, b"not a table").unwrap();

    let a = s
        .call(
            "POST",
            "/api/v1/query",
            Some(&admin),
            Some(json!({"sql": "SELECT * FROM sales.products"})),
        )
        .await;
    problem(&a, 503);
    assert_eq!(a.body["code"], "unavailable", "{}", a.text);
    let retry = s
        .http
        .post(format!("{}/api/v1/query", s.url))
        .bearer_auth(&admin)
        .json(&json!({"sql": "SELECT * FROM sales.products"}))
        .send()
        .await
        .unwrap();
    assert!(retry.headers().contains_key("retry-after"));
    // Bad input stays a 4xx, other tables and the server keep working.
    problem(&s.sql(&admin, "SELECT * FROM sales.nosuch").await, 404);
    assert_eq!(
        s.count(&admin, "SELECT count(*) AS n FROM sales.stores")
            .await,
        2
    );
    still_serving(&s, &admin).await;

    // Back in place, the table answers again.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(dir.with_extension("moved"), &dir).unwrap();
    assert_eq!(
        s.count(&admin, "SELECT count(*) AS n FROM sales.products")
            .await,
        2
    );
}
