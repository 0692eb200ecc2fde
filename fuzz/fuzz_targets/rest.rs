//! REST request bodies: the real router (`basin_server::app`), called in-process with any body
//! on every endpoint that reads one — as the administrator (who reaches every validation) or,
//! for queries and uploads, as the restricted analyst. Never a 5xx, never a panic, and every
//! refusal (4xx) a problem document.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[path = "world.rs"]
mod world;

const TABLE: &str = "/api/v1/hubs/main/datasets/sales/tables/orders";

/// Endpoints that read a body: method, path, whether the analyst calls it (else the admin).
const ENDPOINTS: &[(&str, &str, bool)] = &[
    ("POST", "/api/v1/query", true),
    ("POST", "/api/v1/query", false),
    ("POST", "/api/v1/login", false),
    ("POST", "/api/v1/users", false),
    ("PUT", "/api/v1/users/analyst/attributes", false),
    ("PUT", "/api/v1/users/analyst/password", true),
    ("POST", "/api/v1/roles", false),
    ("POST", "/api/v1/roles/readers/members", false),
    ("POST", "/api/v1/grants", false),
    ("DELETE", "/api/v1/grants", false),
    ("PUT", "/api/v1/policies/row-filters", false),
    ("DELETE", "/api/v1/policies/row-filters", false),
    ("PUT", "/api/v1/policies/masks", false),
    ("DELETE", "/api/v1/policies/masks", false),
    ("PUT", "/api/v1/tags", false),
    ("PUT", "/api/v1/tags/classification", false),
    ("POST", "/api/v1/tokens", false),
    ("PATCH", "/api/v1/hubs/main", false),
    ("PATCH", "/api/v1/hubs/main/datasets/sales", false),
    ("PATCH", TABLE, false),
    (
        "POST",
        "/api/v1/hubs/main/datasets/sales/tables/orders/files?format=csv",
        true,
    ),
    (
        "POST",
        "/api/v1/hubs/main/datasets/sales/tables/orders/files?format=ndjson",
        false,
    ),
    (
        "POST",
        "/api/v1/hubs/main/datasets/sales/tables/fresh/files?format=json",
        false,
    ),
];

struct Rest {
    world: world::World,
    app: axum::Router,
    admin: String,
    analyst: String,
}

fn rest() -> Rest {
    let world = world::make();
    let config = basin_server::ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        oidc: None,
        session_ttl: Duration::from_secs(24 * 3600),
        max_body_bytes: 1 << 20,
        query_timeout: Duration::from_secs(5),
        max_rows: 1000,
        memory_limit: Some(64 << 20),
        max_concurrent_queries: 2,
    };
    let (app, admin, analyst) = world.runtime.block_on(async {
        basin_server::ensure_admin(world.hub.catalog(), Some(world::ADMIN_PASSWORD.into()))
            .await
            .unwrap();
        let app = basin_server::app(world.hub.clone(), config).await.unwrap();
        let mut tokens = Vec::new();
        for (user, password) in [
            ("admin", world::ADMIN_PASSWORD),
            ("analyst", world::ANALYST_PASSWORD),
        ] {
            let body = serde_json::json!({"user": user, "password": password}).to_string();
            let (status, _, text) = call(&app, "POST", "/api/v1/login", None, body.into()).await;
            assert_eq!(status, 200, "login {user}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            tokens.push(v["token"].as_str().unwrap().to_string());
        }
        (app, tokens.remove(0), tokens.remove(0))
    });
    Rest {
        world,
        app,
        admin,
        analyst,
    }
}

/// Inputs between two compactions of the world.
const COMPACT_EVERY: usize = 200;

/// Compacts every table of the world, as the server's maintainer does.
async fn compact(world: &world::World) {
    let admin = world.hub.user_session("admin", &[], "fuzz").await.unwrap();
    for table in ["sales.orders", "sales.fresh", "sales.secret"] {
        let table = basin_core::TableRef::parse(table).unwrap();
        // A table the fuzzer dropped or never created needs nothing.
        let _ = admin
            .optimize_table(&table, &basin_service::OptimizeOptions::default())
            .await;
    }
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, String) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let mut request = request.body(Body::from(body)).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fuzz_target!(|data: &[u8]| {
    static REST: OnceLock<Rest> = OnceLock::new();
    let rest = REST.get_or_init(rest);
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, path, as_analyst) = ENDPOINTS[pick as usize % ENDPOINTS.len()];
    let token = if as_analyst {
        &rest.analyst
    } else {
        &rest.admin
    };
    // The world keeps every write the fuzzer sends: after a few thousand inputs, 800 commits
    // of tiny files made the analyst's filtered `SELECT *` pass the 5 s query limit. Compact it
    // now and then, as a server's maintainer does.
    static INPUTS: AtomicUsize = AtomicUsize::new(0);
    if INPUTS.fetch_add(1, Ordering::Relaxed) % COMPACT_EVERY == COMPACT_EVERY - 1 {
        rest.world.runtime.block_on(compact(&rest.world));
    }
    let (status, content_type, text) =
        rest.world
            .runtime
            .block_on(call(&rest.app, method, path, Some(token), body.to_vec()));
    assert!(status < 500, "{method} {path}: {status} {text}");
    // A refusal says what is wrong, as a problem document.
    if status >= 400 {
        let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            content_type == "application/problem+json"
                && problem["code"].is_string()
                && problem["detail"].is_string(),
            "{method} {path}: {status} without a problem body ({content_type}): {text}"
        );
    }
});
