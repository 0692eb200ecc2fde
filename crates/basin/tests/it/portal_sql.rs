//! The SQL editor's backend over REST (cancel, history, completion, error positions, Parquet
//! downloads), on a server of its own: `sales.orders` (2,000 rows) that alice may read but for
//! its `region` column, `hr.salaries` that only the administrator sees, and bob, who sees nothing.

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Api, Server, problem};
use basin_testkit::browser::Browser;

pub(crate) struct Editor {
    pub(crate) basin: Basin,
    pub(crate) server: Server,
    pub(crate) admin: String,
    pub(crate) alice: String,
    pub(crate) bob: String,
}

static EDITOR: OnceCell<Editor> = OnceCell::const_new();

/// The module's server (started by the first test that asks) and a client for the calling test.
pub(crate) async fn editor() -> (&'static Editor, Api) {
    let e = EDITOR.get_or_init(Editor::start).await;
    (e, e.server.client())
}

/// Rows in sales.orders.
const ORDERS: usize = 2000;

impl Editor {
    async fn start() -> Editor {
        let basin = Basin::new();
        basin.ok(&["dataset", "create", "sales", "--layer", "prepared"]);
        basin.ok(&["dataset", "create", "hr", "--layer", "source"]);
        let mut csv = String::from("id,region,amount\n");
        for i in 0..ORDERS {
            csv.push_str(&format!("{i},{},{}.5\n", ["eu", "us"][i % 2], i % 100));
        }
        let orders = basin.file("orders.csv", &csv);
        basin.ok(&["ingest", "sales.orders", &orders]);
        let salaries = basin.file("salaries.csv", "name,salary\nAnn,5000\n");
        basin.ok(&["ingest", "hr.salaries", &salaries]);
        for user in ["alice", "bob"] {
            basin.create_user(user, &format!("{user}-password"), &[]);
        }
        basin.ok(&[
            "sql",
            "GRANT SELECT (id, amount) ON TABLE sales.orders TO alice",
        ]);
        // The module's tests run at once, several with queries that run for minutes until
        // cancelled: enough query slots that none waits for another test's (waiting for a
        // slot has a test of its own, on its own server), and more runtime threads than cores,
        // so that requests are answered while those queries keep every core busy.
        let jwks = basin.file("jwks.json", &basin_testkit::server::jwks().to_string());
        let mut command = basin_testkit::server::serve_command(
            &basin,
            &jwks,
            &[
                "--query-timeout-secs",
                "120",
                "--max-concurrent-queries",
                "16",
            ],
        );
        command
            .env("TOKIO_WORKER_THREADS", "8")
            .stderr(std::process::Stdio::null());
        let mut server = Server::spawn(command);
        server.kill_at_exit(Some(basin.dir.path().to_path_buf()));
        let admin = server.login("admin", ADMIN_PASSWORD).await;
        let alice = server.login("alice", "alice-password").await;
        let bob = server.login("bob", "bob-password").await;
        Editor {
            basin,
            server,
            admin,
            alice,
            bob,
        }
    }
}

/// A query that runs for minutes: a three-way cross join of the 2,000 orders.
const SLOW: &str =
    "SELECT sum(a.id * b.id + c.id) FROM sales.orders a, sales.orders b, sales.orders c";

/// Posts a query; returns the raw response.
pub(crate) async fn post_query(s: &Api, token: &str, body: Value) -> reqwest::Response {
    s.http
        .post(format!("{}/api/v1/query", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Cancels `id` as `token` once it runs (a query not running yet answers 404, like one that is
/// not the caller's).
async fn cancel_when_running(s: &Api, token: &str, id: &str) -> crate::server::Answer {
    for _ in 0..600 {
        let a = s
            .call(
                "DELETE",
                &format!("/api/v1/queries/{id}"),
                Some(token),
                None,
            )
            .await;
        if a.status != 404 {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("query {id} never showed up as running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_waiting_for_a_slot_is_cancelled_at_once() {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "sales", "--layer", "prepared"]);
    let ids: String = (0..ORDERS).map(|i| format!("{i}\n")).collect();
    let orders = basin.file("orders.csv", &format!("id\n{ids}"));
    basin.ok(&["ingest", "sales.orders", &orders]);
    let mut server = Server::start(&basin, &["--max-concurrent-queries", "1"]);
    server.kill_at_exit(Some(basin.dir.path().to_path_buf()));
    let (s, admin) = (server.client(), server.login("admin", ADMIN_PASSWORD).await);
    let slow = "SELECT sum(a.id * b.id + c.id) FROM sales.orders a, sales.orders b, sales.orders c";
    let post = |sql: &'static str, id: &'static str| {
        let (s, admin) = (server.client(), admin.clone());
        tokio::spawn(async move {
            Api::answer(post_query(&s, &admin, json!({"sql": sql, "query_id": id})).await).await
        })
    };
    let holder = post(slow, "holder");
    // The one slot is taken: a query that is not cancelled waits for it, then gets 503.
    let mut busy = post("SELECT 1 AS one", "probe").await.unwrap();
    for _ in 0..50 {
        if busy.status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        busy = post("SELECT 1 AS one", "probe").await.unwrap();
    }
    problem(&busy, 503);
    // One waiting for it ends as soon as it is cancelled, well before the 2 s wait runs out.
    let waiter = post("SELECT 1 AS one", "waiter");
    let a = cancel_when_running(&s, &admin, "waiter").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let answer = tokio::time::timeout(std::time::Duration::from_millis(1500), waiter)
        .await
        .expect("the cancelled query stops waiting at once")
        .unwrap();
    problem(&answer, 409);
    assert_eq!(
        answer.body["detail"], "query 'waiter' was cancelled by admin",
        "{}",
        answer.text
    );
    assert_eq!(cancel_when_running(&s, &admin, "holder").await.status, 200);
    holder.await.unwrap();
    // The query cancelled while waiting is audited like any cancelled query.
    let audit = s
        .call("GET", "/api/v1/audit?limit=1000", Some(&admin), None)
        .await;
    let events = audit.body["events"].as_array().unwrap();
    assert!(
        events.iter().any(|ev| ev["action"] == "query"
            && ev["target"] == "SELECT 1 AS one"
            && ev["outcome"] == "cancelled"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_query_is_cancelled_by_its_owner_or_an_admin_only() {
    let (e, s) = editor().await;
    let runner = {
        let s = e.server.client();
        let alice = e.alice.clone();
        tokio::spawn(async move {
            let r = post_query(&s, &alice, json!({"sql": SLOW, "query_id": "slow-1"})).await;
            Api::answer(r).await
        })
    };
    // Someone else's query answers like one that is not running.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let a = s
        .call("DELETE", "/api/v1/queries/slow-1", Some(&e.bob), None)
        .await;
    problem(&a, 404);
    assert!(!runner.is_finished(), "the slow query ended by itself");
    // Ids are each principal's own: bob's "slow-1" neither clashes with alice's nor reveals it.
    let r = post_query(
        &s,
        &e.bob,
        json!({"sql": "SELECT 1 AS one", "query_id": "slow-1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let a = cancel_when_running(&s, &e.alice, "slow-1").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({"id": "slow-1", "cancelled": true}));
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), runner)
        .await
        .expect("the cancelled query ends at once")
        .unwrap();
    problem(&answer, 409);
    assert_eq!(answer.body["code"], "cancelled", "{}", answer.text);
    assert_eq!(
        answer.body["detail"], "query 'slow-1' was cancelled by alice",
        "{}",
        answer.text
    );
    // Gone once ended.
    problem(
        &s.call("DELETE", "/api/v1/queries/slow-1", Some(&e.alice), None)
            .await,
        404,
    );
    // An administrator may cancel anyone's.
    let runner = {
        let s = e.server.client();
        let alice = e.alice.clone();
        tokio::spawn(async move {
            Api::answer(post_query(&s, &alice, json!({"sql": SLOW, "query_id": "slow-2"})).await)
                .await
        })
    };
    let a = cancel_when_running(&s, &e.admin, "slow-2").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let answer = runner.await.unwrap();
    assert_eq!(
        answer.body["detail"],
        "query 'slow-2' was cancelled by admin"
    );
    // Both cancels are audited, and the cancelled query itself too.
    let audit = s
        .call("GET", "/api/v1/audit?limit=100000", Some(&e.admin), None)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let events = audit.body["events"].as_array().unwrap();
    let cancels: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|ev| ev["action"] == "query.cancel")
        .map(|ev| {
            (
                ev["principal"].as_str().unwrap(),
                ev["target"].as_str().unwrap(),
                ev["outcome"].as_str().unwrap(),
            )
        })
        .filter(|(_, t, _)| t.starts_with("slow-"))
        .collect();
    assert!(
        cancels.contains(&("bob", "slow-1", "denied")),
        "{cancels:?}"
    );
    assert!(cancels.contains(&("alice", "slow-1", "ok")), "{cancels:?}");
    assert!(cancels.contains(&("admin", "slow-2", "ok")), "{cancels:?}");
    assert!(
        events
            .iter()
            .any(|ev| ev["action"] == "query" && ev["outcome"] == "cancelled"),
        "{}",
        audit.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_get_an_id_and_bad_ids_are_refused() {
    let (e, s) = editor().await;
    let r = post_query(&s, &e.alice, json!({"sql": "SELECT 1 AS one"})).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-query-id"].to_str().unwrap().to_string();
    assert!(
        id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let r = post_query(
        &s,
        &e.alice,
        json!({"sql": "SELECT 1", "query_id": "mine-7"}),
    )
    .await;
    assert_eq!(r.headers()["x-query-id"], "mine-7");
    let a = Api::answer(
        post_query(
            &s,
            &e.alice,
            json!({"sql": "SELECT 1", "query_id": "no spaces"}),
        )
        .await,
    )
    .await;
    problem(&a, 400);
    assert!(
        a.body["detail"].as_str().unwrap().contains("query_id"),
        "{}",
        a.text
    );
    let a = s
        .call(
            "DELETE",
            "/api/v1/queries/nothing-here",
            Some(&e.alice),
            None,
        )
        .await;
    problem(&a, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_shows_ones_own_statements_newest_first() {
    let (e, s) = editor().await;
    let ok = "SELECT id, 'history-marker-1' AS m FROM sales.orders WHERE id < 3";
    assert_eq!(s.rows(&e.alice, ok).await.len(), 3);
    let bad = "SELECT nope, 'history-marker-2' FROM sales.orders";
    problem(&s.sql(&e.alice, bad).await, 404);
    // Other tests run queries as alice at the same time: look at this test's two.
    let a = s
        .call(
            "GET",
            "/api/v1/queries/history?limit=50",
            Some(&e.alice),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let queries = a.body["queries"].as_array().unwrap();
    let at = |sql: &str| queries.iter().position(|q| q["sql"] == sql).unwrap();
    let (newer, older) = (&queries[at(bad)], &queries[at(ok)]);
    assert!(at(bad) < at(ok), "newest first: {}", a.text);
    assert_eq!(newer["outcome"], "denied");
    assert!(newer["error"].as_str().unwrap().contains("nope"));
    assert_eq!(
        (older["outcome"].as_str(), older["rows"].as_u64()),
        (Some("ok"), Some(3))
    );
    assert!(older["duration_ms"].is_u64() && older["error"].is_null());
    let started = older["started_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(started).is_ok(),
        "{started}"
    );
    let a = s
        .call(
            "GET",
            "/api/v1/queries/history?limit=1",
            Some(&e.alice),
            None,
        )
        .await;
    assert_eq!(a.body["queries"].as_array().unwrap().len(), 1, "{}", a.text);
    // Only one's own.
    let a = s
        .call(
            "GET",
            "/api/v1/queries/history?limit=500",
            Some(&e.bob),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains("history-marker"), "{}", a.text);
    problem(
        &s.call("GET", "/api/v1/queries/history?limit=0", Some(&e.bob), None)
            .await,
        400,
    );
    problem(
        &s.call(
            "GET",
            "/api/v1/queries/history?user=alice",
            Some(&e.bob),
            None,
        )
        .await,
        400,
    );
}

/// The labels of a completion.
async fn complete(s: &Api, token: &str, prefix: &str, context: &str) -> Vec<String> {
    let r = s
        .http
        .get(format!("{}/api/v1/completion", s.url))
        .bearer_auth(token)
        .query(&[("prefix", prefix), ("context", context)])
        .send()
        .await
        .unwrap();
    let a = Api::answer(r).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_offers_only_what_the_viewer_may_see() {
    let (e, s) = editor().await;
    assert!(
        complete(&s, &e.alice, "sel", "")
            .await
            .contains(&"SELECT".to_string())
    );
    assert_eq!(complete(&s, &e.alice, "sa", "").await, vec!["sales"]);
    assert_eq!(complete(&s, &e.alice, "sales.", "").await, vec!["orders"]);
    assert_eq!(
        complete(&s, &e.alice, "main.sales.o", "").await,
        vec!["orders"]
    );
    assert_eq!(
        complete(&s, &e.alice, "sales.orders.", "").await,
        vec!["id", "amount"]
    );
    assert_eq!(
        complete(&s, &e.alice, "o.", "SELECT o. FROM sales.orders o WHERE").await,
        vec!["id", "amount"]
    );
    assert_eq!(
        complete(&s, &e.alice, "am", "SELECT am FROM sales.orders").await,
        vec!["amount"]
    );
    assert_eq!(complete(&s, &e.alice, "ma", "").await, vec!["MAX", "main"]);
    // Hidden: the region column, the hr dataset and its table.
    let names = |found: Vec<String>| -> Vec<String> {
        found
            .into_iter()
            .filter(|l| l.chars().any(|c| c.is_ascii_lowercase()))
            .collect()
    };
    assert!(
        complete(&s, &e.alice, "re", "SELECT re FROM sales.orders")
            .await
            .is_empty()
    );
    assert!(names(complete(&s, &e.alice, "h", "").await).is_empty());
    assert!(complete(&s, &e.alice, "hr.", "").await.is_empty());
    assert!(complete(&s, &e.alice, "hr.salaries.", "").await.is_empty());
    // bob sees nothing at all (SQL keywords aside); the administrator everything.
    for prefix in ["", "s", "sales.", "sales.orders.", "m", "h", "hr."] {
        let found = complete(&s, &e.bob, prefix, "SELECT * FROM sales.orders").await;
        assert!(names(found.clone()).is_empty(), "{prefix}: {found:?}");
    }
    assert_eq!(complete(&s, &e.admin, "hr.", "").await, vec!["salaries"]);
    assert_eq!(
        complete(&s, &e.admin, "sales.orders.", "").await,
        vec!["id", "region", "amount"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_errors_say_where_they_are() {
    let (e, s) = editor().await;
    let position = |a: &crate::server::Answer| {
        (
            a.body["position"]["line"].as_u64(),
            a.body["position"]["column"].as_u64(),
        )
    };
    let a = s
        .sql(&e.alice, "SELECT id FROM\n  sales.orders ORDER id")
        .await;
    problem(&a, 400);
    assert_eq!(position(&a), (Some(2), Some(16)), "{}", a.text);
    let a = s
        .sql(&e.alice, "SELECT id,\n  nope FROM sales.orders")
        .await;
    problem(&a, 404);
    assert_eq!(position(&a), (Some(2), Some(3)), "{}", a.text);
    // A hidden column answers like a missing one, in the same place.
    let a = s
        .sql(&e.alice, "SELECT id,\n  region FROM sales.orders")
        .await;
    problem(&a, 404);
    assert_eq!(position(&a), (Some(2), Some(3)), "{}", a.text);
    assert!(!a.text.contains("region'?"), "{}", a.text);
    // A hidden table answers like a missing one, in the same place, without suggestions.
    let hidden = s.sql(&e.bob, "SELECT *\nFROM   hr.salaries").await;
    let missing = s.sql(&e.bob, "SELECT *\nFROM   hr.salariez").await;
    for a in [&hidden, &missing] {
        problem(a, 404);
        assert_eq!(position(a), (Some(2), Some(8)), "{}", a.text);
        assert!(!a.text.contains("did you mean"), "{}", a.text);
    }
    assert_eq!(
        hidden.text.replace("salaries", "X"),
        missing.text.replace("salariez", "X")
    );
    // No position where none is known.
    let a = s.sql(&e.alice, "SELECT 1/0").await;
    assert!(a.body.get("position").is_none(), "{}", a.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn results_download_as_parquet_and_csv_files() {
    let (e, s) = editor().await;
    let r = post_query(
        &s,
        &e.alice,
        json!({"sql": "SELECT * FROM sales.orders ORDER BY id", "format": "parquet", "query_id": "dl-1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"query-dl-1.parquet\""
    );
    let bytes = r.bytes().await.unwrap();
    let file = e.basin.file("download.parquet", "");
    std::fs::write(&file, &bytes).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "amount"], "the hidden column stays hidden");
    let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, ORDERS);
    let last = batches.last().unwrap();
    let ids = last
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!(ids.value(ids.len() - 1), ORDERS as i64 - 1);
    // Bounded like every answer.
    let r = post_query(
        &s,
        &e.alice,
        json!({"sql": "SELECT id FROM sales.orders", "format": "parquet", "limit": 7}),
    )
    .await;
    let bytes = r.bytes().await.unwrap();
    let file = e.basin.file("limited.parquet", "");
    std::fs::write(&file, &bytes).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 7);
    // CSV comes as a file too.
    let r = post_query(
        &s,
        &e.alice,
        json!({"sql": "SELECT id FROM sales.orders WHERE id < 2 ORDER BY id", "format": "csv", "query_id": "dl-2"}),
    )
    .await;
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"query-dl-2.csv\""
    );
    assert_eq!(r.text().await.unwrap(), "id\n0\n1\n");
    problem(
        &Api::answer(post_query(&s, &e.alice, json!({"sql": "SELECT 1", "format": "xlsx"})).await)
            .await,
        400,
    );
}

// ---- in a real browser -------------------------------------------------------------------------

/// A browser for `test` on the module's server (the WebDriver client needs a TLS provider).
async fn browser(e: &Editor, test: &str) -> Browser {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Browser::start(&e.server.url, test).await
}

/// Signs in through the form and waits for the next page (the harness's `sign_in` reads the
/// path at once, which a busy machine has not left yet).
async fn sign_in(b: &Browser, user: &str, password: &str) {
    b.open("/signin", &format!("signin-{user}")).await;
    b.fill("#user", user).await;
    b.fill("#password", password).await;
    b.press("form[action='/signin'] button[type=submit]").await;
    wait_path(b, |p| !p.starts_with("/signin")).await;
}

/// Signs out through the user menu and waits for the sign-in page.
async fn sign_out(b: &Browser) {
    b.press("details.user summary").await;
    b.press("form[action='/signout'] button").await;
    wait_path(b, |p| p.starts_with("/signin")).await;
}

async fn wait_path(b: &Browser, ok: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let path = b.path().await;
        if ok(&path) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at {path}: {}",
            b.text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits (at most 30 s) until the page's text holds `needle`; returns the text.
async fn wait_text(b: &Browser, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = b.text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "'{needle}' never showed on {}: {text}",
            b.path().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs JavaScript in the page (an async body whose value is returned).
async fn js(b: &Browser, body: &str) -> Value {
    b.client
        .execute_async(
            &format!("const done = arguments[arguments.length - 1]; (async () => {{ {body} }})().then(done, e => done('error: ' + e));"),
            vec![],
        )
        .await
        .expect("the script runs")
}

/// The editor's suggestions now.
async fn suggestions(b: &Browser) -> Vec<String> {
    match js(
        b,
        "return [...document.querySelectorAll('#completions button')].map(x => x.textContent);",
    )
    .await
    {
        Value::Array(v) => v
            .into_iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_runs_pages_completes_downloads_and_cancels_a_query() {
    let (e, _) = editor().await;
    let b = browser(e, "sql-editor").await;
    sign_in(&b, "alice", "alice-password").await;
    b.open("/sql", "editor").await;
    // Completion of what alice may see.
    b.fill("#sql", "SELECT * FROM sales.").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while suggestions(&b).await != ["orders"] {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            suggestions(&b).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.screenshot("completion").await;
    b.press("#completions button").await;
    let text = js(&b, "return document.getElementById('sql').value;").await;
    assert_eq!(text, "SELECT * FROM sales.orders");
    // Run, page through.
    b.fill("#sql", "SELECT id, amount FROM sales.orders ORDER BY id")
        .await;
    b.press("#run").await;
    wait_text(&b, "Rows 1–50").await;
    b.screenshot("result").await;
    b.press("#next").await;
    let text = wait_text(&b, "Rows 51–100").await;
    assert!(
        text.contains("\n50\t") || text.contains("50\t0.5") || text.contains("50"),
        "{text}"
    );
    b.press("#prev").await;
    wait_text(&b, "Rows 1–50").await;
    // Download the current query as CSV and Parquet (the page's own form, with its CSRF token).
    let csv = js(&b, "const f = new FormData(document.getElementById('sql-form')); f.set('format', 'csv'); const r = await fetch('/sql/download', {method: 'POST', body: new URLSearchParams(f)}); return [r.status, r.headers.get('content-disposition'), (await r.text()).split('\\n').length];").await;
    assert_eq!(csv[0], 200, "{csv}");
    assert!(
        csv[1]
            .as_str()
            .unwrap()
            .starts_with("attachment; filename=\"query-"),
        "{csv}"
    );
    assert!(csv[1].as_str().unwrap().ends_with(".csv\""), "{csv}");
    assert_eq!(
        csv[2],
        ORDERS as u64 + 2,
        "header, rows and the last newline: {csv}"
    );
    let parquet = js(&b, "const f = new FormData(document.getElementById('sql-form')); f.set('format', 'parquet'); const r = await fetch('/sql/download', {method: 'POST', body: new URLSearchParams(f)}); const bytes = new Uint8Array(await r.arrayBuffer()); return [r.status, String.fromCharCode(...bytes.slice(0, 4)), String.fromCharCode(...bytes.slice(-4))];").await;
    assert_eq!(parquet, json!([200, "PAR1", "PAR1"]));
    // Without the CSRF token, nothing is downloaded.
    let refused = js(&b, "const r = await fetch('/sql/download', {method: 'POST', body: new URLSearchParams({sql: 'SELECT 1', format: 'csv'})}); return r.status;").await;
    assert_eq!(refused, 403);
    // An error with its position marked.
    b.fill("#sql", "SELECT id,\n  nope FROM sales.orders").await;
    b.press("#run").await;
    wait_text(&b, "column 'nope' not found").await;
    assert!(
        wait_text(&b, "Line 2, column 3")
            .await
            .contains("Line 2, column 3")
    );
    let marked = js(
        &b,
        "return document.querySelector('#sql-error mark').textContent;",
    )
    .await;
    assert_eq!(marked, "nope");
    b.screenshot("error").await;
    // Cancel a query that would run for minutes.
    b.fill("#sql", SLOW).await;
    b.press("#run").await;
    wait_text(&b, "Running").await;
    // The query may not be registered yet on a busy machine: cancel until it is.
    // (Under heavy load the page may miss the run's answer; the history below is the proof.)
    for _ in 0..100 {
        b.press("#cancel").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if b.text().await.contains("was cancelled by alice") {
            break;
        }
    }
    b.screenshot("cancelled").await;
    // The history holds the queries, the slow one cancelled; a click loads one into the editor.
    b.open("/sql", "history").await;
    let text = b.text().await;
    let slow = SLOW.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.lines()
            .any(|l| l.contains(slow.as_str()) && l.contains("cancelled")),
        "{text}"
    );
    assert!(
        text.contains("SELECT id, amount FROM sales.orders ORDER BY id"),
        "{text}"
    );
    assert!(text.contains("cancelled"), "{text}");
    // Other tests of this module query as alice too (one also selects `nope`): the entry is
    // found by its own text.
    let clicked = js(&b, "const a = [...document.querySelectorAll('#history li a')].find(a => a.textContent.includes('id,') && a.textContent.includes('nope')); if (!a) return 'missing'; a.click(); return 'clicked';").await;
    assert_eq!(clicked, "clicked", "{text}");
    let loaded = js(&b, "return document.getElementById('sql').value;").await;
    assert_eq!(loaded, "SELECT id,\n  nope FROM sales.orders");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_admin_creates_a_user_and_a_grant_that_then_works() {
    let (e, _) = editor().await;
    let b = browser(e, "sql-admin").await;
    sign_in(&b, "admin", ADMIN_PASSWORD).await;
    b.open("/admin", "admin").await;
    b.open("/admin/users", "users").await;
    b.fill("#f-name", "dave").await;
    b.fill("#f-password", "dave-password-1").await;
    b.press("form.admin button").await;
    wait_text(&b, "User 'dave' created.").await;
    b.screenshot("user-created").await;
    // An error is shown inline, and changes nothing.
    b.fill("#f-name", "dave").await;
    b.press("form.admin button").await;
    wait_text(&b, "already exists").await;
    b.open("/admin/grants", "grants").await;
    b.fill("#f-object", "table main.sales.orders").await;
    b.fill("#f-columns", "id").await;
    b.fill("#f-grantee", "dave").await;
    b.press("form.admin button").await;
    wait_text(&b, "Granted SELECT on table main.sales.orders to 'dave'.").await;
    b.screenshot("granted").await;
    sign_out(&b).await;
    sign_in(&b, "dave", "dave-password-1").await;
    b.open("/sql", "dave-editor").await;
    b.fill("#sql", "SELECT * FROM sales.orders ORDER BY id LIMIT 3")
        .await;
    b.press("#run").await;
    let text = wait_text(&b, "Rows 1–3").await;
    assert!(!text.contains("amount"), "only the granted column: {text}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_user_without_access_sees_no_hidden_names() {
    let (e, _) = editor().await;
    let b = browser(e, "sql-no-access").await;
    sign_in(&b, "bob", "bob-password").await;
    b.open("/sql", "editor").await;
    for typed in [
        "SELECT * FROM sales.",
        "SELECT * FROM hr.",
        "SELECT * FROM sales.orders o WHERE o.",
        "SELECT * FROM h",
    ] {
        b.fill("#sql", typed).await;
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let found = suggestions(&b).await;
        assert!(
            found
                .iter()
                .all(|s| !s.chars().any(|c| c.is_ascii_lowercase())),
            "{typed}: {found:?}"
        );
    }
    let mut answers = Vec::new();
    for table in ["salaries", "salariez"] {
        b.fill("#sql", &format!("SELECT * FROM hr.{table}")).await;
        b.press("#run").await;
        let text = wait_text(&b, &format!("'main.hr.{table}' not found")).await;
        assert!(!text.contains("did you mean"), "{text}");
        answers.push(
            js(
                &b,
                "return document.getElementById('sql-error').textContent;",
            )
            .await,
        );
    }
    b.screenshot("hidden").await;
    assert_eq!(
        answers[0].as_str().unwrap().replace("salaries", "X"),
        answers[1].as_str().unwrap().replace("salariez", "X")
    );
    b.close().await;
}
