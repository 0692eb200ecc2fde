//! Grants: who may do what on which hub, dataset, table, column or tag.

use axum::{Extension, Json};
use basin_catalog::access::{Grant, Privilege, Securable};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller};

/// One grant.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantView {
    grantee: String,
    privilege: String,
    /// `hub NAME`, `dataset HUB.NAME`, `table HUB.DATASET.NAME` or `tag KEY=VALUE|VALUE`.
    object: String,
    column: Option<String>,
    granted_by: String,
    granted_at: String,
}

impl From<Grant> for GrantView {
    fn from(g: Grant) -> Self {
        GrantView {
            grantee: g.grantee,
            privilege: g.privilege.to_string(),
            object: g.object.to_string(),
            column: g.column,
            granted_by: g.granted_by,
            granted_at: g.granted_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantList {
    grants: Vec<GrantView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Granted {
    granted: Vec<GrantView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Revoked {
    revoked: Vec<GrantView>,
}

/// A grant in a request: `object` is `hub NAME`, `dataset HUB.NAME`, `table HUB.DATASET.NAME` or
/// `tag KEY=VALUE|VALUE`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantRequest {
    /// USAGE, SELECT, MODIFY, CREATE, MANAGE or UNMASK (UNMASK: administrators only).
    privilege: String,
    object: String,
    /// SELECT on these columns only.
    #[serde(default)]
    columns: Vec<String>,
    grantee: String,
}

impl GrantRequest {
    fn grants(&self, by: &str) -> ApiResult<Vec<Grant>> {
        let privilege: Privilege = self.privilege.parse()?;
        let object = Securable::parse(&self.object)?;
        Ok(basin_service::grants_of(
            privilege,
            object,
            &self.columns,
            &self.grantee,
            by,
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/grants", responses((status = 200, description = "All grants (admins) or the caller's own", body = GrantList)))]
pub(crate) async fn list_grants(Extension(c): Extension<Caller>) -> ApiResult<Json<GrantList>> {
    let grants = c.session.grants().await?;
    Ok(Json(GrantList {
        grants: grants.into_iter().map(GrantView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/grants", request_body = GrantRequest, responses((status = 200, description = "Granted", body = Granted)))]
pub(crate) async fn create_grant(
    Extension(c): Extension<Caller>,
    Body2(g): Body2<GrantRequest>,
) -> ApiResult<Json<Granted>> {
    let grants = g.grants(&c.session.principal().name)?;
    c.session.change_grants(&grants, false).await?;
    Ok(Json(Granted {
        granted: grants.into_iter().map(GrantView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/grants", request_body = GrantRequest, responses((status = 200, description = "Revoked", body = Revoked)))]
pub(crate) async fn delete_grant(
    Extension(c): Extension<Caller>,
    Body2(g): Body2<GrantRequest>,
) -> ApiResult<Json<Revoked>> {
    let grants = g.grants(&c.session.principal().name)?;
    c.session.change_grants(&grants, true).await?;
    Ok(Json(Revoked {
        revoked: grants.into_iter().map(GrantView::from).collect(),
    }))
}
