//! Hub keys: rotation (administrators).

use axum::extract::Path;
use axum::{Extension, Json};
use serde::Serialize;

use super::{ApiResult, Caller};

/// A table rewritten under the new key.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Reencrypted {
    table: String,
    version: i64,
}

/// The new key version and the tables re-encrypted, one commit each.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Rotated {
    hub: String,
    key_version: u32,
    reencrypted: Vec<Reencrypted>,
}

#[utoipa::path(post, path = "/api/v1/hubs/{hub}/keys/rotate", params(("hub" = String, Path)),
    responses((status = 200, description = "New key version; tables re-encrypted", body = Rotated), (status = 403, description = "Not an administrator", body = crate::error::Problem)))]
pub(crate) async fn rotate_key(
    Extension(c): Extension<Caller>,
    Path(hub): Path<String>,
) -> ApiResult<Json<Rotated>> {
    let (key_version, tables) = c.session.rotate_key(&hub).await?;
    Ok(Json(Rotated {
        hub,
        key_version,
        reencrypted: tables
            .into_iter()
            .map(|(table, version)| Reencrypted { table, version })
            .collect(),
    }))
}
