//! `basin access request|list|approve|deny|cancel`: access requests through the service.

use basin_catalog::access::{AccessRequest, Privilege, RequestStatus, Securable};
use basin_service::{RequestScope, Session};

use super::done;
use crate::cli::{AccessCommand, Global};
use crate::output::print_records;

pub async fn run(g: &Global, session: &Session, cmd: AccessCommand) -> anyhow::Result<()> {
    match cmd {
        AccessCommand::Request {
            object,
            reason,
            privilege,
        } => {
            let object = Securable::parse(&object.join(" "))?;
            let privilege: Privilege = privilege.parse()?;
            let r = session.request_access(&object, privilege, &reason).await?;
            done(
                g,
                &format!(
                    "Requested {} on {} (request {}); those who manage it decide. See `basin access list`.",
                    r.privilege, r.object, r.id
                ),
                view(&r),
            )
        }
        AccessCommand::List { review, status } => {
            let status: Option<RequestStatus> = status.as_deref().map(str::parse).transpose()?;
            let scope = if review {
                RequestScope::ToReview
            } else {
                RequestScope::Mine
            };
            let requests: Vec<serde_json::Value> = session
                .access_requests(scope, status)
                .await?
                .iter()
                .map(view)
                .collect();
            print_records(
                g.output,
                &[
                    "id",
                    "requester",
                    "privilege",
                    "object",
                    "status",
                    "reason",
                    "decided_by",
                    "comment",
                    "created_at",
                ],
                &requests,
            )
        }
        AccessCommand::Approve { id, comment } => {
            let r = session.approve_request(&id, &comment).await?;
            done(
                g,
                &format!(
                    "Approved request {}: {} now has {} on {}.",
                    r.id, r.requester, r.privilege, r.object
                ),
                view(&r),
            )
        }
        AccessCommand::Deny { id, comment } => {
            let r = session.deny_request(&id, &comment).await?;
            done(g, &format!("Denied request {}.", r.id), view(&r))
        }
        AccessCommand::Cancel { id } => {
            let r = session.cancel_request(&id).await?;
            done(g, &format!("Cancelled request {}.", r.id), view(&r))
        }
    }
}

/// A request as printed: the object and privilege as text.
fn view(r: &AccessRequest) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "requester": r.requester,
        "privilege": r.privilege.to_string(),
        "object": r.object.to_string(),
        "status": r.status,
        "reason": r.reason,
        "created_at": r.created_at,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at,
        "comment": r.comment,
    })
}
