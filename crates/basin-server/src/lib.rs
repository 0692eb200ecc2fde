//! Basin's hub server: the REST API under `/api/v1` (with its OpenAPI document), authentication,
//! `/health` and `/metrics`, and the data portal's HTML pages at `/` (see `portal`).
//!
//! Every request other than `/health` and login is authenticated; every read of data goes
//! through basin-sql as the request's principal, so the policies of basin-catalog apply the same
//! way as in the CLI.

mod api;
pub mod auth;
mod error;
pub mod limits;
mod memory;
mod metrics;
mod portal;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use basin_catalog::Catalog;
use basin_service::Hub;
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
    /// Bytes one query may hold in its memory pool; `None`: half the machine's memory divided
    /// by the number of concurrent queries.
    pub memory_limit: Option<usize>,
    /// Queries run at once; `0`: twice the number of cores. More wait briefly, then get 503.
    pub max_concurrent_queries: usize,
}

impl ServerConfig {
    /// The number of queries that run at once.
    pub fn query_concurrency(&self) -> usize {
        match self.max_concurrent_queries {
            0 => 2 * limits::cores(),
            n => n,
        }
    }

    /// The memory limit of one query: given, or half the machine's memory shared by the
    /// concurrent queries (2 GiB when the machine's memory is unknown).
    pub fn query_memory_limit(&self) -> usize {
        self.memory_limit
            .unwrap_or_else(|| match Engine::physical_memory() {
                Some(m) => usize::try_from(m / 2 / self.query_concurrency() as u64)
                    .unwrap_or(usize::MAX)
                    .max(64 << 20),
                None => Engine::default_memory_limit(),
            })
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub hub: Hub,
    pub config: ServerConfig,
    pub oidc: Option<auth::Oidc>,
    pub limiter: auth::LoginLimiter,
    pub metrics: metrics::Metrics,
    /// Queries running at once (memory per query × slots bounds the queries' memory).
    pub query_slots: limits::Slots,
    /// Password hashes computed at once (argon2 takes ~20 MiB and a core for a while).
    pub hash_slots: limits::Slots,
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
        None => (basin_service::credentials::generate_password(), true),
    };
    let hash = basin_service::credentials::hash_password(&password)
        .map_err(|e| ApiError::bad_request(format!("BASIN_ADMIN_PASSWORD: {e}")))?;
    catalog.set_password_hash("admin", &hash).await?;
    Ok(generated.then_some(password))
}

/// The whole HTTP application over `hub` (routes, authentication, limits), without a listener:
/// [`serve`] runs it on a socket; tests and fuzz targets call it in-process.
pub async fn app(hub: Hub, config: ServerConfig) -> Result<axum::Router, String> {
    let oidc = match &config.oidc {
        Some(c) => Some(auth::Oidc::load(c.clone()).await?),
        None => None,
    };
    let memory_limit = config.query_memory_limit();
    let concurrency = config.query_concurrency();
    let hub = hub.with_memory_limit(memory_limit);
    memory::release_freed_memory();
    tracing::info!(
        memory_limit = %Engine::format_bytes(memory_limit),
        concurrency,
        "query limits"
    );
    let state = Arc::new(AppState {
        hub,
        oidc,
        limiter: Default::default(),
        metrics: Default::default(),
        query_slots: limits::Slots::new(concurrency, limits::QUERY_QUEUE_WAIT, "queries"),
        hash_slots: limits::Slots::new(limits::cores(), limits::HASH_QUEUE_WAIT, "logins"),
        config,
    });
    Ok(api::router(state))
}

/// Serves until `shutdown` resolves; then stops accepting and lets in-flight requests (and the
/// writes they make) finish.
pub async fn serve(
    hub: Hub,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = app(hub, config.clone()).await?;
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
