//! `basin serve`: the hub server.

use std::time::Duration;

use crate::cli::{Global, LogFormat, ServeArgs};

pub async fn run(g: &Global, args: ServeArgs) -> anyhow::Result<()> {
    use basin_server::auth::{JwksSource, OidcConfig};
    init_logs(args.log_format)?;
    let hub = super::open(g).await?;
    if let Some(password) =
        basin_server::ensure_admin(hub.catalog(), std::env::var("BASIN_ADMIN_PASSWORD").ok())
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?
    {
        println!(
            "basin: created user 'admin' with password {password}  (shown once; change it or set BASIN_ADMIN_PASSWORD)"
        );
    }
    let oidc = match (args.oidc_issuer, args.oidc_audience, args.oidc_jwks) {
        (Some(issuer), Some(audience), Some(jwks)) => Some(OidcConfig {
            issuer,
            audience,
            jwks: if jwks.starts_with("http://") || jwks.starts_with("https://") {
                JwksSource::Url(jwks)
            } else {
                JwksSource::File(jwks.into())
            },
            roles_claim: args.oidc_roles_claim,
            user_claim: args.oidc_user_claim,
            jwks_refresh: Duration::from_secs(args.oidc_jwks_refresh_secs),
            client: args
                .oidc_client_id
                .map(|id| basin_server::auth::OidcClient {
                    id,
                    secret: args.oidc_client_secret,
                    redirect_url: args.oidc_redirect_url,
                }),
        }),
        _ => None,
    };
    let config = basin_server::ServerConfig {
        listen: args.listen,
        oidc,
        session_ttl: Duration::from_secs(args.session_hours * 3600),
        max_body_bytes: args.max_body_mib * 1024 * 1024,
        query_timeout: Duration::from_secs(args.query_timeout_secs),
        max_rows: args.max_rows,
        memory_limit: g.memory_limit,
        max_concurrent_queries: args.max_concurrent_queries.map_or(0, |n| n as usize),
    };
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down; finishing requests in flight");
    };
    // Records acknowledged before a crash are committed before the server takes new ones.
    hub.open_streams(
        (args.stream_buffer_mib as usize) << 20,
        Duration::from_secs(args.idempotency_window_secs),
    )
    .await?;
    let maintainer = (args.maintenance_interval_secs > 0)
        .then(|| hub.spawn_maintainer(Duration::from_secs(args.maintenance_interval_secs)));
    let sources = hub.spawn_sources();
    let models = hub.spawn_models();
    let served = basin_server::serve(hub.clone(), config, shutdown).await;
    if let Some(m) = maintainer {
        m.abort();
    }
    sources.abort();
    models.abort();
    // The last step of a graceful shutdown: every buffered record is committed.
    let closed = hub.close_streams().await;
    served.map_err(|e| anyhow::anyhow!(e))?;
    closed.map_err(|e| anyhow::anyhow!("committing the buffered records at shutdown: {e} (they stay in the stream log and are committed at the next start)"))
}

/// What the server logs unless `BASIN_LOG` (an EnvFilter) says otherwise: Basin's own lines at
/// INFO (one per request, one per commit), every library at WARN. Libraries' INFO lines are
/// internals (delta-rs lists every file of a table's log on each commit, so their volume grows
/// with the table's history). The target `basin` covers every `basin_*` crate: EnvFilter
/// targets match by prefix.
const DEFAULT_LOG_FILTER: &str = "warn,basin=info";

fn init_logs(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("BASIN_LOG") {
        Ok(directives) => tracing_subscriber::EnvFilter::try_new(&directives).map_err(|e| {
            anyhow::anyhow!(
                "BASIN_LOG='{directives}' is not a log filter ({e}); write e.g. BASIN_LOG=debug or BASIN_LOG=warn,basin=debug,deltalake=info"
            )
        })?,
        Err(_) => DEFAULT_LOG_FILTER.into(),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        // One object per line, the event's fields at the top level beside timestamp, level,
        // target and message.
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
    Ok(())
}
