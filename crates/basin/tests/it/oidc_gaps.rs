//! End-to-end: OIDC bearer JWTs against the real `basin serve` — a roles claim cannot borrow a
//! user's grants, a key the provider withdraws stops working, and `nbf` is checked.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, jwt, problem, seed};
use crate::server_keys::JwksServer;

/// Claims of a valid token for `user` with `roles`.
fn claims(user: &str, roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": "https://idp.test", "aud": "basin", "exp": now + 600,
        "preferred_username": user, "roles": roles})
}

fn token(claims: Value) -> String {
    jwt(claims, jsonwebtoken::Algorithm::HS256)
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_claim_cannot_name_a_user() {
    let basin = Basin::new();
    seed(&basin);
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    for statement in [
        // bob's personal grant, and one for the role analyst.
        "GRANT SELECT ON TABLE hr.salaries TO bob",
        "GRANT SELECT ON TABLE sales.products TO analyst",
    ] {
        let a = s.sql(&admin, statement).await;
        assert_eq!(a.status, 200, "{statement}: {}", a.text);
    }
    let bob = s.login("bob", "bob-password").await;
    assert_eq!(
        s.count(&bob, "SELECT count(*) AS n FROM hr.salaries").await,
        2
    );

    // A federated identity claiming the user bob as a role gets nothing of bob's.
    let eve = token(claims(
        "eve",
        &["bob", "no_such_role", "Not A Name!", "analyst"],
    ));
    problem(
        &s.sql(&eve, "SELECT count(*) AS n FROM hr.salaries").await,
        404,
    );
    // Its real roles still count.
    assert_eq!(
        s.count(&eve, "SELECT count(*) AS n FROM sales.products")
            .await,
        2
    );
    let me = s.rows(&eve, "SELECT current_user AS me").await;
    assert_eq!(me[0]["me"], "eve");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_key_is_refused_after_the_refresh() {
    let basin = Basin::new();
    let idp = JwksServer::start();
    let s = Server::start_with_jwks(
        &basin,
        &format!("{}/jwks.json", idp.base),
        &["--oidc-jwks-refresh-secs", "1"],
    );
    let dora = token(claims("dora", &[]));
    assert_eq!(
        s.call("GET", "/api/v1/hubs", Some(&dora), None)
            .await
            .status,
        200
    );
    let fetches = idp.hits.load(Ordering::SeqCst);

    // The provider withdraws key `test` (no token ever names an unknown key here).
    const NEXT_SECRET: &[u8] = b"the-provider-s-next-hs256-secret-0123456789";
    idp.rotate(
        json!({"keys": [{"kty": "oct", "kid": "next", "alg": "HS256",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(NEXT_SECRET)}]}),
    );
    // Refreshes are at most every 5 s, whatever the TTL.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let refused = s.call("GET", "/api/v1/hubs", Some(&dora), None).await;
    problem(&refused, 401);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown key"),
        "{}",
        refused.text
    );
    assert!(idp.hits.load(Ordering::SeqCst) > fetches, "no refresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn not_before_is_checked() {
    let basin = Basin::new();
    let s = Server::start(&basin, &[]);
    let now = chrono::Utc::now().timestamp();
    let with_nbf = |nbf: i64| {
        let mut c = claims("dora", &[]);
        c["nbf"] = json!(nbf);
        token(c)
    };
    let early = s
        .call("GET", "/api/v1/hubs", Some(&with_nbf(now + 600)), None)
        .await;
    problem(&early, 401);
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("not valid yet"),
        "{}",
        early.text
    );
    // Past, and slightly ahead (clock skew within the leeway), are accepted.
    for nbf in [now - 60, now + 5] {
        let a = s
            .call("GET", "/api/v1/hubs", Some(&with_nbf(nbf)), None)
            .await;
        assert_eq!(a.status, 200, "nbf {nbf}: {}", a.text);
    }
}
