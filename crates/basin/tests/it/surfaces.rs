//! End-to-end: surfaces that do not lie (issue 13) — request bodies with unknown fields are
//! refused, `--output json` is honoured by every command that prints, passwords change and
//! users come back, and a data directory can be copied and a hub moved.

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};

/// Every endpoint of the OpenAPI document that takes a JSON body refuses a field it does not
/// know (400, naming the field and the accepted ones) instead of ignoring it.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_request_fields_are_refused() {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "sales", "--layer", "source"]);
    basin.ok(&["user", "create", "carol", "--no-password"]);
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;

    // The case: a token "for carol" must not silently become the admin's.
    let a = s
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"name": "etl", "user": "carol"})),
        )
        .await;
    problem(&a, 400);
    assert_eq!(a.body["code"], "unknown_field", "{}", a.text);
    let detail = a.body["detail"].as_str().unwrap();
    for word in ["'user'", "name", "ttl_days", "owner"] {
        assert!(detail.contains(word), "{word} missing in: {detail}");
    }
    let tokens = s.call("GET", "/api/v1/tokens", Some(&admin), None).await;
    assert_eq!(tokens.body["tokens"], json!([]), "{}", tokens.text);
    // What the caller meant is spelt `owner`, and an administrator may do it.
    let a = s
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"name": "etl", "owner": "carol"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["owner"], "carol");

    // Every JSON body, from the API's own document: a field nobody declares is refused before
    // anything happens (serde meets it before it checks the required fields).
    let openapi = s
        .call("GET", "/api/v1/openapi.json", Some(&admin), None)
        .await;
    let mut checked = Vec::new();
    for (path, item) in openapi.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            // Attributes are a free-form map: any key is an attribute.
            if path.ends_with("/attributes") {
                continue;
            }
            let concrete = path
                .replace("{hub}", "main")
                .replace("{dataset}", "sales")
                .replace("{table}", "orders")
                .replace("{user}", "carol")
                .replace("{role}", "nobody")
                .replace("{key}", "classification")
                .replace("{id}", "x");
            let method = method.to_uppercase();
            let token = (path != "/api/v1/login").then_some(admin.as_str());
            let a = s
                .call(&method, &concrete, token, Some(json!({"no_such_field": 1})))
                .await;
            problem(&a, 400);
            assert_eq!(
                a.body["code"], "unknown_field",
                "{method} {path}: {}",
                a.text
            );
            assert!(
                a.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("'no_such_field'"),
                "{method} {path}: {}",
                a.text
            );
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 12, "too few body endpoints: {checked:?}");
    // And every query string.
    let mut checked = Vec::new();
    for (path, item) in openapi.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if !params.iter().any(|p| p["in"] == "query") {
                continue;
            }
            let concrete = path
                .replace("{hub}", "main")
                .replace("{dataset}", "sales")
                .replace("{table}", "orders");
            let method = method.to_uppercase();
            let a = s
                .call(
                    &method,
                    &format!("{concrete}?no_such_field=1"),
                    Some(&admin),
                    None,
                )
                .await;
            problem(&a, 400);
            assert_eq!(
                a.body["code"], "unknown_field",
                "{method} {path}: {}",
                a.text
            );
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(
        checked.len() >= 6,
        "too few endpoints with a query string: {checked:?}"
    );
    let a = s
        .call("GET", "/api/v1/hubs?page_sise=5", Some(&admin), None)
        .await;
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("did you mean 'page_size'"),
        "{}",
        a.text
    );
    // A misspelt field among valid ones is refused too, with a suggestion.
    let a = s
        .call(
            "POST",
            "/api/v1/query",
            Some(&admin),
            Some(json!({"sql": "SELECT 1", "limt": 5})),
        )
        .await;
    problem(&a, 400);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("did you mean 'limit'"),
        "{}",
        a.text
    );
}

/// `basin --output json ARGS…`: its stdout parsed as one JSON document.
fn json_of(basin: &Basin, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = basin.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("basin {args:?}: not JSON ({e}): {out}"))
}

/// Every command that prints a result prints one JSON document with `--output json`, with
/// every field (a missing value as `null`); the list commands print tables otherwise.
#[test]
fn every_command_honours_output_json() {
    let b = Basin::new();
    let csv = b.file("orders.csv", "id,amount,note\n1,10.5,\n2,20,late\n");
    b.create_user("dora", "dora-password", &["--attr", "region=eu"]);
    let token = json_of(&b, &["token", "create", "etl", "--user", "dora"]);
    assert!(
        token["token"].as_str().unwrap().starts_with("bsn_"),
        "{token}"
    );

    // (command, a check of its document)
    type Check = fn(&Value) -> bool;
    let cases: Vec<(Vec<&str>, Check)> = vec![
        (vec!["init"], |v| v["hubs"] == json!(["main"])),
        (vec!["hub", "create", "us"], |v| v["name"] == "us"),
        (vec!["hub", "list"], |v| v.as_array().unwrap().len() == 2),
        (
            vec!["dataset", "create", "sales", "--layer", "source"],
            |v| {
                // A dataset without a domain: the field is there, as null.
                v["name"] == "sales" && v.get("domain") == Some(&Value::Null)
            },
        ),
        (vec!["dataset", "list"], |v| {
            v[0]["name"] == "sales" && v[0].get("owner") == Some(&Value::Null)
        }),
        (
            vec!["ingest", "sales.orders", "ORDERS", "--key", "id"],
            |v| v["rows"] == 2 && v["created"] == true && v.get("quarantine") == Some(&Value::Null),
        ),
        (vec!["dataset", "show", "sales"], |v| {
            v["name"] == "sales" && v["tables"][0]["table_name"] == "orders"
        }),
        (vec!["table", "show", "sales.orders"], |v| {
            v["primary_key"] == json!(["id"]) && v["columns"].as_array().unwrap().len() == 3
        }),
        (
            vec!["sql", "INSERT INTO sales.orders VALUES (3, 1.5, 'x')"],
            |v| v.is_array(),
        ),
        (vec!["table", "history", "sales.orders"], |v| {
            v[0]["version"] == 1
        }),
        (
            vec!["table", "restore", "sales.orders", "--version", "0"],
            |v| v["version"] == 2 && v["restored_version"] == 0,
        ),
        (
            vec!["sql", "SELECT id, note FROM sales.orders ORDER BY id"],
            |v| {
                // NULL stays in the row.
                v == &json!([{"id": 1, "note": null}, {"id": 2, "note": "late"}])
            },
        ),
        (vec!["user", "list"], |v| {
            v.as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == "dora" && u["attributes"]["region"] == "eu")
        }),
        (vec!["user", "set-attributes", "dora", "region=us"], |v| {
            v["attributes"]["region"] == "us"
        }),
        (vec!["role", "create", "analyst"], |v| {
            v["name"] == "analyst"
        }),
        (vec!["role", "add-member", "analyst", "dora"], |v| {
            v["members"] == json!(["dora"])
        }),
        (vec!["role", "list"], |v| {
            v.as_array().unwrap().iter().any(|r| r["name"] == "analyst")
        }),
        (
            vec![
                "grant",
                "SELECT",
                "ON",
                "TABLE",
                "sales.orders",
                "TO",
                "analyst",
            ],
            |v| v.is_array(),
        ),
        (vec!["grant", "list"], |v| {
            v.as_array().unwrap().iter().any(|g| {
                g["object"] == "table main.sales.orders" && g.get("column") == Some(&Value::Null)
            })
        }),
        (vec!["token", "list"], |v| {
            v[0]["name"] == "etl" && v[0].get("revoked_at") == Some(&Value::Null)
        }),
    ];
    for (args, check) in cases {
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "ORDERS" { csv.as_str() } else { a })
            .collect();
        let doc = json_of(&b, &args);
        assert!(check(&doc), "basin {args:?}: unexpected {doc:#}");
    }
    let id = token["id"].as_str().unwrap();
    let revoked = json_of(&b, &["token", "revoke", id]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let disabled = json_of(&b, &["user", "disable", "dora"]);
    assert_eq!(disabled["disabled"], true, "{disabled}");
    let demo = json_of(&Basin::new(), &["demo"]);
    assert!(
        demo[0]["title"] == "Revenue by country (a join across tables)"
            && demo[0]["rows"].as_array().unwrap().len() > 1,
        "{demo:#}"
    );
    // The lists are tables (not JSON) by default.
    for args in [
        ["user", "list"],
        ["role", "list"],
        ["grant", "list"],
        ["token", "list"],
    ] {
        let out = b.ok(&args);
        assert!(
            out.starts_with('+') && out.contains("row"),
            "basin {args:?}: {out}"
        );
    }
}

/// `basin --as USER user password NAME` with `stdin` piped in; its output.
fn password_via_cli(b: &Basin, user: &str, name: &str, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = b
        .command()
        .args(["--as", user, "user", "password", name])
        .env_remove("BASIN_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Passwords change through the CLI and REST (your own with the current one; administrators
/// anyone's); the user's login sessions end, its service tokens stay; users are disabled and
/// enabled again; every change is audited without the password.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_change_and_users_come_back() {
    let b = Basin::new();
    b.create_user("dora", "dora-password-1", &[]);
    let s = Server::start(&b, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let login = |password: &'static str| {
        let s = s.client();
        async move {
            s.call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"user": "dora", "password": password})),
            )
            .await
            .status
        }
    };
    let whoami = |token: String| {
        let s = s.client();
        async move { s.sql(&token, "SELECT current_user() AS u").await.status }
    };

    // CLI, as dora: the current password first, then the new one, on stdin.
    let session = s.login("dora", "dora-password-1").await;
    let service = s
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&session),
            Some(json!({"name": "etl"})),
        )
        .await;
    assert_eq!(service.status, 201, "{}", service.text);
    let service = service.body["token"].as_str().unwrap().to_string();
    let wrong = password_via_cli(&b, "dora", "dora", "not-the-password\ndora-password-2\n");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("current password is wrong"));
    let out = password_via_cli(&b, "dora", "dora", "dora-password-1\ndora-password-2\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login("dora-password-1").await, 401);
    assert_eq!(login("dora-password-2").await, 200);
    assert_eq!(
        whoami(session.clone()).await,
        401,
        "a session of the old password ended"
    );
    assert_eq!(whoami(service.clone()).await, 200, "service tokens stay");
    // Someone else's password: administrators only.
    let refused = password_via_cli(&b, "dora", "admin", "dora-password-2\nadmin-taken-over\n");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("administrators"));
    // The administrator needs no current password; only a line with the new one.
    let out = password_via_cli(&b, "admin", "dora", "dora-password-3\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login("dora-password-3").await, 200);
    let short = password_via_cli(&b, "admin", "dora", "short\n");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));

    // REST, as dora.
    let dora = s.login("dora", "dora-password-3").await;
    let change = |token: String, user: &'static str, body: serde_json::Value| {
        let s = s.client();
        async move {
            s.call(
                "PUT",
                &format!("/api/v1/users/{user}/password"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let a = change(
        dora.clone(),
        "dora",
        json!({"new_password": "dora-password-4"}),
    )
    .await;
    problem(&a, 400);
    let a = change(
        dora.clone(),
        "dora",
        json!({"current_password": "nope-nope", "new_password": "dora-password-4"}),
    )
    .await;
    problem(&a, 403);
    let a = change(
        dora.clone(),
        "admin",
        json!({"current_password": "dora-password-3", "new_password": "admin-taken-over"}),
    )
    .await;
    problem(&a, 403);
    let a = change(
        dora.clone(),
        "dora",
        json!({"current_password": "dora-password-3", "new_password": "dora-password-4"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        whoami(dora).await,
        401,
        "the session that changed it ended too"
    );
    assert_eq!(login("dora-password-4").await, 200);
    // REST, as the administrator.
    let a = change(
        admin.clone(),
        "dora",
        json!({"new_password": "dora-password-5"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(login("dora-password-5").await, 200);
    assert_eq!(login("admin-taken-over").await, 401);

    // Disable and enable, over REST and through the CLI.
    let a = s
        .call("POST", "/api/v1/users/dora/disable", Some(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["disabled"], true);
    assert_eq!(login("dora-password-5").await, 401);
    assert_eq!(whoami(service.clone()).await, 401);
    let a = s
        .call("POST", "/api/v1/users/dora/enable", Some(&admin), None)
        .await;
    assert_eq!(a.body["disabled"], false, "{}", a.text);
    assert_eq!(login("dora-password-5").await, 200);
    b.ok(&["user", "disable", "dora"]);
    assert_eq!(login("dora-password-5").await, 401);
    let enabled = json_of(&b, &["user", "enable", "dora"]);
    assert_eq!(enabled["disabled"], false);
    assert_eq!(login("dora-password-5").await, 200);
    let dora = s.login("dora", "dora-password-5").await;
    problem(
        &s.call("POST", "/api/v1/users/admin/disable", Some(&dora), None)
            .await,
        403,
    );

    // Audited, without the passwords.
    let audit = s
        .call("GET", "/api/v1/audit?limit=100000", Some(&admin), None)
        .await;
    let events = audit.body["events"].as_array().unwrap();
    let ok = |action: &str| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "ok")
            .count()
    };
    assert_eq!(ok("user.password"), 4, "{}", audit.text);
    assert!(
        ok("user.enable") == 2 && ok("user.disable") == 2,
        "{}",
        audit.text
    );
    assert!(
        !audit.text.contains("dora-password-"),
        "a password in the audit log"
    );
}

/// `basin --data-dir DATA ARGS…` run from `cwd`; must succeed; its stdout.
fn basin_in(cwd: &std::path::Path, data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(basin_testkit::basin::basin_bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "basin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Rows of `sql` as JSON, run against `data` from `cwd`.
fn rows_in(cwd: &std::path::Path, data: &std::path::Path, sql: &str) -> Value {
    let out = basin_in(cwd, data, &["--output", "json", "sql", sql]);
    serde_json::from_str(&out).unwrap()
}

/// A data directory copied elsewhere (the original gone) opens with every table readable and
/// writable: the default hub, a second hub, and a hub whose root was given as a relative path
/// inside the data directory. Storage roots and locations show the new place.
#[test]
fn a_copied_data_dir_keeps_working() {
    let b = Basin::new();
    let (cwd, data) = (b.dir.path(), b.data_dir());
    let csv = b.file("orders.csv", "id,amount\n1,10.5\n2,20\n");
    basin_in(
        cwd,
        &data,
        &["dataset", "create", "sales", "--layer", "source"],
    );
    basin_in(cwd, &data, &["ingest", "sales.orders", &csv]);
    basin_in(
        cwd,
        &data,
        &["sql", "CREATE TABLE sales.notes (id BIGINT, text VARCHAR)"],
    );
    basin_in(
        cwd,
        &data,
        &["sql", "INSERT INTO sales.notes VALUES (1, 'kept')"],
    );
    basin_in(cwd, &data, &["hub", "create", "us"]);
    // Relative to the working directory, which is the data directory's parent here.
    basin_in(
        cwd,
        &data,
        &["hub", "create", "eu", "--storage-root", "data/eu-tables"],
    );
    for hub in ["us", "eu"] {
        basin_in(
            cwd,
            &data,
            &[
                "dataset",
                "create",
                &format!("{hub}.crm"),
                "--layer",
                "source",
            ],
        );
        basin_in(cwd, &data, &["ingest", &format!("{hub}.crm.orders"), &csv]);
    }
    assert!(
        data.join("eu-tables/crm/orders/_delta_log").is_dir(),
        "eu's tables under its root"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("restored-data");
    copy_tree(&data, &moved);
    std::fs::remove_dir_all(&data).unwrap();
    // Another working directory, too.
    let cwd = elsewhere.path();
    for table in ["main.sales.orders", "us.crm.orders", "eu.crm.orders"] {
        let rows = rows_in(
            cwd,
            &moved,
            &format!("SELECT sum(amount) AS s FROM {table}"),
        );
        assert_eq!(rows, json!([{"s": 30.5}]), "{table}");
    }
    assert_eq!(
        rows_in(cwd, &moved, "SELECT text FROM sales.notes"),
        json!([{"text": "kept"}])
    );
    basin_in(
        cwd,
        &moved,
        &["sql", "INSERT INTO eu.crm.orders VALUES (3, 1.0)"],
    );
    assert_eq!(
        rows_in(cwd, &moved, "SELECT count(*) AS n FROM eu.crm.orders"),
        json!([{"n": 3}])
    );
    let hubs = rows_in(
        cwd,
        &moved,
        "SELECT name, storage_root FROM system.hubs ORDER BY name",
    );
    let moved_url = format!("file://{}", moved.display());
    for hub in hubs.as_array().unwrap() {
        let root = hub["storage_root"].as_str().unwrap();
        assert!(root.starts_with(&moved_url), "{hub} not under {moved_url}");
    }
    let shown = json_of_in(cwd, &moved, &["table", "show", "eu.crm.orders"]);
    assert_eq!(
        shown["location"],
        format!("{moved_url}/eu-tables/crm/orders")
    );
    assert!(!data.exists());
}

fn json_of_in(cwd: &std::path::Path, data: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&basin_in(cwd, data, &all)).unwrap()
}

/// `basin hub move` moves a hub's files and points the catalog there; a refused or failed move
/// changes nothing; only administrators may; it is audited.
#[test]
fn hubs_move() {
    let b = Basin::new();
    let csv = b.file("orders.csv", "id,amount\n1,10.5\n2,20\n");
    b.ok(&["dataset", "create", "sales", "--layer", "source"]);
    b.ok(&["ingest", "sales.orders", &csv]);
    let out = b
        .command()
        .args(["user", "create", "eve", "--no-password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sum = || b.json("SELECT sum(amount) AS s FROM sales.orders");
    let root = || {
        b.json("SELECT storage_root FROM system.hubs WHERE name = 'main'")[0]["storage_root"]
            .clone()
    };
    let before = root();

    // Refused: not an administrator; a directory that is not empty; inside the hub itself.
    let target = tempfile::tempdir().unwrap();
    let new_root = target.path().join("main-tables");
    let new_root = new_root.to_str().unwrap();
    let denied = b.fails(&["--as", "eve", "hub", "move", "main", new_root]);
    assert!(denied.contains("admin"), "{denied}");
    let busy = target.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("file"), "x").unwrap();
    let refused = b.fails(&["hub", "move", "main", busy.to_str().unwrap()]);
    assert!(refused.contains("not empty"), "{refused}");
    let inside = b.data_dir().join("hubs/main/sub");
    let refused = b.fails(&["hub", "move", "main", inside.to_str().unwrap()]);
    assert!(refused.contains("outside"), "{refused}");
    let refused = b.fails(&["hub", "move", "main", "s3://bucket/main"]);
    assert!(refused.contains("local"), "{refused}");
    assert_eq!(root(), before);
    assert_eq!(sum(), vec![json!({"s": 30.5})]);

    // Moved: the files are at the new root, the old directory is gone, every table reads.
    let moved = json_of(&b, &["hub", "move", "main", new_root]);
    assert_eq!(moved["storage_root"], format!("file://{new_root}"));
    assert_eq!(root(), json!(format!("file://{new_root}")));
    assert!(!b.data_dir().join("hubs/main").exists());
    assert!(
        std::path::Path::new(new_root)
            .join("sales/orders/_delta_log")
            .is_dir()
    );
    assert_eq!(sum(), vec![json!({"s": 30.5})]);
    b.ok(&["sql", "INSERT INTO sales.orders VALUES (3, 1.0)"]);
    // And back inside the data directory.
    let back = b.data_dir().join("hubs/main");
    b.ok(&["hub", "move", "main", back.to_str().unwrap()]);
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.orders"),
        vec![json!({"n": 3})]
    );
    assert!(!std::path::Path::new(new_root).exists());
    // To its current root: the files stay, the entries are stored again.
    b.ok(&["hub", "move", "main", back.to_str().unwrap()]);
    assert_eq!(
        b.json("SELECT count(*) AS n FROM sales.orders"),
        vec![json!({"n": 3})]
    );

    let audit =
        b.json("SELECT action, outcome FROM system.audit WHERE action = 'hub.move' ORDER BY at");
    let outcomes: Vec<&str> = audit
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["denied", "error", "error", "error", "ok", "ok", "ok"],
        "{audit:?}"
    );
}

/// REST answers keep NULL as `null`: query rows (JSON) and table previews.
#[tokio::test(flavor = "multi_thread")]
async fn rest_rows_keep_nulls() {
    let b = Basin::new();
    b.ok(&["dataset", "create", "sales", "--layer", "source"]);
    b.ok(&["sql", "CREATE TABLE sales.notes (id BIGINT, text VARCHAR)"]);
    b.ok(&[
        "sql",
        "INSERT INTO sales.notes VALUES (1, NULL), (2, 'two')",
    ]);
    let s = Server::start(&b, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let rows = s
        .rows(&admin, "SELECT id, text FROM sales.notes ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "text": null}),
            json!({"id": 2, "text": "two"})
        ]
    );
    let preview = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/sales/tables/notes/preview",
            Some(&admin),
            None,
        )
        .await;
    let rows = preview.body["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r == &json!({"id": 1, "text": null})),
        "{}",
        preview.text
    );
}
