//! End-to-end: the real `basin serve` process over HTTP — authentication, the governance
//! matrix with its bypass attempts, PII at rest, and bad input. The governance scenarios share
//! one server, started once (see [`governance`]); a scenario that writes has its own table.

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::Basin;
pub(crate) use basin_testkit::fixtures::files_under as walk;
#[allow(unused_imports)] // kept for the modules that import them from here
pub(crate) use basin_testkit::server::{
    ADMIN_PASSWORD, Answer, Api, JWT_SECRET, Server, jwks, jwt, jwt_signed, problem, serve_command,
};

/// The emails of sales.customers, by id (see [`CUSTOMERS_CSV`]).
pub(crate) const CUSTOMER_EMAILS: [&str; 4] = [
    "ann@example.com",
    "bob@example.com",
    "cem@example.com",
    "dan@example.com",
];
const CUSTOMERS_CSV: &str = "id,name,email,phone,region\n1,Ann,ann@example.com,+49 151 1111,eu\n2,Bob,bob@example.com,+1 555 2222,us\n3,Cem,cem@example.com,+49 151 3333,eu\n4,Dan,dan@example.com,+1 555 4444,us\n";
const ORDERS_CSV: &str = "order_id,customer_email,amount\n10,ann@example.com,5.5\n11,bob@example.com,7.0\n12,cem@example.com,1.0\n";

/// Sample data: customers (with PII), orders referencing customers by email, and a secret table.
pub(crate) fn seed(basin: &Basin) {
    basin.ok(&["dataset", "create", "sales", "--layer", "prepared"]);
    basin.ok(&["dataset", "create", "hr", "--layer", "source"]);
    // Customers and orders get their PII tags before any data arrives (through the API).
    basin.ok(&["sql", "CREATE TABLE sales.customers (id BIGINT, name VARCHAR, email VARCHAR, phone VARCHAR, region VARCHAR)"]);
    basin.ok(&[
        "sql",
        "CREATE TABLE sales.orders (order_id BIGINT, customer_email VARCHAR, amount DOUBLE)",
    ]);
    let products = basin.file("products.csv", "sku,title\na1,Kettle\na2,Toaster\n");
    basin.ok(&["ingest", "sales.products", &products]);
    let salaries = basin.file("salaries.csv", "name,salary\nAnn,5000\nBob,7000\n");
    basin.ok(&["ingest", "hr.salaries", &salaries]);
    for role in ["analyst", "auditor"] {
        basin.ok(&["role", "create", role]);
    }
    for (user, args) in [
        ("alice", vec!["--role", "analyst", "--attr", "region=eu"]),
        ("bob", vec![]),
        ("carol", vec!["--role", "auditor"]),
    ] {
        let out = basin
            .command()
            .args(["user", "create", user])
            .args(&args)
            .env("BASIN_PASSWORD", format!("{user}-password"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Defines the tag `classification` and tags the email columns of sales.customers and
/// sales.orders `classification=pii` — before any data arrives, so that it is encrypted at rest.
pub(crate) async fn tag_emails_pii(s: &Api, admin: &str) {
    let a = s
        .call(
            "PUT",
            "/api/v1/tags/classification",
            Some(admin),
            Some(json!({"allowed_values": ["public", "internal", "pii", "pci"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    for (table, column) in [
        ("sales.customers", "email"),
        ("sales.orders", "customer_email"),
    ] {
        let a = s.call("PUT", "/api/v1/tags", Some(admin), Some(json!({"object": format!("table main.{table}"), "column": column, "tags": ["classification=pii"]}))).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

/// Loads the sample customers and orders through the upload endpoint.
pub(crate) async fn load_sales(s: &Api, admin: &str) {
    for (table, csv) in [("customers", CUSTOMERS_CSV), ("orders", ORDERS_CSV)] {
        let a = s.upload_csv(admin, table, csv).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

/// Every customer email found in clear text in a data file (the Delta log aside) of
/// `main.sales`, as "<email> in <path>".
pub(crate) fn clear_pii_on_disk(basin: &Basin) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(&basin.data_dir().join("hubs/main/sales")) {
        if entry.to_string_lossy().contains("_delta_log") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        for needle in CUSTOMER_EMAILS {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{needle} in {}", entry.display()));
            }
        }
    }
    found
}

/// The server the governance scenarios share, started once: [`seed`] data, grants, a row filter
/// and a mask for the analysts, PII tags on the emails, the sample sales loaded, and the users
/// logged in.
pub(crate) struct Governance {
    pub(crate) basin: Basin,
    pub(crate) server: Server,
    pub(crate) admin: String,
    pub(crate) alice: String,
    pub(crate) bob: String,
    pub(crate) carol: String,
    /// The version of sales.customers once the sample data is loaded.
    pub(crate) loaded_version: i64,
}

static GOVERNANCE: OnceCell<Governance> = OnceCell::const_new();

/// The shared governance server (started by the first scenario that asks) and a client of it for
/// the calling test's runtime.
pub(crate) async fn governance() -> (&'static Governance, Api) {
    let g = GOVERNANCE.get_or_init(Governance::start).await;
    (g, g.server.client())
}

impl Governance {
    async fn start() -> Governance {
        let basin = Basin::new();
        seed(&basin);
        // The table of the write scenario: the shape of sales.customers, in a dataset of its own.
        basin.ok(&["dataset", "create", "crm", "--layer", "prepared"]);
        basin.ok(&["sql", "CREATE TABLE crm.clients (id BIGINT, name VARCHAR, email VARCHAR, phone VARCHAR, region VARCHAR)"]);
        let mut s = Server::start(&basin, &["--max-body-mib", "1"]);
        s.kill_at_exit(Some(basin.dir.path().to_path_buf()));

        let admin = s.login("admin", ADMIN_PASSWORD).await;
        let alice = s.login("alice", "alice-password").await;
        let bob = s.login("bob", "bob-password").await;
        let carol = s.login("carol", "carol-password").await;

        // ---- grants, filters, masks, tags (admin) ------------------------------------------
        for statement in [
            "GRANT SELECT, MODIFY ON TABLE sales.customers TO analyst",
            "GRANT SELECT ON TABLE sales.orders TO analyst",
            "GRANT SELECT (id, region) ON TABLE sales.customers TO bob",
            "GRANT SELECT, UNMASK ON DATASET sales TO auditor",
            "GRANT SELECT ON TAG classification = 'public' TO bob",
        ] {
            let a = s.sql(&admin, statement).await;
            assert_eq!(a.status, 200, "{statement}: {}", a.text);
        }
        let a = s.call("PUT", "/api/v1/policies/row-filters", Some(&admin), Some(json!({"table": "sales.customers", "grantee": "analyst", "expression": "region = user_attribute('region')"}))).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let a = s.call("PUT", "/api/v1/policies/masks", Some(&admin), Some(json!({"table": "sales.customers", "column": "phone", "grantee": "analyst", "mask": "keep_last(4)"}))).await;
        assert_eq!(a.status, 200, "{}", a.text);
        tag_emails_pii(&s, &admin).await;
        load_sales(&s, &admin).await;
        let loaded_version = s.table_version(&admin, "customers").await;
        Governance {
            basin,
            server: s,
            admin,
            alice,
            bob,
            carol,
            loaded_version,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_and_openapi() {
    let (g, s) = governance().await;
    assert_eq!(s.call("GET", "/health", None, None).await.status, 200);
    problem(&s.call("GET", "/api/v1/hubs", None, None).await, 401);
    problem(
        &s.call("GET", "/api/v1/hubs", Some("bsn_forged"), None)
            .await,
        401,
    );
    let openapi = s
        .call("GET", "/api/v1/openapi.json", Some(&g.bob), None)
        .await;
    assert!(
        openapi.body["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        openapi.text
    );
    assert!(openapi.body["paths"]["/api/v1/query"].is_object());
}

/// No clear PII on disk; UNMASK sees it; joins on encrypted columns work for both.
#[tokio::test(flavor = "multi_thread")]
async fn pii_at_rest() {
    let (g, s) = governance().await;
    let (alice, carol) = (&g.alice, &g.carol);
    let clear_found = clear_pii_on_disk(&g.basin);
    assert!(clear_found.is_empty(), "clear PII on disk: {clear_found:?}");
    let rows = s
        .rows(carol, "SELECT email FROM sales.customers ORDER BY id")
        .await;
    assert_eq!(rows[0]["email"], "ann@example.com");
    let join = "SELECT o.order_id, c.name FROM sales.orders o JOIN sales.customers c ON o.customer_email = c.email ORDER BY o.order_id";
    assert_eq!(s.rows(carol, join).await.len(), 3);
    let joined = s.rows(alice, join).await;
    assert_eq!(
        joined
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Ann", "Cem"],
        "alice joins on ciphertext, within her rows"
    );
}

/// alice: rows filtered, phone masked, email shown as ciphertext — whatever the query's shape.
#[tokio::test(flavor = "multi_thread")]
async fn row_filters_and_masks_over_http() {
    let (g, s) = governance().await;
    let alice = &g.alice;
    let loaded_version = g.loaded_version;
    let rows = s
        .rows(alice, "SELECT * FROM sales.customers ORDER BY id")
        .await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["phone"], "********1111");
    assert!(
        rows[0]["email"].as_str().unwrap().starts_with("enc:v"),
        "{:?}",
        rows[0]
    );
    for bypass in [
        "SELECT count(*) FROM sales.customers".to_string(),
        "WITH c AS (SELECT * FROM sales.customers) SELECT count(*) FROM c".into(),
        "SELECT count(*) FROM (SELECT id FROM sales.customers WHERE region = 'us' OR true) x"
            .into(),
        "SELECT count(*) FROM sales.customers a JOIN sales.customers b ON a.id = b.id".into(),
        format!("SELECT count(*) FROM sales.customers VERSION AS OF {loaded_version}"),
        "SELECT count(*) FROM sales.customers WHERE id IN (SELECT id FROM sales.customers)".into(),
    ] {
        assert_eq!(s.count(alice, &bypass).await, 2, "{bypass}");
    }
    // A predicate that would fail on a hidden row runs only on admitted rows.
    assert_eq!(s.count(alice, "SELECT count(*) FROM sales.customers WHERE 1 / (CASE WHEN region = 'us' THEN 0 ELSE 1 END) = 1").await, 2);
    let explain = s.sql(alice, "EXPLAIN SELECT * FROM sales.customers").await;
    assert_eq!(explain.status, 200);
    assert!(
        !explain.text.contains("user_attribute") && !explain.text.contains("'eu'"),
        "EXPLAIN shows the policy: {}",
        explain.text
    );
    // The policies are listed to those who manage the table, not to those they restrict.
    let filters = s
        .call("GET", "/api/v1/policies/row-filters", Some(&g.admin), None)
        .await;
    assert_eq!(filters.status, 200, "{}", filters.text);
    assert_eq!(
        filters.body["row_filters"],
        json!([{"table": "main.sales.customers", "grantee": "analyst", "expression": "region = user_attribute('region')"}])
    );
    let masks = s
        .call("GET", "/api/v1/policies/masks", Some(&g.admin), None)
        .await;
    assert_eq!(
        masks.body["masks"],
        json!([{"table": "main.sales.customers", "column": "phone", "grantee": "analyst", "mask": "keep_last(4)"}])
    );
    for path in ["/api/v1/policies/row-filters", "/api/v1/policies/masks"] {
        let a = s.call("GET", path, Some(alice), None).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(!a.text.contains("customers"), "{path}: {}", a.text);
    }
    problem(&s.call("GET", "/api/v1/tags", Some(alice), None).await, 403);
    let keys = s.call("GET", "/api/v1/tags", Some(&g.admin), None).await;
    assert!(
        keys.body["tag_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "classification"),
        "{}",
        keys.text
    );
}

/// bob: two columns only; hidden columns behave as missing ones.
#[tokio::test(flavor = "multi_thread")]
async fn column_grants_hide_the_other_columns() {
    let (g, s) = governance().await;
    let bob = &g.bob;
    let rows = s
        .rows(bob, "SELECT * FROM sales.customers ORDER BY id")
        .await;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "region"]
    );
    let hidden = problem(&s.sql(bob, "SELECT email FROM sales.customers").await, 404)
        .body
        .clone();
    let missing = problem(&s.sql(bob, "SELECT nosuch FROM sales.customers").await, 404)
        .body
        .clone();
    assert_eq!(hidden["code"], missing["code"]);
    let typo = s.sql(bob, "SELECT emial FROM sales.customers").await;
    assert!(
        !typo.text.contains("email"),
        "a suggestion leaks a hidden column: {}",
        typo.text
    );
    let explain = s.sql(bob, "EXPLAIN SELECT * FROM sales.customers").await;
    assert!(
        !explain.text.contains("email") && !explain.text.contains("phone"),
        "{}",
        explain.text
    );
    let columns = s
        .rows(
            bob,
            "SELECT name FROM system.columns WHERE table_name = 'customers'",
        )
        .await;
    assert_eq!(columns.len(), 2, "{columns:?}");
}

/// Invisible tables answer exactly as missing ones, in queries and listings.
#[tokio::test(flavor = "multi_thread")]
async fn listings_show_only_what_a_user_may_see() {
    let (g, s) = governance().await;
    let (alice, bob) = (&g.alice, &g.bob);
    let secret = problem(&s.sql(alice, "SELECT * FROM hr.salaries").await, 404).body["detail"]
        .as_str()
        .unwrap()
        .replace("salaries", "X");
    let nothing = problem(&s.sql(alice, "SELECT * FROM hr.nosuch").await, 404).body["detail"]
        .as_str()
        .unwrap()
        .replace("nosuch", "X");
    assert_eq!(secret, nothing);
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs/main/datasets/hr/tables/salaries",
            Some(alice),
            None,
        )
        .await,
        404,
    );
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs/main/datasets/hr/tables",
            Some(alice),
            None,
        )
        .await,
        404,
    );
    let tables = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/sales/tables",
            Some(alice),
            None,
        )
        .await;
    assert_eq!(tables.status, 200, "{}", tables.text);
    let names: Vec<&str> = tables.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customers", "orders"]);
    assert_eq!(
        s.rows(alice, "SELECT name FROM system.tables WHERE dataset = 'hr'")
            .await
            .len(),
        0
    );
    let detail = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/sales/tables/customers",
            Some(bob),
            None,
        )
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.body["columns"].as_array().unwrap().len(), 2);
}

/// Tag grants cover an object the moment it is tagged (sales.products: tagged only here).
#[tokio::test(flavor = "multi_thread")]
async fn tag_grants_cover_an_object_once_tagged() {
    let (g, s) = governance().await;
    let (admin, bob) = (&g.admin, &g.bob);
    problem(&s.sql(bob, "SELECT * FROM sales.products").await, 404);
    let a = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(admin),
            Some(json!({"object": "table main.sales.products", "tags": ["classification=public"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.rows(bob, "SELECT * FROM sales.products").await.len(), 2);
    let bad_tag = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(admin),
            Some(json!({"object": "table main.sales.products", "tags": ["classification=secret"]})),
        )
        .await;
    problem(&bad_tag, 400);
}

/// Writes need privileges, and row filters confine INSERT, UPDATE and DELETE. On crm.clients,
/// this scenario's own copy of sales.customers with the same policy.
#[tokio::test(flavor = "multi_thread")]
async fn writes_are_confined_by_privileges_and_row_filters() {
    let (g, s) = governance().await;
    let (admin, alice, bob) = (&g.admin, &g.alice, &g.bob);
    for statement in [
        "GRANT SELECT, MODIFY ON TABLE crm.clients TO analyst",
        "GRANT SELECT (id, region) ON TABLE crm.clients TO bob",
    ] {
        let a = s.sql(admin, statement).await;
        assert_eq!(a.status, 200, "{statement}: {}", a.text);
    }
    let a = s.call("PUT", "/api/v1/policies/row-filters", Some(admin), Some(json!({"table": "crm.clients", "grantee": "analyst", "expression": "region = user_attribute('region')"}))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.call("PUT", "/api/v1/policies/masks", Some(admin), Some(json!({"table": "crm.clients", "column": "phone", "grantee": "analyst", "mask": "keep_last(4)"}))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.call("PUT", "/api/v1/tags", Some(admin), Some(json!({"object": "table main.crm.clients", "column": "email", "tags": ["classification=pii"]}))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.upload_csv(admin, "crm.clients", CUSTOMERS_CSV).await;
    assert_eq!(a.status, 200, "{}", a.text);

    problem(
        &s.sql(bob, "DELETE FROM crm.clients WHERE id = 1").await,
        403,
    );
    problem(
        &s.sql(alice, "DELETE FROM crm.clients WHERE phone = '+1 555 2222'")
            .await,
        403,
    );
    // alice may write only rows she can read back, and no file that bypasses her policy.
    let outside = problem(
        &s.sql(
            alice,
            "INSERT INTO crm.clients (id, name, region) VALUES (9, 'Eve', 'us')",
        )
        .await,
        403,
    )
    .text
    .clone();
    assert!(
        outside.contains("outside the rows you may see"),
        "{outside}"
    );
    problem(
        &s.upload_csv(alice, "crm.clients", "id,name,region\n9,Eve,us\n")
            .await,
        403,
    );
    let upd = s.rows(alice, "UPDATE crm.clients SET name = 'Zed'").await;
    assert_eq!(upd[0]["rows"], 2, "{upd:?}");
    assert_eq!(
        s.count(admin, "SELECT count(*) FROM crm.clients WHERE name = 'Zed'")
            .await,
        2
    );
    assert_eq!(
        s.count(
            admin,
            "SELECT count(*) FROM crm.clients WHERE region = 'us' AND name = 'Zed'"
        )
        .await,
        0
    );
    problem(
        &s.sql(alice, "GRANT SELECT ON TABLE sales.customers TO bob")
            .await,
        403,
    );
    problem(
        &s.sql(alice, "GRANT SELECT ON TABLE hr.salaries TO alice")
            .await,
        404,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_answers_in_json_csv_and_arrow() {
    let (g, s) = governance().await;
    let bob = &g.bob;
    let csv = s.call("POST", "/api/v1/query", Some(bob), Some(json!({"sql": "SELECT id, region FROM sales.customers ORDER BY id", "format": "csv"}))).await;
    assert_eq!(csv.text.lines().next(), Some("id,region"));
    assert_eq!(csv.text.lines().count(), 5);
    let arrow = s
        .http
        .post(format!("{}/api/v1/query", s.url))
        .bearer_auth(bob)
        .json(&json!({"sql": "SELECT id FROM sales.customers", "format": "arrow"}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.to_vec()), None)
            .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 4);
    let limited = s
        .call(
            "POST",
            "/api/v1/query",
            Some(bob),
            Some(json!({"sql": "SELECT id FROM sales.customers", "limit": 1})),
        )
        .await;
    assert_eq!(limited.body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(limited.body["truncated"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input() {
    let (g, s) = governance().await;
    let (admin, bob) = (&g.admin, &g.bob);
    problem(
        &s.call(
            "POST",
            "/api/v1/hubs/main/datasets/sales/tables/orders/files?format=xls",
            Some(admin),
            None,
        )
        .await,
        400,
    );
    let raw = |body: &'static str, ct: &'static str| {
        s.http
            .post(format!("{}/api/v1/query", s.url))
            .bearer_auth(bob)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(
        &Server::answer(raw("{not json", "application/json").await.unwrap()).await,
        400,
    );
    problem(
        &Server::answer(raw("{\"sql\": 1}", "application/json").await.unwrap()).await,
        422,
    );
    problem(
        &Server::answer(raw("SELECT 1", "text/plain").await.unwrap()).await,
        415,
    );
    let big = vec![b'a'; 2 * 1024 * 1024];
    let resp = s
        .http
        .post(format!(
            "{}/api/v1/hubs/main/datasets/sales/tables/customers/files?format=csv",
            s.url
        ))
        .bearer_auth(admin)
        .body(big)
        .send()
        .await
        .unwrap();
    problem(&Server::answer(resp).await, 413);
    problem(
        &s.call("GET", "/api/v1/hubs/Main!/datasets", Some(admin), None)
            .await,
        400,
    );
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs/main/datasets/sales'%20OR%201=1--/tables",
            Some(admin),
            None,
        )
        .await,
        400,
    );
    problem(
        &s.sql(admin, "SELECT * FROM \"sales\".\"customers; DROP TABLE x\"")
            .await,
        400,
    );
    problem(&s.sql(admin, "SELEC 1").await, 400);
    // Refusals axum makes itself are problem documents too.
    let wrong_method = s.call("GET", "/api/v1/query", Some(admin), None).await;
    problem(&wrong_method, 405);
    assert_eq!(wrong_method.body["code"], "method_not_allowed");
    problem(
        &s.call("GET", "/api/v1/hubs/%FF/datasets", Some(admin), None)
            .await,
        400,
    );
    let too_large = s
        .http
        .post(format!(
            "{}/api/v1/hubs/main/datasets/sales/tables/customers/optimize",
            s.url
        ))
        .bearer_auth(admin)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    problem(&Server::answer(too_large).await, 413);
}

/// Identity-provider JWTs: accepted when right; refused when they claim a taken name, have the
/// wrong audience, are expired, unsigned or signed with another algorithm.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_tokens() {
    let (_, s) = governance().await;
    let now = chrono::Utc::now().timestamp();
    let good = json!({"iss": "https://idp.test", "aud": "basin", "exp": now + 600, "preferred_username": "dora", "roles": ["analyst"]});
    let dora = jwt(good.clone(), jsonwebtoken::Algorithm::HS256);
    // An identity provider's user may not take the name of a role or of a local user: a user
    // acts in the role named after itself.
    for taken in ["admin", "analyst", "bob"] {
        let mut claims = good.clone();
        claims["preferred_username"] = json!(taken);
        let refused = problem(
            &s.call(
                "GET",
                "/api/v1/hubs",
                Some(&jwt(claims, jsonwebtoken::Algorithm::HS256)),
                None,
            )
            .await,
            401,
        )
        .text
        .clone();
        assert!(refused.contains(taken), "{refused}");
    }
    assert_eq!(
        s.count(&dora, "SELECT count(*) FROM sales.customers").await,
        0,
        "dora has no region attribute: no rows"
    );
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("other");
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs",
            Some(&jwt(wrong_aud, jsonwebtoken::Algorithm::HS256)),
            None,
        )
        .await,
        401,
    );
    let mut expired = good.clone();
    expired["exp"] = json!(now - 600);
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs",
            Some(&jwt(expired, jsonwebtoken::Algorithm::HS256)),
            None,
        )
        .await,
        401,
    );
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "test"})),
        b64(&good)
    );
    problem(&s.call("GET", "/api/v1/hubs", Some(&none), None).await, 401);
    problem(
        &s.call(
            "GET",
            "/api/v1/hubs",
            Some(&jwt(good.clone(), jsonwebtoken::Algorithm::HS512)),
            None,
        )
        .await,
        401,
    );
}

/// Service tokens: shown once, work, then revoked.
#[tokio::test(flavor = "multi_thread")]
async fn service_tokens_work_until_revoked() {
    let (g, s) = governance().await;
    let bob = &g.bob;
    let created = s
        .call(
            "POST",
            "/api/v1/tokens",
            Some(bob),
            Some(json!({"name": "etl", "ttl_days": 1})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let service = created.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("GET", "/api/v1/hubs", Some(&service), None)
            .await
            .status,
        200
    );
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        s.call("DELETE", &format!("/api/v1/tokens/{id}"), Some(bob), None)
            .await
            .status,
        200
    );
    problem(
        &s.call("GET", "/api/v1/hubs", Some(&service), None).await,
        401,
    );
}

/// Failed logins are rate-limited; logins, denials and changes are audited (the failed logins
/// and alice's denied query happen here; the rest in the shared set-up). The only scenario that
/// logs in, so the rate limit on bob touches no other.
#[tokio::test(flavor = "multi_thread")]
async fn audit() {
    let (g, s) = governance().await;
    let (admin, alice) = (&g.admin, &g.alice);
    for _ in 0..5 {
        problem(
            &s.call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"user": "bob", "password": "wrong-password"})),
            )
            .await,
            401,
        );
    }
    let limited = s
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"user": "bob", "password": "bob-password"})),
        )
        .await;
    problem(&limited, 429);

    problem(&s.sql(alice, "SELECT * FROM system.audit").await, 404);
    let audit = s
        .rows(admin, "SELECT action, outcome, principal FROM system.audit")
        .await;
    let has = |action: &str, outcome: &str, who: &str| {
        audit
            .iter()
            .any(|r| r["action"] == action && r["outcome"] == outcome && r["principal"] == who)
    };
    assert!(has("login", "denied", "bob"), "failed login audited");
    assert!(has("login", "ok", "alice"));
    assert!(has("query", "denied", "alice"), "denied query audited");
    assert!(has("grant", "ok", "admin") || has("query", "ok", "admin"));
    assert!(has("tag.set", "ok", "admin"));
    let metrics = s.call("GET", "/metrics", Some(admin), None).await;
    assert!(
        metrics.text.contains("basin_http_requests_total"),
        "{}",
        metrics.text
    );
    assert_eq!(
        s.call("GET", "/health", None, None).await.status,
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_the_upload_in_flight() {
    let basin = Basin::new();
    seed(&basin);
    let mut s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;

    // An upload whose body arrives in two parts; SIGTERM comes between them.
    const ROWS: usize = 20_000;
    let (first_sent, first_seen) = tokio::sync::oneshot::channel::<()>();
    let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
    let mut first_sent = Some(first_sent);
    let mut resumed = Some(resumed);
    let body = futures::stream::unfold(0usize, move |part| {
        let signal = if part == 1 { first_sent.take() } else { None };
        let wait = if part == 1 { resumed.take() } else { None };
        async move {
            let rows = match part {
                0 => {
                    let mut csv = String::from("id,label\n");
                    csv.extend((0..ROWS / 2).map(|i| format!("{i},row {i}\n")));
                    csv
                }
                1 => {
                    let _ = signal.map(|s| s.send(()));
                    if let Some(w) = wait {
                        let _ = w.await;
                    }
                    (ROWS / 2..ROWS).map(|i| format!("{i},row {i}\n")).collect()
                }
                _ => return None,
            };
            Some((Ok::<_, std::io::Error>(rows), part + 1))
        }
    });
    let upload = s
        .http
        .post(format!(
            "{}/api/v1/hubs/main/datasets/sales/tables/events/files?format=csv",
            s.url
        ))
        .bearer_auth(&admin)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(upload);
    first_seen.await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    resume.send(()).unwrap();

    let answer = Server::answer(upload.await.unwrap().unwrap()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["rows"], ROWS, "{}", answer.text);
    let status = s.wait_exit();
    assert!(status.success(), "basin serve exited with {status}");
    let count = basin.json("SELECT count(*) AS n FROM sales.events");
    assert_eq!(count[0]["n"], ROWS);
}
