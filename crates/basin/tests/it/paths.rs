//! End-to-end: governance holds on every path — the findings of the security review (issue 8),
//! each shown closed against the real `basin` binary, over REST and through the CLI. Every test
//! has its own data dir (and server, if it needs one); the SQL-level twins of these tests are in
//! `crates/basin-sql/tests/it/paths.rs`.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{
    ADMIN_PASSWORD, Api, CUSTOMER_EMAILS, Server, clear_pii_on_disk, problem, walk,
};

/// The password the tests give user `name`.
fn password(name: &str) -> String {
    format!("{name}-password")
}

/// `basin user create NAME [--role R]…` (as the CLI's administrator), password from
/// BASIN_PASSWORD.
fn create_user(basin: &Basin, name: &str, roles: &[&str]) {
    let mut command = basin.command();
    command.args(["user", "create", name]);
    for role in roles {
        command.args(["--role", role]);
    }
    let out = command
        .env("BASIN_PASSWORD", password(name))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "user create {name}: {}",
        text(&out.stderr)
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `basin --as USER ARGS…`.
fn run_as(basin: &Basin, user: &str, args: &[&str]) -> Output {
    basin
        .command()
        .args(["--as", user])
        .args(args)
        .output()
        .expect("the basin binary runs")
}

/// `basin --as USER ARGS…`, which must succeed.
fn ok_as(basin: &Basin, user: &str, args: &[&str]) {
    let out = run_as(basin, user, args);
    assert!(
        out.status.success(),
        "basin --as {user} {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `basin --as USER ARGS…`, which must fail; its stderr.
fn fails_as(basin: &Basin, user: &str, args: &[&str]) -> String {
    let out = run_as(basin, user, args);
    assert!(
        !out.status.success(),
        "basin --as {user} {args:?} should have failed: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// A fresh data dir with `datasets`, its server, and the administrator's token.
async fn start(datasets: &[&str]) -> (Basin, Server, String) {
    let basin = Basin::new();
    for d in datasets {
        basin.ok(&["dataset", "create", d, "--layer", "source"]);
    }
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    (basin, s, admin)
}

/// Runs SQL over REST; it must succeed.
async fn sql_ok(s: &Api, token: &str, sql: &str) {
    let a = s.sql(token, sql).await;
    assert_eq!(a.status, 200, "{sql}: {}", a.text);
}

/// The audit log, oldest first (GET /api/v1/audit as the administrator).
async fn audit(s: &Api, admin: &str) -> Vec<Value> {
    let a = s
        .call("GET", "/api/v1/audit?limit=100000", Some(admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["events"].as_array().unwrap().clone()
}

/// The successful writes (`create` and `commit` rows) on `target` in an audit log, as
/// (action, principal, source).
fn writes_on(events: &[Value], target: &str) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| {
            e["target"] == target
                && e["outcome"] == "ok"
                && (e["action"] == "commit" || e["action"] == "create")
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["principal"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn w(action: &str, principal: &str, source: &str) -> (String, String, String) {
    (action.into(), principal.into(), source.into())
}

/// Which of `needles` a data file (the Delta log aside) of `main.sales` holds in clear: the
/// probe of [`clear_pii_on_disk`], for other values.
fn clear_on_disk(basin: &Basin, needles: &[&str]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in walk(&basin.data_dir().join("hubs/main/sales")) {
        if file.to_string_lossy().contains("_delta_log") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.insert(needle.to_string());
            }
        }
    }
    found
}

/// The values of column `column` in SQL rows.
fn column(rows: &[Value], column: &str) -> Vec<Value> {
    rows.iter().map(|r| r[column].clone()).collect()
}

/// Follows a listing's `next_page_token` from its first page until the token is absent; the
/// names of every item (under `key`) and the number of pages.
async fn walk_listing(
    s: &Api,
    token: &str,
    path: &str,
    key: &str,
    size: usize,
) -> (Vec<String>, usize) {
    let (mut names, mut pages) = (Vec::new(), 0);
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            None => format!("{path}?page_size={size}"),
            Some(t) => format!("{path}?page_size={size}&page_token={t}"),
        };
        let a = s.call("GET", &url, Some(token), None).await;
        assert_eq!(a.status, 200, "{url}: {}", a.text);
        let items = a.body[key].as_array().unwrap();
        assert!(items.len() <= size, "{url}: {} items", items.len());
        names.extend(
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string()),
        );
        pages += 1;
        assert!(pages < 1000, "{path}: the listing never ends");
        match a.body.get("next_page_token") {
            Some(Value::String(t)) => next = Some(t.clone()),
            None | Some(Value::Null) => break,
            Some(other) => panic!("{url}: next_page_token is {other}"),
        }
    }
    (names, pages)
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_analyze_cannot_write_over_rest() {
    let (basin, s, admin) = start(&["crm"]).await;
    sql_ok(
        &s,
        &admin,
        "CREATE TABLE crm.customers (id BIGINT, name VARCHAR)",
    )
    .await;
    sql_ok(
        &s,
        &admin,
        "INSERT INTO crm.customers VALUES (1, 'Ada'), (2, 'Grace')",
    )
    .await;
    create_user(&basin, "reader", &[]);
    sql_ok(&s, &admin, "GRANT SELECT ON TABLE crm.customers TO reader").await;
    let reader = s.login("reader", &password("reader")).await;

    const ROWS: &str = "SELECT id, name FROM crm.customers ORDER BY id";
    let before = s.rows(&admin, ROWS).await;
    let version = s.table_version(&admin, "crm.customers").await;
    let commits = writes_on(&audit(&s, &admin).await, "main.crm.customers").len();
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO crm.customers VALUES (9, 'Mallory')",
        "EXPLAIN ANALYZE INSERT OVERWRITE crm.customers SELECT 9, 'Mallory'",
    ] {
        for (who, token) in [("reader", &reader), ("admin", &admin)] {
            let a = problem(&s.sql(token, sql).await, 400).body.clone();
            let detail = a["detail"].as_str().unwrap();
            assert!(
                detail.contains("EXPLAIN works on queries"),
                "{who}: {sql}: {a}"
            );
        }
    }
    assert_eq!(s.rows(&admin, ROWS).await, before, "the rows changed");
    assert_eq!(s.table_version(&admin, "crm.customers").await, version);
    let events = audit(&s, &admin).await;
    assert_eq!(
        writes_on(&events, "main.crm.customers").len(),
        commits,
        "a write was committed: {:?}",
        writes_on(&events, "main.crm.customers")
    );
    assert!(
        !events.iter().any(|e| e["principal"] == "reader"
            && e["outcome"] == "ok"
            && (e["action"] == "commit" || e["action"] == "create")),
        "reader committed a write"
    );
    // EXPLAIN of a query still works for the reader.
    let explain = s.sql(&reader, "EXPLAIN SELECT * FROM crm.customers").await;
    assert_eq!(explain.status, 200, "{}", explain.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_and_missing_answer_alike() {
    let (basin, s, admin) = start(&["crm", "sales"]).await;
    sql_ok(
        &s,
        &admin,
        "CREATE TABLE crm.customers (id BIGINT, name VARCHAR)",
    )
    .await;
    sql_ok(&s, &admin, "CREATE TABLE crm.contracts (id BIGINT)").await;
    sql_ok(&s, &admin, "CREATE TABLE sales.orders (id BIGINT)").await;
    create_user(&basin, "outsider", &[]);
    create_user(&basin, "creator", &[]);
    sql_ok(&s, &admin, "GRANT SELECT ON TABLE sales.orders TO outsider").await;
    basin.ok(&["grant", "CREATE", "ON", "DATASET", "crm", "TO", "creator"]);
    let outsider = s.login("outsider", &password("outsider")).await;
    let creator = s.login("creator", &password("creator")).await;

    // An upload to a hidden table and to a missing one, in the same dataset.
    let hidden = s.upload_csv(&outsider, "crm.customers", "id\n1\n").await;
    let missing = s.upload_csv(&outsider, "crm.nothing_here", "id\n1\n").await;
    assert_eq!(
        hidden.status, missing.status,
        "{} / {}",
        hidden.text, missing.text
    );
    assert!(
        [403, 404].contains(&hidden.status),
        "an upload to a hidden table is refused: {}",
        hidden.text
    );
    problem(&hidden, hidden.status);
    assert_eq!(hidden.body["code"], missing.body["code"]);
    assert_eq!(
        hidden.text.replace("customers", "T"),
        missing.text.replace("nothing_here", "T")
    );

    // CREATE TABLE on the hidden name and on a missing one, with and without IF NOT EXISTS.
    for if_not_exists in ["", "IF NOT EXISTS "] {
        let hidden = s
            .sql(
                &outsider,
                &format!("CREATE TABLE {if_not_exists}crm.customers (x INT)"),
            )
            .await;
        let missing = s
            .sql(
                &outsider,
                &format!("CREATE TABLE {if_not_exists}crm.nothing_here (x INT)"),
            )
            .await;
        assert_eq!(
            hidden.status, missing.status,
            "{} / {}",
            hidden.text, missing.text
        );
        assert_ne!(hidden.status, 409, "{if_not_exists}: {}", hidden.text);
        assert_ne!(hidden.status, 200, "{if_not_exists}: {}", hidden.text);
        problem(&hidden, hidden.status);
        assert_eq!(hidden.body["code"], missing.body["code"]);
        assert!(!hidden.text.contains("already exists"), "{}", hidden.text);
        assert_eq!(
            hidden.text.replace("customers", "T"),
            missing.text.replace("nothing_here", "T")
        );
    }
    // Nothing was created by the refused statements.
    let names = s
        .rows(
            &admin,
            "SELECT name FROM system.tables WHERE dataset = 'crm' ORDER BY name",
        )
        .await;
    assert_eq!(
        column(&names, "name"),
        [json!("contracts"), json!("customers")]
    );

    // CREATE on the dataset shows none of its tables.
    let listed = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/crm/tables",
            Some(&creator),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["tables"], json!([]), "{}", listed.text);
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs/main/datasets/crm/tables/customers",
            Some(&creator),
            None,
        )
        .await,
        404,
    );
    problem(&s.sql(&creator, "SELECT * FROM crm.customers").await, 404);
    // It creates a table, which it owns: it may write and read it.
    sql_ok(&s, &creator, "CREATE TABLE crm.mine (x INT)").await;
    sql_ok(&s, &creator, "INSERT INTO crm.mine VALUES (1)").await;
    assert_eq!(
        column(&s.rows(&creator, "SELECT x FROM crm.mine").await, "x"),
        [json!(1)]
    );
    let listed = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/crm/tables",
            Some(&creator),
            None,
        )
        .await;
    let names: Vec<&str> = listed.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"], "{}", listed.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_details_follow_the_policy() {
    let (basin, s, admin) = start(&["sales"]).await;
    sql_ok(
        &s,
        &admin,
        "CREATE TABLE sales.orders (order_id BIGINT, customer_id BIGINT, amount DOUBLE)",
    )
    .await;
    sql_ok(
        &s,
        &admin,
        "INSERT INTO sales.orders VALUES (1, 4242, 5.5), (2, 7, 7.0), (3, 8, 1.0)",
    )
    .await;
    sql_ok(
        &s,
        &admin,
        "DELETE FROM sales.orders WHERE customer_id = 4242",
    )
    .await;
    create_user(&basin, "analyst", &[]);
    sql_ok(
        &s,
        &admin,
        "GRANT SELECT (order_id, amount) ON TABLE sales.orders TO analyst",
    )
    .await;
    let analyst = s.login("analyst", &password("analyst")).await;
    const HISTORY: &str = "/api/v1/hubs/main/datasets/sales/tables/orders/history";

    let seen = s.call("GET", HISTORY, Some(&analyst), None).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    let commits = seen.body["history"].as_array().unwrap();
    assert!(commits.len() >= 3, "{}", seen.text);
    for c in commits {
        let p = c["parameters"].as_str().unwrap();
        assert!(
            p.contains("redacted") && !p.contains("4242") && !p.contains("customer_id"),
            "the analyst sees a commit's parameters: {c}"
        );
    }
    let full = s.call("GET", HISTORY, Some(&admin), None).await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert!(
        full.body["history"].as_array().unwrap().iter().any(|c| {
            let p = c["parameters"].as_str().unwrap();
            p.contains("4242") && p.contains("customer_id")
        }),
        "the admin sees the predicate: {}",
        full.text
    );

    // Storage paths: for administrators only.
    let root = basin.dir.path().display().to_string();
    for path in [
        "/api/v1/hubs",
        "/api/v1/hubs/main/datasets",
        "/api/v1/hubs/main/datasets/sales/tables",
        "/api/v1/hubs/main/datasets/sales/tables/orders",
    ] {
        let a = s.call("GET", path, Some(&analyst), None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(
            !a.text.contains(&root) && !a.text.contains("file://"),
            "{path} shows a storage path: {}",
            a.text
        );
    }
    for (sql, key) in [
        (
            "SELECT storage_root FROM system.hubs WHERE name = 'main'",
            "storage_root",
        ),
        (
            "SELECT location FROM system.tables WHERE hub = 'main' AND dataset = 'sales' AND name = 'orders'",
            "location",
        ),
    ] {
        let hidden = s.rows(&analyst, sql).await;
        assert_eq!(hidden.len(), 1, "{sql}: {hidden:?}");
        assert!(
            hidden[0][key].is_null() || hidden[0][key] == "",
            "{sql}: the analyst sees {}",
            hidden[0][key]
        );
        let shown = s.rows(&admin, sql).await;
        assert!(
            shown[0][key].as_str().is_some_and(|p| p.contains(&root)),
            "{sql}: the admin sees {}",
            shown[0][key]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_write_path_from_every_surface() {
    // The tables live in `sales`, where `clear_pii_on_disk` looks for the customer emails:
    // the values written before the email columns become PII are other ones.
    let (basin, s, admin) = start(&["sales"]).await;
    basin.ok(&["role", "create", "writers"]);
    create_user(&basin, "writer", &["writers"]);
    basin.ok(&["grant", "CREATE", "ON", "DATASET", "sales", "TO", "writers"]);
    let writer = s.login("writer", &password("writer")).await;
    const REST: &str = "127.0.0.1";

    // SQL over REST.
    sql_ok(
        &s,
        &writer,
        "CREATE TABLE sales.via_sql AS SELECT 1 AS id, 'first-sql@shop.test' AS email",
    )
    .await;
    sql_ok(
        &s,
        &writer,
        "INSERT INTO sales.via_sql VALUES (2, 'second-sql@shop.test')",
    )
    .await;
    // Uploads: the first creates the table.
    for csv in [
        "id,email\n1,first-upload@shop.test\n",
        "id,email\n2,second-upload@shop.test\n",
    ] {
        let a = s.upload_csv(&writer, "sales.via_upload", csv).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // The CLI, as the catalog user.
    let first = basin.file("first.csv", "id,email\n1,first-cli@shop.test\n");
    ok_as(&basin, "writer", &["ingest", "sales.via_cli", &first]);
    ok_as(
        &basin,
        "writer",
        &[
            "sql",
            "INSERT INTO sales.via_cli VALUES (2, 'second-cli@shop.test')",
        ],
    );

    let tables = ["via_sql", "via_upload", "via_cli"];
    let events = audit(&s, &admin).await;
    for (table, source) in [("via_sql", REST), ("via_upload", REST), ("via_cli", "cli")] {
        assert_eq!(
            writes_on(&events, &format!("main.sales.{table}")),
            [w("create", "writer", source), w("commit", "writer", source)],
            "{table}"
        );
    }
    // Each creator owns its table, whatever the surface.
    let grants = s.call("GET", "/api/v1/grants", Some(&admin), None).await;
    assert_eq!(grants.status, 200, "{}", grants.text);
    for table in tables {
        let on: BTreeSet<(String, String, Option<String>)> = grants.body["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["object"] == format!("table main.sales.{table}"))
            .map(|g| {
                (
                    g["grantee"].as_str().unwrap().to_string(),
                    g["privilege"].as_str().unwrap().to_string(),
                    g["column"].as_str().map(str::to_string),
                )
            })
            .collect();
        let owner: BTreeSet<(String, String, Option<String>)> = ["MANAGE", "MODIFY", "SELECT"]
            .iter()
            .map(|p| ("writer".to_string(), p.to_string(), None))
            .collect();
        assert_eq!(on, owner, "{table}: {}", grants.text);
    }

    // Before the email columns are PII, their values are on disk in clear, where the probe
    // finds them.
    let before = [
        "second-sql@shop.test",
        "second-upload@shop.test",
        "second-cli@shop.test",
    ];
    assert_eq!(
        clear_on_disk(&basin, &before),
        before.iter().map(|s| s.to_string()).collect()
    );

    // The administrator makes the email columns PII.
    for table in tables {
        let a = s
            .call(
                "PUT",
                "/api/v1/tags",
                Some(&admin),
                Some(json!({"object": format!("table main.sales.{table}"), "column": "email", "tags": ["pii"]})),
            )
            .await;
        assert_eq!(a.status, 200, "{table}: {}", a.text);
        assert!(a.body["encrypted_version"].is_i64(), "{}", a.text);
    }
    let [ann, bob, cem, dan] = CUSTOMER_EMAILS;
    let upload_csv = format!("id,email\n3,{bob}\n");
    let insert_sql = format!("INSERT INTO sales.via_sql VALUES (3, '{ann}')");
    let insert_cli = format!("INSERT INTO sales.via_cli VALUES (3, '{cem}')");
    let ingest_cli = basin.file("next.csv", &format!("id,email\n4,{dan}\n"));

    // The owner has MODIFY but not UNMASK: it may not write the PII column, on any surface.
    // A refused load is refused the same way every time (a load streams its file while the
    // write path decides: the refusal, not the stream it stopped, is the answer).
    let refused = problem(&s.sql(&writer, &insert_sql).await, 403)
        .text
        .clone();
    assert!(refused.contains("personal data"), "{refused}");
    let refused = fails_as(&basin, "writer", &["sql", &insert_cli]);
    assert!(refused.contains("personal data"), "{refused}");
    for attempt in 1..=5 {
        let a = s
            .upload_csv(&writer, "sales.via_upload", upload_csv.clone())
            .await;
        problem(&a, 403);
        assert!(
            a.text.contains("personal data"),
            "upload {attempt}: {}",
            a.text
        );
        let refused = fails_as(&basin, "writer", &["ingest", "sales.via_cli", &ingest_cli]);
        assert!(
            refused.contains("personal data"),
            "ingest {attempt}: {refused}"
        );
    }

    // With UNMASK (from the administrator) it may; the values are encrypted on their way in.
    for table in tables {
        let a = s
            .call(
                "POST",
                "/api/v1/grants",
                Some(&admin),
                Some(json!({"privilege": "UNMASK", "object": format!("table main.sales.{table}"), "grantee": "writer"})),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    sql_ok(&s, &writer, &insert_sql).await;
    let a = s.upload_csv(&writer, "sales.via_upload", upload_csv).await;
    assert_eq!(a.status, 200, "{}", a.text);
    ok_as(&basin, "writer", &["sql", &insert_cli]);
    ok_as(&basin, "writer", &["ingest", "sales.via_cli", &ingest_cli]);

    let clear = clear_pii_on_disk(&basin);
    assert!(clear.is_empty(), "clear PII on disk: {clear:?}");
    for (table, id, email) in [
        ("via_sql", 3, ann),
        ("via_upload", 3, bob),
        ("via_cli", 3, cem),
        ("via_cli", 4, dan),
    ] {
        let rows = s
            .rows(
                &admin,
                &format!("SELECT email FROM sales.{table} WHERE id = {id}"),
            )
            .await;
        assert_eq!(column(&rows, "email"), [json!(email)], "{table}");
    }
    // One audit row per write, in the writer's name; the encryption is the administrator's.
    let events = audit(&s, &admin).await;
    assert_eq!(
        writes_on(&events, "main.sales.via_sql"),
        [
            w("create", "writer", REST),
            w("commit", "writer", REST),
            w("commit", "admin", REST),
            w("commit", "writer", REST),
        ]
    );
    assert_eq!(
        writes_on(&events, "main.sales.via_upload"),
        [
            w("create", "writer", REST),
            w("commit", "writer", REST),
            w("commit", "admin", REST),
            w("commit", "writer", REST),
        ]
    );
    assert_eq!(
        writes_on(&events, "main.sales.via_cli"),
        [
            w("create", "writer", "cli"),
            w("commit", "writer", "cli"),
            w("commit", "admin", REST),
            w("commit", "writer", "cli"),
            w("commit", "writer", "cli"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_reveal_pii() {
    let (basin, s, admin) = start(&["shop"]).await;
    create_user(&basin, "owner", &[]);
    basin.ok(&["grant", "CREATE", "ON", "DATASET", "shop", "TO", "owner"]);
    let owner = s.login("owner", &password("owner")).await;
    sql_ok(
        &s,
        &owner,
        "CREATE TABLE shop.people (id BIGINT, email VARCHAR, phone VARCHAR)",
    )
    .await;
    const TABLE: &str = "/api/v1/hubs/main/datasets/shop/tables/people";
    let details = s.call("GET", TABLE, Some(&owner), None).await;
    assert_eq!(details.status, 200, "{}", details.text);
    assert!(
        details.body["privileges"]
            .as_array()
            .unwrap()
            .contains(&json!("MANAGE")),
        "{}",
        details.text
    );
    let tag = |column: &str, tags: &[&str]| json!({"object": "table main.shop.people", "column": column, "tags": tags});
    let a = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(&admin),
            Some(tag("phone", &["pii"])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The owner manages its table: a tag that is not about personal data is its call.
    let a = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(&owner),
            Some(tag("email", &["contact"])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let unmask =
        json!({"privilege": "UNMASK", "object": "table main.shop.people", "grantee": "owner"});
    let mask_phone =
        json!({"table": "shop.people", "column": "phone", "grantee": "owner", "mask": "hash"});
    let mask_email =
        json!({"table": "shop.people", "column": "email", "grantee": "owner", "mask": "hash"});
    for (what, method, path, body) in [
        ("grant UNMASK", "POST", "/api/v1/grants", unmask.clone()),
        (
            "tag pii",
            "PUT",
            "/api/v1/tags",
            tag("email", &["contact", "pii"]),
        ),
        ("untag pii", "PUT", "/api/v1/tags", tag("phone", &[])),
        (
            "mask a pii column",
            "PUT",
            "/api/v1/policies/masks",
            mask_phone.clone(),
        ),
    ] {
        let a = s.call(method, path, Some(&owner), Some(body)).await;
        problem(&a, 403);
        assert_eq!(a.body["code"], "permission_denied", "{what}: {}", a.text);
    }
    problem(
        &s.sql(&owner, "GRANT UNMASK ON TABLE shop.people TO owner")
            .await,
        403,
    );
    // Nothing of it happened.
    let pii_of = |details: &Value| -> Vec<(String, bool)> {
        details["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["pii"] == true))
            .collect()
    };
    let details = s.call("GET", TABLE, Some(&admin), None).await;
    assert_eq!(
        pii_of(&details.body),
        [
            ("id".into(), false),
            ("email".into(), false),
            ("phone".into(), true)
        ],
        "{}",
        details.text
    );
    let grants = s.call("GET", "/api/v1/grants", Some(&admin), None).await;
    let unmasks = |grants: &Value| {
        grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["privilege"] == "UNMASK")
            .count()
    };
    assert_eq!(unmasks(&grants.body), 0, "{}", grants.text);

    // The administrator may do each.
    for (what, method, path, body) in [
        ("grant UNMASK", "POST", "/api/v1/grants", unmask),
        (
            "tag pii",
            "PUT",
            "/api/v1/tags",
            tag("email", &["contact", "pii"]),
        ),
        (
            "mask a pii column",
            "PUT",
            "/api/v1/policies/masks",
            mask_email,
        ),
        ("untag pii", "PUT", "/api/v1/tags", tag("phone", &[])),
    ] {
        let a = s.call(method, path, Some(&admin), Some(body)).await;
        assert_eq!(a.status, 200, "{what}: {}", a.text);
    }
    let details = s.call("GET", TABLE, Some(&admin), None).await;
    assert_eq!(
        pii_of(&details.body),
        [
            ("id".into(), false),
            ("email".into(), true),
            ("phone".into(), false)
        ],
        "{}",
        details.text
    );
    let grants = s.call("GET", "/api/v1/grants", Some(&admin), None).await;
    assert_eq!(unmasks(&grants.body), 1, "{}", grants.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_page_in_a_stable_order() {
    const TABLES: usize = 260;
    let (basin, s, admin) = start(&["d", "alpha", "zeta"]).await;
    basin.ok(&["hub", "create", "us"]);
    basin.ok(&["hub", "create", "de"]);
    // Created out of name order (37 is prime to 260), in one request.
    let script: Vec<String> = (0..TABLES)
        .map(|i| format!("CREATE TABLE d.t{:03} (x INT)", i * 37 % TABLES))
        .collect();
    let a = s
        .call(
            "POST",
            "/api/v1/query",
            Some(&admin),
            Some(json!({"sql": script.join(";\n"), "timeout_ms": 600_000})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let expected: Vec<String> = (0..TABLES).map(|i| format!("t{i:03}")).collect();
    let (names, pages) = walk_listing(
        &s,
        &admin,
        "/api/v1/hubs/main/datasets/d/tables",
        "tables",
        100,
    )
    .await;
    assert_eq!(names, expected);
    assert_eq!(pages, 3);
    let (hubs, pages) = walk_listing(&s, &admin, "/api/v1/hubs", "hubs", 1).await;
    assert_eq!(hubs, ["de", "main", "us"]);
    assert_eq!(pages, 3);
    let (datasets, pages) =
        walk_listing(&s, &admin, "/api/v1/hubs/main/datasets", "datasets", 1).await;
    assert_eq!(datasets, ["alpha", "d", "zeta"]);
    assert_eq!(pages, 3);

    for path in [
        "/api/v1/hubs",
        "/api/v1/hubs/main/datasets",
        "/api/v1/hubs/main/datasets/d/tables",
    ] {
        for (query, parameter) in [
            ("page_size=0", "page_size"),
            ("page_size=5000", "page_size"),
            ("page_token=not!a!token", "page_token"),
        ] {
            let a = s
                .call("GET", &format!("{path}?{query}"), Some(&admin), None)
                .await;
            problem(&a, 400);
            assert!(
                a.body["detail"].as_str().unwrap().contains(parameter),
                "{path}?{query}: {}",
                a.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_actions_are_audited_as_the_catalog_user() {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "sales", "--layer", "source"]);
    basin.ok(&["sql", "CREATE TABLE sales.t (x INT)"]);
    create_user(&basin, "bob", &[]);
    basin.ok(&[
        "grant",
        "SELECT, MODIFY",
        "ON",
        "TABLE",
        "sales.t",
        "TO",
        "bob",
    ]);
    ok_as(&basin, "bob", &["sql", "INSERT INTO sales.t VALUES (1)"]);
    let csv = basin.file("u.csv", "id\n1\n2\n");
    basin.ok(&["ingest", "sales.u", &csv]);

    let audit = basin.json("SELECT principal, source, action, target, outcome FROM system.audit");
    let has = |principal: &str, action: &str, target: &str| {
        audit.iter().any(|r| {
            r["principal"] == principal
                && r["source"] == "cli"
                && r["action"] == action
                && r["target"] == target
                && r["outcome"] == "ok"
        })
    };
    assert!(has("bob", "commit", "main.sales.t"), "{audit:?}");
    assert!(has("admin", "create", "main.sales.u"), "{audit:?}");
    assert!(has("admin", "user.create", "bob"), "{audit:?}");
    // Everything here was done through the CLI, by a catalog user: never the OS user or an
    // anonymous operator.
    for r in &audit {
        assert!(
            (r["principal"] == "admin" || r["principal"] == "bob") && r["source"] == "cli",
            "{r}"
        );
    }
    // The write of bob is bob's alone.
    let bob_writes: Vec<&Value> = audit
        .iter()
        .filter(|r| r["target"] == "main.sales.t" && r["action"] == "commit")
        .collect();
    assert_eq!(bob_writes.len(), 1, "{bob_writes:?}");

    let refused = fails_as(&basin, "nobody", &["sql", "SELECT 1"]);
    assert!(
        refused.contains("user 'nobody'") && refused.contains("not found"),
        "{refused}"
    );
    let refused = fails_as(&basin, "bob", &["user", "list"]);
    assert!(refused.contains("permission denied"), "{refused}");
    let refused = fails_as(&basin, "bob", &["user", "create", "eve", "--no-password"]);
    assert!(refused.contains("permission denied"), "{refused}");
}
