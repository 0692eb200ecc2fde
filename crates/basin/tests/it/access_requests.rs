//! End-to-end: access requests over REST and the CLI on the `basin demo` hub — a consumer with
//! USAGE asks for SELECT, the owner (MANAGE) approves and the consumer then queries; a user
//! without access can neither see nor decide; a denial keeps access closed; a hidden dataset
//! answers like a missing one.

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};

const PASSWORD: &str = "demo-password-1";

/// The demo hub with its sample users, all with [`PASSWORD`].
pub(crate) fn demo() -> Basin {
    let b = Basin::new();
    let out = b
        .command()
        .arg("demo")
        .env("BASIN_DEMO_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for user in ["owner", "analyst", "consumer", "outsider"] {
        assert!(
            text.contains(&format!("{user:<9} password {PASSWORD}")),
            "{text}"
        );
    }
    assert!(text.contains("http://127.0.0.1:8080/"), "{text}");
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_request_approve_then_query() {
    let b = demo();
    b.ok(&["dataset", "create", "hr", "--layer", "source"]);
    let mut server = Server::start(&b, &[]);
    server.kill_at_exit(None);
    let s = server.client();
    let consumer = s.login("consumer", PASSWORD).await;
    let owner = s.login("owner", PASSWORD).await;
    let outsider = s.login("outsider", PASSWORD).await;
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let sql = "SELECT count(*) AS n FROM sales.orders";
    problem(&s.sql(&consumer, sql).await, 404);

    let create = |token: String, object: &str, reason: &str| {
        let body = json!({"object": object, "reason": reason});
        let s = &s;
        async move {
            s.call("POST", "/api/v1/access-requests", Some(&token), Some(body))
                .await
        }
    };
    // A reason is required; a hidden dataset answers like a missing one.
    let a = create(consumer.clone(), "dataset sales", "").await;
    assert!(
        problem(&a, 400).body["detail"]
            .as_str()
            .unwrap()
            .contains("reason")
    );
    let hidden = create(consumer.clone(), "dataset hr", "curious").await;
    let missing = create(consumer.clone(), "dataset hx", "curious").await;
    problem(&hidden, 404);
    problem(&missing, 404);
    assert_eq!(
        hidden.body["detail"].as_str().unwrap().replace("hr", "X"),
        missing.body["detail"].as_str().unwrap().replace("hx", "X")
    );
    problem(
        &create(outsider.clone(), "dataset sales", "please").await,
        404,
    );

    let a = create(consumer.clone(), "dataset sales", "monthly revenue report").await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (&a.body["status"], &a.body["object"], &a.body["privilege"]),
        (
            &json!("pending"),
            &json!("dataset main.sales"),
            &json!("SELECT")
        )
    );
    let id = a.body["id"].as_str().unwrap().to_string();
    problem(
        &create(consumer.clone(), "dataset sales", "again").await,
        400,
    );

    // Only the owner (and administrators) see it to review; others cannot decide it.
    let list = |token: String, query: &'static str| {
        let s = &s;
        async move {
            s.call(
                "GET",
                &format!("/api/v1/access-requests{query}"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let ids = |a: &crate::server::Answer| -> Vec<String> {
        a.body["requests"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", a.text))
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&list(owner.clone(), "?scope=review&status=pending").await),
        [id.clone()]
    );
    assert_eq!(
        ids(&list(admin.clone(), "?scope=review").await),
        [id.clone()]
    );
    assert!(ids(&list(outsider.clone(), "?scope=review").await).is_empty());
    assert_eq!(ids(&list(consumer.clone(), "").await), [id.clone()]);
    assert!(ids(&list(consumer.clone(), "?scope=review").await).is_empty());
    problem(&list(owner.clone(), "?scoop=review").await, 400);
    problem(&list(owner.clone(), "?status=maybe").await, 400);
    let approve = format!("/api/v1/access-requests/{id}/approve");
    problem(
        &s.call("POST", &approve, Some(&outsider), Some(json!({})))
            .await,
        404,
    );
    problem(
        &s.call("POST", &approve, Some(&consumer), Some(json!({})))
            .await,
        403,
    );

    let a = s
        .call(
            "POST",
            &approve,
            Some(&owner),
            Some(json!({"comment": "for Q3"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (&a.body["status"], &a.body["decided_by"]),
        (&json!("approved"), &json!("owner"))
    );
    assert_eq!(s.count(&consumer, sql).await, 60);
    problem(
        &s.call("POST", &approve, Some(&owner), Some(json!({})))
            .await,
        400,
    );

    // Everything is in the audit log.
    let events = s.call("GET", "/api/v1/audit", Some(&admin), None).await;
    let actions: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["access_request.create", "access_request.approve", "grant"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    let spec = s
        .call("GET", "/api/v1/openapi.json", Some(&admin), None)
        .await;
    for path in [
        "/api/v1/access-requests",
        "/api/v1/access-requests/{id}/approve",
        "/api/v1/access-requests/{id}/deny",
        "/api/v1/access-requests/{id}/cancel",
    ] {
        assert!(spec.body["paths"][path].is_object(), "{path}");
    }
}

fn json_of(b: &Basin, args: &[&str]) -> Value {
    let out = b.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn cli_request_deny_and_cancel() {
    let b = demo();
    let consumer = ["--as", "consumer", "--output", "json"];
    let args = |who: &[&str], rest: &[&str]| -> Vec<String> {
        who.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    let run = |v: Vec<String>| json_of(&b, &v.iter().map(String::as_str).collect::<Vec<_>>());
    let r = run(args(
        &consumer,
        &[
            "access",
            "request",
            "dataset",
            "sales",
            "--reason",
            "dashboards",
        ],
    ));
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["status"], "pending");

    // The outsider neither sees nor decides it; the owner must give a reason to deny.
    let e = b.fails(&["--as", "outsider", "access", "deny", &id, "--comment", "no"]);
    assert!(
        e.contains(&format!("access request '{id}' not found")),
        "{e}"
    );
    let e = b.fails(&["--as", "owner", "access", "deny", &id, "--comment", " "]);
    assert!(e.contains("comment"), "{e}");
    let queue = run(args(
        &["--as", "owner", "--output", "json"],
        &["access", "list", "--review"],
    ));
    assert_eq!(queue[0]["id"], id.as_str());
    let out = b.run(&[
        "--as",
        "owner",
        "access",
        "deny",
        &id,
        "--comment",
        "use the summary view",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Denied request"));

    // Access stays closed; the requester sees the decision and its comment.
    let e = b.fails(&["--as", "consumer", "sql", "SELECT * FROM sales.orders"]);
    assert!(e.contains("not found"), "{e}");
    let mine = run(args(&consumer, &["access", "list", "--status", "denied"]));
    assert_eq!(
        (
            &mine[0]["status"],
            &mine[0]["comment"],
            &mine[0]["decided_by"]
        ),
        (
            &json!("denied"),
            &json!("use the summary view"),
            &json!("owner")
        )
    );

    // A new request, cancelled by its requester (not by the owner).
    let r = run(args(
        &consumer,
        &[
            "access",
            "request",
            "dataset",
            "main.sales",
            "--reason",
            "again",
        ],
    ));
    let id = r["id"].as_str().unwrap().to_string();
    let e = b.fails(&["--as", "owner", "access", "cancel", &id]);
    assert!(e.contains("only consumer may cancel"), "{e}");
    assert_eq!(
        run(args(&consumer, &["access", "cancel", &id]))["status"],
        "cancelled"
    );
    let e = b.fails(&["--as", "owner", "access", "approve", &id]);
    assert!(e.contains("is cancelled"), "{e}");
    let e = b.fails(&["--as", "consumer", "access", "list", "--status", "maybe"]);
    assert!(e.contains("unknown request status 'maybe'"), "{e}");
}
