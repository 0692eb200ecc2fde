//! The audit log (administrators).

use axum::{Extension, Json};
use basin_catalog::access::AuditEvent;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Caller, Params};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// Events at or after this RFC 3339 time.
    since: Option<String>,
    /// Most events (default 1000, at most 100,000).
    limit: Option<i64>,
}

/// One event.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    at: String,
    principal: String,
    source: String,
    action: String,
    target: String,
    /// ok, denied or error.
    outcome: String,
    /// JSON text with details.
    detail: String,
}

impl From<AuditEvent> for EventView {
    fn from(e: AuditEvent) -> Self {
        EventView {
            at: e.at,
            principal: e.principal,
            source: e.source,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    events: Vec<EventView>,
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), responses((status = 200, description = "Audit events, oldest first (admins only)", body = EventList)))]
pub(crate) async fn audit(
    Extension(c): Extension<Caller>,
    Params(p): Params<AuditParams>,
) -> ApiResult<Json<EventList>> {
    let events = c
        .session
        .audit_events(p.since.as_deref(), p.limit.unwrap_or(1000))
        .await?;
    Ok(Json(EventList {
        events: events.into_iter().map(EventView::from).collect(),
    }))
}
