//! `basin serve` on a free loopback port, HTTP helpers and problem+json assertions.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::basin::Basin;

/// The password of the `admin` user that `basin serve` creates (`BASIN_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "admin-secret-1";
/// The test identity provider's HS256 secret (kid `test`, see [`jwks`]).
pub const JWT_SECRET: &[u8] = b"an-hs256-secret-for-tests-only-0123456789";

/// A running `basin serve`, killed when dropped. Its HTTP helpers are those of [`Api`], bound to a
/// client of the runtime that started it; a test on another runtime uses [`Server::client`].
pub struct Server {
    child: Option<Child>,
    pid: u32,
    api: Api,
}

/// HTTP calls to a running server.
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
}

/// An HTTP answer: status, content type, `Retry-After`, the body as JSON (`Null` when it is not)
/// and as text.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Value,
    pub text: String,
}

/// The test identity provider's key set: one HS256 key ([`JWT_SECRET`]) with kid `test`.
pub fn jwks() -> Value {
    json!({"keys": [{"kty": "oct", "kid": "test", "alg": "HS256",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(JWT_SECRET)}]})
}

/// `basin serve` on a free loopback port, accepting JWTs of issuer `https://idp.test` for
/// audience `basin` whose keys come from `jwks` (a file path or an http(s) URL).
pub fn serve_command(basin: &Basin, jwks: &str, extra: &[&str]) -> Command {
    let mut command = basin.command();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--oidc-issuer",
            "https://idp.test",
            "--oidc-audience",
            "basin",
            "--oidc-jwks",
            jwks,
        ])
        .args(extra)
        .env("BASIN_ADMIN_PASSWORD", ADMIN_PASSWORD);
    command
}

impl Server {
    /// Starts `basin serve` with the key set of [`jwks`] in a file.
    pub fn start(basin: &Basin, extra: &[&str]) -> Server {
        let jwks_path = basin.file("jwks.json", &jwks().to_string());
        Server::start_with_jwks(basin, &jwks_path, extra)
    }

    /// Starts `basin serve` with the key set at `jwks` (a file path or URL); waits until it listens.
    pub fn start_with_jwks(basin: &Basin, jwks: &str, extra: &[&str]) -> Server {
        let mut command = serve_command(basin, jwks, extra);
        command.stderr(Stdio::null());
        Server::spawn(command)
    }

    /// Runs a `basin serve` command (see [`serve_command`]; its stderr as the caller set it);
    /// waits until it listens.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("basin serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("basin serve printed its address")
                .unwrap();
            if let Some(u) = line.strip_prefix("basin: listening on ") {
                break u.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            pid: child.id(),
            child: Some(child),
            api: Api {
                url,
                http: reqwest::Client::new(),
            },
        }
    }

    /// A fresh client of this server, for a test that runs on another tokio runtime than the one
    /// that started it (a pooled connection does not outlive its runtime).
    pub fn client(&self) -> Api {
        Api {
            url: self.api.url.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// Reads an answer (see [`Api::answer`]).
    pub async fn answer(resp: reqwest::Response) -> Answer {
        Api::answer(resp).await
    }

    /// Asks the server to stop, as a service manager does (SIGTERM).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "cannot signal basin serve");
    }

    /// Waits (at most 30 s) for the server to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self
            .child
            .as_mut()
            .expect("the server's process is held here, not by kill_at_exit");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "basin serve did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// For a server kept in a `static` (which is never dropped) and shared by several tests: the
    /// process is killed, and `dir` (its data, if any) removed, when the test binary exits.
    pub fn kill_at_exit(&mut self, dir: Option<PathBuf>) {
        let mut registry = AT_EXIT.lock().unwrap();
        if let Some(child) = self.child.take() {
            registry.0.push(child);
        }
        registry.1.extend(dir);
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // SAFETY: `atexit` of the C library the standard library links; `reap` is a plain
            // `extern "C" fn` that does not unwind.
            let registered = unsafe { atexit(reap) };
            assert_eq!(registered, 0, "cannot register the at-exit clean-up");
        });
    }
}

impl Deref for Server {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Processes to kill and folders to remove when the test binary exits.
static AT_EXIT: Mutex<(Vec<Child>, Vec<PathBuf>)> = Mutex::new((Vec::new(), Vec::new()));

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn reap() {
    let Ok(mut registry) = AT_EXIT.try_lock() else {
        return;
    };
    for child in registry.0.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    for dir in &registry.1 {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req.send().await.unwrap()).await
    }

    /// Reads status, content type and body of a response.
    pub async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            retry_after,
            body,
            text,
        }
    }

    /// Logs in (it must succeed) and returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let a = self
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"user": user, "password": password})),
            )
            .await;
        assert_eq!(a.status, 200, "login {user}: {}", a.text);
        a.body["token"].as_str().unwrap().to_string()
    }

    /// Runs SQL; returns the answer (rows under body["rows"]).
    pub async fn sql(&self, token: &str, sql: &str) -> Answer {
        self.call(
            "POST",
            "/api/v1/query",
            Some(token),
            Some(json!({"sql": sql})),
        )
        .await
    }

    /// Runs SQL (it must succeed); returns its rows as JSON objects.
    pub async fn rows(&self, token: &str, sql: &str) -> Vec<Value> {
        let a = self.sql(token, sql).await;
        assert_eq!(a.status, 200, "{sql}: {}", a.text);
        // A check over a truncated answer would see rows missing that are there.
        assert_ne!(a.body["truncated"], true, "{sql}: the answer was truncated");
        a.body["rows"].as_array().unwrap().clone()
    }

    /// The first value of the first row (a `count(*)`).
    pub async fn count(&self, token: &str, sql: &str) -> i64 {
        let rows = self.rows(token, sql).await;
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_i64()
            .unwrap()
    }

    /// Uploads a CSV file through the REST API to `table`: `hub.dataset.table`,
    /// `dataset.table` (hub `main`) or `table` (dataset `main.sales`).
    pub async fn upload_csv(
        &self,
        token: &str,
        table: &str,
        csv: impl Into<reqwest::Body>,
    ) -> Answer {
        let resp = self
            .http
            .post(format!(
                "{}{}/files?format=csv",
                self.url,
                table_path(table)
            ))
            .bearer_auth(token)
            .body(csv)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    /// The current Delta version of `table` (named as in [`Api::upload_csv`]).
    pub async fn table_version(&self, token: &str, table: &str) -> i64 {
        let a = self
            .call("GET", &table_path(table), Some(token), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["stats"]["version"].as_i64().unwrap()
    }
}

/// The REST path of a table: `hub.dataset.table`, `dataset.table` (hub `main`) or `table`
/// (dataset `main.sales`).
pub fn table_path(table: &str) -> String {
    let parts: Vec<&str> = table.split('.').collect();
    let (hub, dataset, table) = match parts[..] {
        [t] => ("main", "sales", t),
        [d, t] => ("main", d, t),
        [h, d, t] => (h, d, t),
        _ => panic!("not a table name: {table}"),
    };
    format!("/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}")
}

/// Asserts that `a` is an `application/problem+json` answer with `status`, a `code` and a
/// `detail`; returns it.
pub fn problem(a: &Answer, status: u16) -> &Answer {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.content_type, "application/problem+json", "{}", a.text);
    assert!(
        a.body["code"].is_string() && a.body["detail"].is_string(),
        "{}",
        a.text
    );
    a
}

/// A JWT with kid `test`, signed with the test provider's secret.
pub fn jwt(claims: Value, alg: jsonwebtoken::Algorithm) -> String {
    jwt_signed(claims, alg, JWT_SECRET)
}

/// A JWT with kid `test`, signed with `secret`.
pub fn jwt_signed(claims: Value, alg: jsonwebtoken::Algorithm, secret: &[u8]) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some("test".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}
