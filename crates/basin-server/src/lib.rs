//! Basin's hub server: the REST API under `/api/v1` (with its OpenAPI document), authentication,
//! `/health` and `/metrics`.
//!
//! Every request other than `/health` and login is authenticated; every read of data goes
//! through basin-sql as the request's principal, so the policies of basin-catalog apply the same
//! way as in the CLI.

mod api;
pub mod auth;
mod error;
mod metrics;
mod query;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use basin_catalog::Catalog;
use basin_keys::Keystore;
use basin_sql::Engine;

pub use error::{ApiError, Problem};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub oidc: Option<auth::OidcConfig>,
    /// Lifetime of the tokens a login issues.
    pub session_ttl: Duration,
    /// Largest accepted request body (uploads included).
    pub max_body_bytes: usize,
    /// Longest a query may run.
    pub query_timeout: Duration,
    /// Most rows a query returns.
    pub max_rows: usize,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub catalog: Catalog,
    pub engine: Engine,
    pub keystore: Keystore,
    pub config: ServerConfig,
    pub oidc: Option<auth::Oidc>,
    pub limiter: auth::LoginLimiter,
    pub metrics: metrics::Metrics,
}

pub(crate) type State = Arc<AppState>;

/// Makes sure the administrator `admin` exists and can sign in: when it has no password yet
/// (a new catalog, or one only the CLI has used), it gets `BASIN_ADMIN_PASSWORD` or a generated
/// one, which is returned for the caller to print once.
pub async fn ensure_admin(
    catalog: &Catalog,
    password: Option<String>,
) -> Result<Option<String>, ApiError> {
    catalog.ensure_admin("admin").await?;
    if catalog.password_hash("admin").await?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (auth::generate_password(), true),
    };
    let hash = auth::hash_password(&password)
        .map_err(|e| ApiError::bad_request(format!("BASIN_ADMIN_PASSWORD: {e}")))?;
    catalog.set_password_hash("admin", &hash).await?;
    Ok(generated.then_some(password))
}

/// Serves until `shutdown` resolves; then stops accepting and lets in-flight requests (and the
/// writes they make) finish.
pub async fn serve(
    catalog: Catalog,
    keystore: Keystore,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let oidc = match &config.oidc {
        Some(c) => Some(auth::Oidc::load(c.clone()).await?),
        None => None,
    };
    let engine = Engine::new(basin_tables::Tables::new(
        catalog.clone(),
        Some(keystore.clone()),
    ));
    let state = Arc::new(AppState {
        catalog,
        engine,
        keystore,
        oidc,
        limiter: Default::default(),
        metrics: Default::default(),
        config: config.clone(),
    });
    let app = api::router(state).layer(DefaultBodyLimit::max(config.max_body_bytes));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Responses are streamed in small pieces: without TCP_NODELAY, Nagle's algorithm and the
    // client's delayed ACK hold each response back by about 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    tracing::info!("basin serving on http://{local}");
    println!("basin: listening on http://{local}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| format!("server error: {e}"))
}
