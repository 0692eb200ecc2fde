//! Access requests: a principal asks for SELECT on a hub, dataset or table it can see, with a
//! reason; those who may manage the object approve (which grants it, through the one grant
//! path) or deny with a comment; the requester may cancel. Every step is audited.
//!
//! A request is seen by its requester and by those who may manage its object; to anyone else
//! it answers "not found", like a missing one.

use basin_catalog::access::{AccessRequest, Grant, Privilege, RequestStatus, Securable};
use basin_core::Name;

use crate::{Result, ServiceError, Session};

/// Longest reason or comment accepted, in characters.
pub const MAX_REQUEST_TEXT: usize = 2000;

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestScope {
    /// The principal's own requests.
    Mine,
    /// Others' requests on objects the principal may manage (administrators: all).
    ToReview,
}

impl Session {
    /// Asks for `privilege` (SELECT) on a hub, dataset or table the principal can see; a hidden
    /// or missing object answers "not found". One pending request per requester and object.
    pub async fn request_access(
        &self,
        object: &Securable,
        privilege: Privilege,
        reason: &str,
    ) -> Result<AccessRequest> {
        let result = async {
            if privilege != Privilege::Select {
                return Err(ServiceError::Invalid(format!(
                    "only SELECT can be requested, not {privilege}"
                )));
            }
            let reason = text("reason", reason)?;
            if reason.is_empty() {
                return Err(ServiceError::Invalid(
                    "reason is empty: say why you need access, for those who decide".into(),
                ));
            }
            if self.holds_select(object).await? {
                return Err(ServiceError::Invalid(format!(
                    "you already have SELECT on {object}"
                )));
            }
            let id = format!("{:012x}", rand::random::<u64>() >> 16);
            Ok(self
                .engine()
                .catalog()
                .create_access_request(&id, &self.principal().name, object, privilege, &reason)
                .await?)
        }
        .await;
        let target = format!("{privilege} on {object}");
        self.audited("access_request.create", &target, result).await
    }

    /// Requests in a scope, with one status (any when `None`), newest first.
    pub async fn access_requests(
        &self,
        scope: RequestScope,
        status: Option<RequestStatus>,
    ) -> Result<Vec<AccessRequest>> {
        let catalog = self.engine().catalog();
        let me = &self.principal().name;
        Ok(match scope {
            RequestScope::Mine => catalog.access_requests(Some(me), status).await?,
            RequestScope::ToReview => {
                let snapshot = catalog.access_snapshot().await?;
                catalog
                    .access_requests(None, status)
                    .await?
                    .into_iter()
                    .filter(|r| {
                        r.requester != *me && snapshot.may_manage(self.principal(), &r.object)
                    })
                    .collect()
            }
        })
    }

    /// One request, if the principal may see it (its requester, or one who may manage its
    /// object).
    pub async fn access_request(&self, id: &str) -> Result<AccessRequest> {
        let catalog = self.engine().catalog();
        let not_found = || ServiceError::NotFound(format!("access request '{id}' not found"));
        let r = catalog.access_request(id).await?.ok_or_else(not_found)?;
        if r.requester == self.principal().name || self.may_decide(&r).await? {
            Ok(r)
        } else {
            Err(not_found())
        }
    }

    /// Approves a pending request: grants the privilege to the requester through the grant
    /// path and marks the request approved. Needs MANAGE on the object (or above it).
    pub async fn approve_request(&self, id: &str, comment: &str) -> Result<AccessRequest> {
        let result = async {
            let r = self.pending_to_decide(id, "approve").await?;
            let comment = text("comment", comment)?;
            let catalog = self.engine().catalog();
            let grant = Grant {
                grantee: r.requester.clone(),
                privilege: r.privilege,
                object: r.object.clone(),
                column: None,
                granted_by: self.principal().name.clone(),
                granted_at: String::new(),
            };
            let held_before = catalog.grants().await?.iter().any(|g| {
                g.grantee == grant.grantee
                    && g.privilege == grant.privilege
                    && g.object == grant.object
                    && g.column.is_none()
            });
            self.change_grants(std::slice::from_ref(&grant), false)
                .await?;
            let decided = catalog
                .decide_access_request(
                    id,
                    RequestStatus::Approved,
                    &self.principal().name,
                    &comment,
                )
                .await;
            if !matches!(decided, Ok(true)) {
                // Cancelled or decided meanwhile (or not recorded): take back what this grant
                // added, so that nothing changes.
                if !held_before {
                    self.change_grants(std::slice::from_ref(&grant), true)
                        .await?;
                }
                decided?;
                return Err(ServiceError::Invalid(format!(
                    "access request '{id}' was decided or cancelled meanwhile; nothing was granted"
                )));
            }
            self.access_request(id).await
        }
        .await;
        self.audited("access_request.approve", id, result).await
    }

    /// Denies a pending request, with a comment for the requester. Needs MANAGE on the object.
    pub async fn deny_request(&self, id: &str, comment: &str) -> Result<AccessRequest> {
        let result = async {
            let comment = text("comment", comment)?;
            if comment.is_empty() {
                return Err(ServiceError::Invalid(
                    "comment is empty: say why the request is denied, for the requester".into(),
                ));
            }
            self.pending_to_decide(id, "deny").await?;
            self.decide(id, RequestStatus::Denied, &comment).await
        }
        .await;
        self.audited("access_request.deny", id, result).await
    }

    /// Cancels one's own pending request.
    pub async fn cancel_request(&self, id: &str) -> Result<AccessRequest> {
        let result = async {
            let r = self.access_request(id).await?;
            if r.requester != self.principal().name {
                return Err(ServiceError::Denied(format!(
                    "only {} may cancel access request '{id}'; deny it instead",
                    r.requester
                )));
            }
            pending(&r)?;
            self.decide(id, RequestStatus::Cancelled, "").await
        }
        .await;
        self.audited("access_request.cancel", id, result).await
    }

    async fn decide(
        &self,
        id: &str,
        status: RequestStatus,
        comment: &str,
    ) -> Result<AccessRequest> {
        let me = &self.principal().name;
        if !self
            .engine()
            .catalog()
            .decide_access_request(id, status, me, comment)
            .await?
        {
            return Err(ServiceError::Invalid(format!(
                "access request '{id}' was decided or cancelled meanwhile"
            )));
        }
        self.access_request(id).await
    }

    /// The request, pending, when the principal may decide it.
    async fn pending_to_decide(&self, id: &str, verb: &str) -> Result<AccessRequest> {
        let r = self.access_request(id).await?;
        if !self.may_decide(&r).await? {
            return Err(ServiceError::Denied(format!(
                "permission denied: to {verb} a request on {}, you need MANAGE on it",
                r.object
            )));
        }
        pending(&r)?;
        Ok(r)
    }

    async fn may_decide(&self, r: &AccessRequest) -> Result<bool> {
        let snapshot = self.engine().catalog().access_snapshot().await?;
        Ok(snapshot.may_manage(self.principal(), &r.object))
    }

    /// Whether the principal already reads all of `object`; "not found" when it cannot see it.
    async fn holds_select(&self, object: &Securable) -> Result<bool> {
        let engine = self.engine();
        let catalog = engine.catalog();
        let p = self.principal();
        match object {
            Securable::Hub { hub } => {
                let hub = Name::parse("hub", hub)?;
                let (hubs, _) =
                    basin_sql::access::visible_datasets(engine, Some(hub.as_str()), None).await?;
                if hubs.is_empty() {
                    return Err(ServiceError::NotFound(format!("hub '{hub}' not found")));
                }
                Ok(p.is_admin())
            }
            Securable::Dataset { hub, dataset } => {
                let (_, datasets) =
                    basin_sql::access::visible_datasets(engine, Some(hub), Some(dataset)).await?;
                let Some(d) = datasets.first() else {
                    return Err(ServiceError::NotFound(format!(
                        "dataset '{hub}.{dataset}' not found"
                    )));
                };
                let snapshot = catalog.access_snapshot().await?;
                Ok(snapshot.allows_on_dataset(p, Privilege::Select, d))
            }
            Securable::Table {
                hub,
                dataset,
                table,
            } => {
                let seen =
                    basin_sql::access::visible_tables(engine, Some(hub), Some(dataset)).await?;
                let Some((_, policy)) = seen.iter().find(|(t, _)| t.name == *table) else {
                    return Err(ServiceError::NotFound(format!(
                        "table '{hub}.{dataset}.{table}' not found"
                    )));
                };
                Ok(policy.allows(Privilege::Select) && policy.all_columns)
            }
            Securable::Tag { .. } => Err(ServiceError::Invalid(format!(
                "access is requested on a hub, dataset or table, not on '{object}'"
            ))),
        }
    }
}

fn pending(r: &AccessRequest) -> Result<()> {
    if r.status == RequestStatus::Pending {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "access request '{}' is {}; only a pending request can change",
            r.id, r.status
        )))
    }
}

/// A reason or comment, trimmed, within [`MAX_REQUEST_TEXT`].
fn text(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.chars().count() > MAX_REQUEST_TEXT {
        return Err(ServiceError::Invalid(format!(
            "{field} is longer than {MAX_REQUEST_TEXT} characters; shorten it"
        )));
    }
    Ok(value.to_string())
}
