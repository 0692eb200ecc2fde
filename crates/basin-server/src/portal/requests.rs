//! `/requests`: access requests. A viewer asks for SELECT on a hub, dataset or table it can see
//! (the "Request access" button of dataset and table pages leads here with `?object=`), follows
//! its requests' status, and — when it may manage the object — approves or denies others'
//! requests with a comment. Every step is a service call (`Session::request_access`,
//! `approve_request`, `deny_request`, `cancel_request`), decided and audited there.

use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use basin_catalog::access::{AccessRequest, Privilege, RequestStatus, Securable};
use basin_service::RequestScope;
use maud::{Markup, html};
use serde::Deserialize;

use super::{PortalError, PortalResult, Viewer, csrf_field, page, url_encode, verify_csrf};

#[derive(Deserialize)]
pub(crate) struct RequestsQuery {
    /// The object to ask for, as `table hub.dataset.table` (the new-request form).
    object: Option<String>,
    /// What was just done: `sent`, `approved`, `denied` or `cancelled` (a notice).
    done: Option<String>,
}

/// The page of an object named as `Securable::parse` reads it.
fn object_path(o: &Securable) -> String {
    match o {
        Securable::Hub { hub } => format!("/hubs/{}", url_encode(hub)),
        Securable::Dataset { hub, dataset } => {
            format!("/hubs/{}/{}", url_encode(hub), url_encode(dataset))
        }
        Securable::Table {
            hub,
            dataset,
            table,
        } => format!(
            "/hubs/{}/{}/{}",
            url_encode(hub),
            url_encode(dataset),
            url_encode(table)
        ),
        _ => "/".to_string(),
    }
}

fn parse_object(text: &str) -> PortalResult<Securable> {
    Securable::parse(text).map_err(|e| PortalError::from(crate::ApiError::from(e)))
}

/// `GET /requests`: the new-request form (with `?object=`), one's requests, those to review.
pub(crate) async fn list(viewer: Viewer, Query(q): Query<RequestsQuery>) -> PortalResult {
    let s = &viewer.session;
    let asking = match q.object.as_deref().filter(|o| !o.is_empty()) {
        Some(text) => Some(parse_object(text)?),
        None => None,
    };
    let mine = s.access_requests(RequestScope::Mine, None).await?;
    let to_review = s
        .access_requests(RequestScope::ToReview, Some(RequestStatus::Pending))
        .await?;
    let body = html! {
        h1 { "Access requests" }
        @if let Some(notice) = q.done.as_deref().and_then(notice) { p.notice role="status" { (notice) } }
        @if let Some(object) = &asking {
            section aria-labelledby="new" {
                h2 #new { "Request SELECT on " (object) }
                form method="post" action="/requests" {
                    (csrf_field(&viewer))
                    input type="hidden" name="object" value=(object.to_string());
                    p {
                        label for="reason" { "Why do you need it?" }
                        textarea #reason name="reason" required maxlength="2000" {}
                    }
                    p { button type="submit" { "Send request" } " " a href=(object_path(object)) { "Back" } }
                }
            }
        }
        section aria-labelledby="review" {
            h2 #review { "To review" }
            @if to_review.is_empty() { p.muted { "Nothing waits for your decision." } }
            @else {
                ul.requests {
                    @for r in &to_review { li { (request(r)) (decide_form(&viewer, r)) } }
                }
            }
        }
        section aria-labelledby="mine" {
            h2 #mine { "My requests" }
            @if mine.is_empty() { p.muted { "You have not asked for access yet. Use “Request access” on a dataset or table page." } }
            @else {
                ul.requests {
                    @for r in &mine {
                        li {
                            (request(r))
                            @if r.status == RequestStatus::Pending {
                                form.inline method="post" action={ "/requests/" (url_encode(&r.id)) "/cancel" } {
                                    (csrf_field(&viewer))
                                    button.secondary type="submit" { "Cancel request" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Access requests", &viewer, body))
}

/// The notice after an action (fixed texts: a link cannot make the page say anything else).
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "sent" => "Your request was sent to the object's owners.",
        "approved" => "Approved: the requester now has SELECT.",
        "denied" => "Denied: the requester sees your comment.",
        "cancelled" => "Your request was cancelled.",
        _ => return None,
    })
}

fn request(r: &AccessRequest) -> Markup {
    html! {
        p {
            span.marker.status data-status=(r.status.as_str()) { (r.status.as_str()) }
            " " strong { (r.requester) } " asks for " (r.privilege) " on "
            a href=(object_path(&r.object)) { (r.object) }
            " " span.muted { "(" (r.created_at) ")" }
        }
        p { "Reason: " (r.reason) }
        @if let Some(by) = &r.decided_by {
            p.muted { (r.status.as_str()) " by " (by) @if let Some(at) = &r.decided_at { " at " (at) } @if !r.comment.is_empty() { ": " (r.comment) } }
        }
    }
}

fn decide_form(viewer: &Viewer, r: &AccessRequest) -> Markup {
    let id = url_encode(&r.id);
    let field = format!("comment-{}", r.id);
    html! {
        form.decide method="post" action={ "/requests/" (id) "/decide" } {
            (csrf_field(viewer))
            label for=(field) { "Comment (needed to deny)" }
            input id=(field) name="comment" type="text" maxlength="2000";
            button type="submit" name="decision" value="approve" { "Approve" }
            " "
            button.secondary type="submit" name="decision" value="deny" { "Deny" }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct NewRequest {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    reason: String,
}

/// `POST /requests`: asks for SELECT on the object.
pub(crate) async fn create(viewer: Viewer, Form(f): Form<NewRequest>) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    let object = parse_object(&f.object)?;
    viewer
        .session
        .request_access(&object, Privilege::Select, &f.reason)
        .await?;
    Ok(Redirect::to("/requests?done=sent").into_response())
}

#[derive(Deserialize)]
pub(crate) struct Decision {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    decision: String,
}

/// `POST /requests/{id}/decide`: approves (granting SELECT) or denies, with the comment.
pub(crate) async fn decide(
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Decision>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    let s = &viewer.session;
    let r = match f.decision.as_str() {
        "approve" => s.approve_request(&id, &f.comment).await?,
        "deny" => s.deny_request(&id, &f.comment).await?,
        other => {
            return Err(PortalError::bad_request(format!(
                "decision '{other}' is neither approve nor deny"
            )));
        }
    };
    Ok(Redirect::to(&format!("/requests?done={}", r.status.as_str())).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /requests/{id}/cancel`: withdraws one's own pending request.
pub(crate) async fn cancel(
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    viewer.session.cancel_request(&id).await?;
    Ok(Redirect::to("/requests?done=cancelled").into_response())
}
