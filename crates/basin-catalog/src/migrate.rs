//! Schema migrations: numbered SQL files embedded in the binary, applied once each, in order.

use sqlx::AnyPool;

use crate::Result;
use crate::error::DbContext;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "core", include_str!("../migrations/0001_core.sql")),
    (2, "access", include_str!("../migrations/0002_access.sql")),
    (3, "views", include_str!("../migrations/0003_views.sql")),
    (4, "leases", include_str!("../migrations/0004_leases.sql")),
    (
        5,
        "access_requests",
        include_str!("../migrations/0005_access_requests.sql"),
    ),
    (
        6,
        "web_sessions",
        include_str!("../migrations/0006_web_sessions.sql"),
    ),
    (
        7,
        "query_history",
        include_str!("../migrations/0007_query_history.sql"),
    ),
    (
        8,
        "maintenance",
        include_str!("../migrations/0008_maintenance.sql"),
    ),
    (9, "streams", include_str!("../migrations/0009_streams.sql")),
    (
        10,
        "sources",
        include_str!("../migrations/0010_sources.sql"),
    ),
    (11, "models", include_str!("../migrations/0011_models.sql")),
    (
        12,
        "model refresh",
        include_str!("../migrations/0012_model_refresh.sql"),
    ),
    (
        13,
        "project grants",
        include_str!("../migrations/0013_project_grants.sql"),
    ),
];

/// Applies every migration that the database has not seen yet, each in its own transaction.
pub(crate) async fn run(pool: &AnyPool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS basin_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await
    .ctx(|| "creating the migrations table".into())?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.ctx(|| "starting a migration".into())?;
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM basin_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .ctx(|| "reading applied migrations".into())?;
        if done.is_some() {
            continue;
        }
        for statement in sql
            .split(';')
            .map(str::trim)
            .filter(|s| !strip_comments(s).is_empty())
        {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .ctx(|| format!("applying migration {version} ({name})"))?;
        }
        sqlx::query("INSERT INTO basin_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(*name)
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(&mut *tx)
            .await
            .ctx(|| format!("recording migration {version}"))?;
        tx.commit()
            .await
            .ctx(|| format!("committing migration {version}"))?;
    }
    Ok(())
}

fn strip_comments(statement: &str) -> String {
    statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}
