//! `basin backup DIR` and `basin restore DIR`.

use std::path::Path;

use basin_service::{BackupReport, HubConfig, Session};

use crate::cli::Global;

pub async fn backup(g: &Global, session: &Session, dir: &Path) -> anyhow::Result<()> {
    let report = session.backup(dir).await?;
    let message = format!(
        "Backed up {} table(s) as of {} into {} ({} files, {}).",
        report.tables.len(),
        report.taken_at,
        dir.display(),
        report.files.len(),
        size(&report)
    );
    super::done(g, &message, summary(&report))
}

pub async fn restore(g: &Global, dir: &Path) -> anyhow::Result<()> {
    let config = HubConfig {
        data_dir: g.data_dir.clone(),
        catalog_url: g.catalog.clone(),
        keystore_dir: g.keystore.clone(),
        master_key: std::env::var(basin_keys::MASTER_KEY_ENV).ok(),
    };
    let report = basin_service::restore(&config, dir, &g.as_user, "cli").await?;
    let message = format!(
        "Restored {} table(s) as of {} into {} ({} files verified).",
        report.tables.len(),
        report.taken_at,
        g.data_dir.display(),
        report.files.len()
    );
    super::done(g, &message, summary(&report))
}

fn size(report: &BackupReport) -> String {
    let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The manifest without its list of files.
fn summary(report: &BackupReport) -> serde_json::Value {
    serde_json::json!({
        "taken_at": report.taken_at,
        "basin_version": report.basin_version,
        "catalog": report.catalog,
        "master_key_included": report.master_key_included,
        "tables": report.tables,
        "files": report.files.len(),
    })
}
