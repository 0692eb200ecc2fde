//! Access requests: ask for SELECT on a hub, dataset or table; those who may manage it approve
//! (which grants it) or deny; the requester may cancel.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::access::{AccessRequest, Privilege, RequestStatus, Securable};
use basin_service::RequestScope;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller, Params};
use crate::error::ApiError;

/// One request.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RequestView {
    id: String,
    requester: String,
    /// `hub NAME`, `dataset HUB.NAME` or `table HUB.DATASET.NAME`.
    object: String,
    privilege: String,
    reason: String,
    /// pending, approved, denied or cancelled.
    status: String,
    created_at: String,
    decided_by: Option<String>,
    decided_at: Option<String>,
    /// The approver's or denier's comment.
    comment: String,
}

impl From<AccessRequest> for RequestView {
    fn from(r: AccessRequest) -> Self {
        RequestView {
            id: r.id,
            requester: r.requester,
            object: r.object.to_string(),
            privilege: r.privilege.to_string(),
            reason: r.reason,
            status: r.status.to_string(),
            created_at: r.created_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            comment: r.comment,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RequestList {
    requests: Vec<RequestView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRequest {
    /// `hub NAME`, `dataset [HUB.]NAME` or `table [HUB.]DATASET.NAME`, visible to the caller.
    object: String,
    /// SELECT (the default; the only privilege that can be requested).
    privilege: Option<String>,
    /// Why access is needed, for those who decide.
    reason: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// `mine` (the default): the caller's requests; `review`: others' requests on objects the
    /// caller may manage.
    scope: Option<String>,
    /// pending, approved, denied or cancelled (default: any).
    status: Option<String>,
}

/// A decision's body (`{}` to approve without a comment).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// For the requester; required to deny.
    #[serde(default)]
    comment: String,
}

#[utoipa::path(post, path = "/api/v1/access-requests", request_body = NewRequest, responses(
    (status = 201, description = "The pending request", body = RequestView),
    (status = 404, description = "The object is missing or hidden from the caller", body = crate::error::Problem)))]
pub(crate) async fn create(
    Extension(c): Extension<Caller>,
    Body2(r): Body2<NewRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let object = Securable::parse(&r.object)?;
    let privilege: Privilege = r.privilege.as_deref().unwrap_or("SELECT").parse()?;
    let created = c
        .session
        .request_access(&object, privilege, &r.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/access-requests", params(ListParams), responses(
    (status = 200, description = "Requests, newest first", body = RequestList)))]
pub(crate) async fn list(
    Extension(c): Extension<Caller>,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<RequestList>> {
    let scope = match p.scope.as_deref().unwrap_or("mine") {
        "mine" => RequestScope::Mine,
        "review" => RequestScope::ToReview,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown scope '{other}': use mine or review"
            )));
        }
    };
    let status: Option<RequestStatus> = p.status.as_deref().map(str::parse).transpose()?;
    let requests = c.session.access_requests(scope, status).await?;
    Ok(Json(RequestList {
        requests: requests.into_iter().map(RequestView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{id}/approve", params(("id" = String, Path)), request_body = Decision, responses(
    (status = 200, description = "Approved: the privilege is granted to the requester", body = RequestView)))]
pub(crate) async fn approve(
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body2(d): Body2<Decision>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        c.session.approve_request(&id, &d.comment).await?.into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{id}/deny", params(("id" = String, Path)), request_body = Decision, responses(
    (status = 200, description = "Denied", body = RequestView)))]
pub(crate) async fn deny(
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Body2(d): Body2<Decision>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(c.session.deny_request(&id, &d.comment).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{id}/cancel", params(("id" = String, Path)), responses(
    (status = 200, description = "Cancelled (the requester only)", body = RequestView)))]
pub(crate) async fn cancel(
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(c.session.cancel_request(&id).await?.into()))
}
