//! End-to-end: keys of the real `basin serve` — rotation of a hub's PII key through REST, and
//! OIDC with the provider's key set fetched from a URL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Basin;
use crate::server::{
    ADMIN_PASSWORD, CUSTOMER_EMAILS, Server, clear_pii_on_disk, jwks, jwt, jwt_signed, load_sales,
    problem, seed, serve_command, tag_emails_pii,
};

const ROTATE_MAIN: &str = "/api/v1/hubs/main/keys/rotate";

/// The email column of sales.customers as `token` sees it, by id.
async fn emails(s: &Server, token: &str) -> Vec<String> {
    s.rows(token, "SELECT email FROM sales.customers ORDER BY id")
        .await
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_string())
        .collect()
}

/// Commits of `main.sales.<table>`, newest first.
async fn history(s: &Server, token: &str, table: &str) -> Vec<Value> {
    let a = s
        .call(
            "GET",
            &format!("/api/v1/hubs/main/datasets/sales/tables/{table}/history"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["history"].as_array().unwrap().clone()
}

/// The current key version of hub `main`, read from the keystore file.
fn key_version(basin: &Basin) -> i64 {
    let text = std::fs::read_to_string(basin.data_dir().join("keys/hub-main.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["current"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_over_http() {
    let basin = Basin::new();
    seed(&basin);
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let alice = s.login("alice", "alice-password").await;
    let carol = s.login("carol", "carol-password").await;
    for statement in [
        "GRANT SELECT ON DATASET sales TO analyst",
        "GRANT SELECT, UNMASK ON DATASET sales TO auditor",
    ] {
        let a = s.sql(&admin, statement).await;
        assert_eq!(a.status, 200, "{statement}: {}", a.text);
    }
    tag_emails_pii(&s, &admin).await;
    load_sales(&s, &admin).await;

    let masked_before = emails(&s, &alice).await;
    assert!(
        masked_before.iter().all(|e| e.starts_with("enc:v1:")),
        "{masked_before:?}"
    );
    assert_eq!(emails(&s, &carol).await, CUSTOMER_EMAILS);
    let versions_before: BTreeMap<&str, i64> = BTreeMap::from([
        ("customers", s.table_version(&admin, "customers").await),
        ("orders", s.table_version(&admin, "orders").await),
    ]);
    let commits_before = history(&s, &admin, "customers").await.len();
    assert_eq!(key_version(&basin), 1);

    // ---- refusals change nothing ------------------------------------------------------------
    let denied = s.call("POST", ROTATE_MAIN, Some(&alice), None).await;
    assert!(
        [403, 404].contains(&denied.status),
        "a non-admin may not rotate: {}",
        denied.text
    );
    problem(&denied, denied.status);
    problem(
        &s.call("POST", "/api/v1/hubs/Main!/keys/rotate", Some(&admin), None)
            .await,
        400,
    );
    problem(
        &s.call(
            "POST",
            "/api/v1/hubs/nosuch/keys/rotate",
            Some(&admin),
            None,
        )
        .await,
        404,
    );
    problem(&s.call("POST", ROTATE_MAIN, None, None).await, 401);
    assert_eq!(key_version(&basin), 1);
    assert!(
        !basin.data_dir().join("keys/hub-nosuch.json").exists(),
        "a key was made for a hub that does not exist"
    );
    assert_eq!(emails(&s, &alice).await, masked_before);
    assert_eq!(
        s.table_version(&admin, "customers").await,
        versions_before["customers"]
    );

    // ---- the admin rotates: new key version, every PII table rewritten in one commit ---------
    let rotated = s.call("POST", ROTATE_MAIN, Some(&admin), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.body["hub"], "main", "{}", rotated.text);
    assert_eq!(rotated.body["key_version"], 2, "{}", rotated.text);
    assert_eq!(key_version(&basin), 2);
    let reencrypted: BTreeMap<String, i64> = rotated.body["reencrypted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<String, i64> = versions_before
        .iter()
        .map(|(table, v)| (format!("main.sales.{table}"), v + 1))
        .collect();
    assert_eq!(
        reencrypted, expected,
        "only the tables with PII, each one commit further"
    );
    assert_eq!(
        s.table_version(&admin, "customers").await,
        versions_before["customers"] + 1
    );
    let commits = history(&s, &admin, "customers").await;
    assert_eq!(commits.len(), commits_before + 1, "{commits:?}");
    assert_eq!(commits[0]["version"], versions_before["customers"] + 1);
    assert!(
        commits[0]["parameters"]
            .as_str()
            .unwrap()
            .contains("encrypt pii"),
        "{:?}",
        commits[0]
    );

    // ---- readers: clear values for UNMASK, new tokens for the others, joins still match ------
    assert_eq!(emails(&s, &carol).await, CUSTOMER_EMAILS);
    let masked_after = emails(&s, &alice).await;
    for (after, before) in masked_after.iter().zip(&masked_before) {
        assert!(after.starts_with("enc:v2:"), "{masked_after:?}");
        assert_ne!(after, before);
    }
    let join = "SELECT o.order_id, c.name FROM sales.orders o JOIN sales.customers c ON o.customer_email = c.email ORDER BY o.order_id";
    for reader in [&alice, &carol] {
        let names: Vec<String> = s
            .rows(reader, join)
            .await
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["Ann", "Bob", "Cem"]);
    }
    // Data written under the old key still decrypts.
    let old = s
        .rows(
            &carol,
            &format!(
                "SELECT email FROM sales.customers VERSION AS OF {} ORDER BY id",
                versions_before["customers"]
            ),
        )
        .await;
    assert_eq!(old[0]["email"], CUSTOMER_EMAILS[0]);
    let clear_found = clear_pii_on_disk(&basin);
    assert!(clear_found.is_empty(), "clear PII on disk: {clear_found:?}");

    // ---- audit ------------------------------------------------------------------------------
    let audit = s
        .rows(
            &admin,
            "SELECT principal, target, outcome FROM system.audit WHERE action = 'key.rotate'",
        )
        .await;
    let has = |who: &str, target: &str, outcome: &str| {
        audit
            .iter()
            .any(|r| r["principal"] == who && r["target"] == target && r["outcome"] == outcome)
    };
    assert!(has("admin", "main", "ok"), "{audit:?}");
    assert!(has("alice", "main", "denied"), "{audit:?}");
    assert!(has("admin", "nosuch", "denied"), "{audit:?}");
}

/// A stand-in for an identity provider's key endpoint: on a free loopback port, answers
/// `GET /jwks.json` with [`jwks`] and anything else with 404; counts the key-set requests.
pub(crate) struct JwksServer {
    pub(crate) base: String,
    pub(crate) hits: Arc<AtomicUsize>,
    key_set: Arc<Mutex<String>>,
}

impl JwksServer {
    pub(crate) fn start() -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let key_set = Arc::new(Mutex::new(jwks().to_string()));
        let served = key_set.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let (status, body) = if request_line.starts_with("GET /jwks.json ") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", served.lock().unwrap().clone())
                } else {
                    ("404 Not Found", "{\"error\": \"not found\"}".to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        JwksServer {
            base,
            hits,
            key_set,
        }
    }

    /// From now on, serves `key_set` (the provider rotated its keys).
    pub(crate) fn rotate(&self, key_set: Value) {
        *self.key_set.lock().unwrap() = key_set.to_string();
    }
}

/// Starts `basin serve` with the key set at `jwks`, expecting it to give up: returns its stderr.
fn refused_start(basin: &Basin, jwks: &str) -> String {
    let mut child = serve_command(basin, jwks, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("basin serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("basin serve with the JWKS at {jwks} neither started nor gave up within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !status.success(),
        "basin serve with the JWKS at {jwks} exited successfully: {stderr}"
    );
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_with_jwks_url() {
    let basin = Basin::new();
    let idp = JwksServer::start();
    let s = Server::start_with_jwks(&basin, &format!("{}/jwks.json", idp.base), &[]);
    assert!(
        idp.hits.load(Ordering::SeqCst) >= 1,
        "the key set was not fetched"
    );

    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://idp.test", "aud": "basin", "exp": now + 600, "preferred_username": "dora"});
    let dora = jwt(claims.clone(), jsonwebtoken::Algorithm::HS256);
    let hubs = s.call("GET", "/api/v1/hubs", Some(&dora), None).await;
    assert_eq!(hubs.status, 200, "{}", hubs.text);
    let me = s.rows(&dora, "SELECT current_user AS me").await;
    assert_eq!(me[0]["me"], "dora", "{me:?}");

    let forged = jwt_signed(
        claims.clone(),
        jsonwebtoken::Algorithm::HS256,
        b"another-secret-that-the-provider-never-had",
    );
    let refused = s.call("GET", "/api/v1/hubs", Some(&forged), None).await;
    problem(&refused, 401);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        refused.text
    );

    // The provider rotates its keys: a token with the new key id makes the server fetch the key
    // set again (at most every few seconds), and the retired key stops working.
    const NEXT_SECRET: &[u8] = b"the-provider-s-next-hs256-secret-0123456789";
    let next = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("next".into());
        let key = jsonwebtoken::EncodingKey::from_secret(NEXT_SECRET);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    problem(&s.call("GET", "/api/v1/hubs", Some(&next), None).await, 401);
    idp.rotate(
        json!({"keys": [{"kty": "oct", "kid": "next", "alg": "HS256",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(NEXT_SECRET)}]}),
    );
    let fetches = idp.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let rotated = s.call("GET", "/api/v1/hubs", Some(&next), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(idp.hits.load(Ordering::SeqCst), fetches + 1);
    problem(&s.call("GET", "/api/v1/hubs", Some(&dora), None).await, 401);
    for _ in 0..5 {
        problem(
            &s.call("GET", "/api/v1/hubs", Some(&forged_kid(&claims)), None)
                .await,
            401,
        );
    }
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        fetches + 1,
        "unknown key ids must not make the server fetch the key set again at once"
    );

    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let queries = s
        .rows(
            &admin,
            "SELECT outcome FROM system.audit WHERE principal = 'dora' AND action = 'query'",
        )
        .await;
    assert!(
        queries.iter().any(|r| r["outcome"] == "ok"),
        "dora's query is not attributed to her: {queries:?}"
    );
}

/// A token naming a key id the provider never had.
fn forged_kid(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("no-such-key".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(b"whatever"),
    )
    .unwrap()
}

#[test]
fn serve_refuses_to_start_without_its_jwks() {
    let basin = Basin::new();
    // A port nobody listens on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}/jwks.json");
    let stderr = refused_start(&basin, &url);
    assert!(
        stderr.contains("JWKS") && stderr.contains(&url) && stderr.contains("refused"),
        "the error does not name the JWKS and why: {stderr}"
    );

    // Connections are accepted (by the kernel's backlog), but nothing ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", silent.local_addr().unwrap());
    let stderr = refused_start(&basin, &url);
    assert!(
        stderr.contains("JWKS") && stderr.contains("no answer within"),
        "the error does not name the JWKS and why: {stderr}"
    );
    drop(silent);

    // Reachable, but the key set is not there.
    let idp = JwksServer::start();
    let url = format!("{}/missing.json", idp.base);
    let stderr = refused_start(&basin, &url);
    assert!(
        stderr.contains("JWKS") && stderr.contains("404"),
        "the error does not name the JWKS: {stderr}"
    );
}
