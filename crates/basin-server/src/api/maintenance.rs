//! Table maintenance: compaction, vacuum and the table's policy for the server's maintainer
//! (MANAGE on the table; the policy is readable by those who see the table).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::{Extension, Json};
use basin_catalog::{MaintenancePolicy, MaintenanceRun};
use basin_service::OptimizeOptions;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller, table_ref};

/// What a compaction should do (the table's policy gives what is left out).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptimizeRequest {
    /// Size to pack files to, in MiB.
    target_file_mib: Option<u64>,
    /// Columns to Z-order the files by.
    zorder: Option<Vec<String>>,
}

/// How long a vacuum keeps versions readable.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VacuumRequest {
    /// Keep every version of the last N hours (default: the table's policy).
    retain_hours: Option<u64>,
}

/// A compaction or vacuum that ran.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunView {
    table: String,
    operation: String,
    /// The table's version after it.
    version: i64,
    files_before: u64,
    files_after: u64,
    bytes_rewritten: u64,
    files_deleted: u64,
    duration_ms: u64,
}

impl From<MaintenanceRun> for RunView {
    fn from(r: MaintenanceRun) -> Self {
        RunView {
            table: r.table.to_string(),
            operation: r.operation,
            version: r.version,
            files_before: r.files_before,
            files_after: r.files_after,
            bytes_rewritten: r.bytes_rewritten,
            files_deleted: r.files_deleted,
            duration_ms: r.duration_ms,
        }
    }
}

/// How the server's maintainer looks after a table.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyView {
    /// Whether the maintainer compacts and vacuums the table by itself.
    auto: bool,
    /// Compact once the table has this many files under half the target size.
    min_files: u64,
    target_file_mib: u64,
    /// Versions of the last N hours stay readable; a vacuum removes older files.
    retain_hours: u64,
    /// Columns compaction Z-orders by.
    zorder: Vec<String>,
}

impl From<MaintenancePolicy> for PolicyView {
    fn from(p: MaintenancePolicy) -> Self {
        PolicyView {
            auto: p.auto,
            min_files: p.min_files,
            target_file_mib: p.target_file_bytes >> 20,
            retain_hours: p.retention_hours,
            zorder: p.zorder,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/optimize",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), request_body = OptimizeRequest,
    responses((status = 200, description = "Small files compacted (no row changed)", body = RunView), (status = 403, description = "Needs MANAGE on the table", body = crate::error::Problem)))]
pub(crate) async fn optimize(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Json<RunView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let r: OptimizeRequest = optional_json(&body)?;
    let options = OptimizeOptions {
        target_file_bytes: r.target_file_mib.map(|m| m.saturating_mul(1 << 20)),
        zorder: r.zorder,
    };
    Ok(Json(c.session.optimize_table(&t, &options).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/vacuum",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), request_body = VacuumRequest,
    responses((status = 200, description = "Files no retained version needs removed", body = RunView), (status = 403, description = "Needs MANAGE on the table", body = crate::error::Problem)))]
pub(crate) async fn vacuum(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Json<RunView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let r: VacuumRequest = optional_json(&body)?;
    let retention = r
        .retain_hours
        .map(|h| Duration::from_secs(h.saturating_mul(3600)));
    Ok(Json(c.session.vacuum_table(&t, retention).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/maintenance",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)),
    responses((status = 200, description = "The table's maintenance policy", body = PolicyView)))]
pub(crate) async fn get_policy(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
) -> ApiResult<Json<PolicyView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    Ok(Json(c.session.maintenance_policy(&t).await?.into()))
}

#[utoipa::path(put, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables/{table}/maintenance",
    params(("hub" = String, Path), ("dataset" = String, Path), ("table" = String, Path)), request_body = PolicyView,
    responses((status = 200, description = "Policy set", body = PolicyView), (status = 403, description = "Needs MANAGE on the table", body = crate::error::Problem)))]
pub(crate) async fn set_policy(
    Extension(c): Extension<Caller>,
    Path((hub, dataset, table)): Path<(String, String, String)>,
    Body2(p): Body2<PolicyView>,
) -> ApiResult<Json<PolicyView>> {
    let t = table_ref(&hub, &dataset, &table)?;
    let policy = MaintenancePolicy {
        auto: p.auto,
        min_files: p.min_files,
        target_file_bytes: p.target_file_mib.saturating_mul(1 << 20),
        retention_hours: p.retain_hours,
        zorder: p.zorder,
    };
    c.session.set_maintenance_policy(&t, &policy).await?;
    Ok(Json(policy.into()))
}

/// A JSON body that may be left out (then every field takes its default).
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Json::<T>::from_bytes(body)
        .map(|Json(v)| v)
        .map_err(super::json_error)
}
