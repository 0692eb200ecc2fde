//! A small real OpenID Connect provider for the portal's SSO tests: discovery, an authorize
//! endpoint that approves at once as the user the test chose, a token endpoint that checks the
//! client, the single-use code, the redirect URI and the PKCE (S256) verifier, and a JWKS with
//! the RSA key it signs its ID tokens (RS256) with. It runs on the test's tokio runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::Digest as _;

/// The provider's signing key (test only) and its public half.
const KEY_PEM: &[u8] = include_bytes!("oidc_test_key.pem");
const KEY_N: &str = "qq2jjMPas_kyf70pqYTCxL5J5j2n0zWK0QE7ZbrYGUbOFU6wJeCP7R8iGLXtwjO_XqhHJD3Bqs5qMyIRs4QAtS1jECxGLXQx0cGIYqsaOj5-4mA2Muzx5SRHlJ1dgvIrWyxx3bJEw4RNgTzq0CvsZEavbaTk_EADHmI2LktFTzWOlWniGi9pZ6Kvf4CrZSyWxCNsqAYLVoatdnjY2fP39GO0_SLjYsZEOLRD9qeX6BbTsEPBuSQslP_QxxL8ygZz_XG3mzHCwjlef1lQGIuSqiTxpThOAS1tlslz3vDFdnaiKPgBb01T2NKa8CZ2fN-Qqqizh5mpFv2v7QrN6s2RQw";
const KEY_ID: &str = "rsa-test";

/// The client the portal is registered as.
pub const CLIENT_ID: &str = "basin-portal";
pub const CLIENT_SECRET: &str = "portal-client-secret";

/// A running provider (stopped when dropped).
pub struct Provider {
    /// `http://127.0.0.1:port` — the issuer, and the base of every endpoint.
    pub issuer: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    issuer: String,
    /// Who the next authorization signs in as: user name and roles claim.
    user: Option<(String, Vec<String>)>,
    /// Codes not yet redeemed.
    codes: HashMap<String, Pending>,
    /// ID tokens issued.
    issued: usize,
}

struct Pending {
    user: (String, Vec<String>),
    redirect_uri: String,
    challenge: String,
    nonce: String,
}

impl Provider {
    /// Starts the provider on a free loopback port.
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            issuer: issuer.clone(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Provider {
            issuer,
            shared,
            task,
        }
    }

    /// The URL of the key set (for `--oidc-jwks`).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The next sign-in is approved as `user` with these roles claimed.
    pub fn approve_as(&self, user: &str, roles: &[&str]) {
        self.shared.lock().unwrap().user = Some((
            user.to_string(),
            roles.iter().map(|r| r.to_string()).collect(),
        ));
    }

    /// How many ID tokens the provider has issued.
    pub fn issued(&self) -> usize {
        self.shared.lock().unwrap().issued
    }

    /// `basin serve` flags for this provider with the portal's client.
    pub fn serve_flags(&self) -> Vec<String> {
        [
            "--oidc-issuer",
            &self.issuer,
            "--oidc-audience",
            "basin",
            "--oidc-jwks",
            &self.jwks_url(),
            "--oidc-client-id",
            CLIENT_ID,
            "--oidc-client-secret",
            CLIENT_SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Ctx = State<Arc<Mutex<Shared>>>;

async fn discovery(State(s): Ctx) -> Json<Value> {
    let issuer = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn jwks() -> Json<Value> {
    Json(
        json!({"keys": [{"kty": "RSA", "kid": KEY_ID, "alg": "RS256", "use": "sig", "n": KEY_N, "e": "AQAB"}]}),
    )
}

fn refuse(status: StatusCode, error: &str, why: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": why})),
    )
        .into_response()
}

async fn authorize(State(s): Ctx, Query(q): Query<HashMap<String, String>>) -> Response {
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        );
    }
    let redirect_uri = field("redirect_uri");
    if !redirect_uri.starts_with("http://127.0.0.1:") || !redirect_uri.ends_with("/auth/callback") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is not registered",
        );
    }
    let to_client =
        |params: String| Redirect::to(&format!("{redirect_uri}?{params}")).into_response();
    let state = field("state");
    if field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").len() < 43
        || field("nonce").is_empty()
        || !field("scope").split(' ').any(|s| s == "openid")
    {
        return to_client(format!("error=invalid_request&state={state}"));
    }
    let mut shared = s.lock().unwrap();
    let Some(user) = shared.user.clone() else {
        return to_client(format!("error=access_denied&state={state}"));
    };
    let mut code = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut code);
    let code = URL_SAFE_NO_PAD.encode(code);
    shared.codes.insert(
        code.clone(),
        Pending {
            user,
            redirect_uri: redirect_uri.clone(),
            challenge: field("code_challenge"),
            nonce: field("nonce"),
        },
    );
    to_client(format!("code={code}&state={state}"))
}

async fn token(
    State(s): Ctx,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let client_ok = match basic {
        Some(b) => b == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => field("client_id") == CLIENT_ID && field("client_secret") == CLIENT_SECRET,
    };
    if !client_ok {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    if field("grant_type") != "authorization_code" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let mut shared = s.lock().unwrap();
    // Single use: a code is gone once presented, right or wrong.
    let Some(pending) = shared.codes.remove(&field("code")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if pending.redirect_uri != field("redirect_uri") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs",
        );
    }
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != pending.challenge {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let now = chrono_now();
    let claims = json!({
        "iss": shared.issuer, "aud": CLIENT_ID, "sub": pending.user.0,
        "preferred_username": pending.user.0, "roles": pending.user.1,
        "nonce": pending.nonce, "iat": now, "exp": now + 300,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM).expect("the test RSA key");
    let id_token = jsonwebtoken::encode(&header, &claims, &key).expect("signing an ID token");
    shared.issued += 1;
    Json(json!({"access_token": "unused", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
