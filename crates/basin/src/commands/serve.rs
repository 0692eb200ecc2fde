//! `basin serve`: the hub server.

use std::time::Duration;

use crate::cli::{Global, ServeArgs};

pub async fn run(g: &Global, args: ServeArgs) -> anyhow::Result<()> {
    use basin_server::auth::{JwksSource, OidcConfig};
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BASIN_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
        eprintln!("basin: shutting down; finishing requests in flight");
    };
    basin_server::serve(hub, config, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
