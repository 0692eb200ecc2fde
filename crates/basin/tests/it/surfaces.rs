//! End-to-end: surfaces that do not lie (issue 13) — request bodies with unknown fields are
//! refused, `--output json` is honoured by every command that prints, passwords change and
//! users come back, and a data directory can be copied and a hub moved.

use serde_json::json;

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
            assert_eq!(a.body["code"], "unknown_field", "{method} {path}: {}", a.text);
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
        a.body["detail"].as_str().unwrap().contains("did you mean 'limit'"),
        "{}",
        a.text
    );
}
