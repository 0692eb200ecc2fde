//! Access requests: a principal asks for a privilege on an object; those who may manage it
//! approve or deny. The store keeps the requests and their status; deciding who may do what is
//! the service's, through the access snapshot.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::any::AnyRow;

use crate::access::model::{Privilege, Securable};
use crate::error::DbContext;
use crate::store::{get, now};
use crate::{Catalog, CatalogError, Result};

macro_rules! request_select {
    () => {
        "SELECT id, requester, object, privilege, reason, status, created_at, decided_by, decided_at, comment FROM access_requests"
    };
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Cancelled,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 4] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Denied,
        RequestStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestStatus {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        RequestStatus::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                CatalogError::BadValue(format!(
                    "unknown request status '{s}': use pending, approved, denied or cancelled"
                ))
            })
    }
}

/// A request for a privilege on a hub, dataset or table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRequest {
    pub id: String,
    pub requester: String,
    pub object: Securable,
    pub privilege: Privilege,
    pub reason: String,
    pub status: RequestStatus,
    pub created_at: String,
    /// Who approved, denied or cancelled it, and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The approver's or denier's comment.
    pub comment: String,
}

impl Catalog {
    /// Records a pending request; a second pending request of the same requester on the same
    /// object is refused.
    pub async fn create_access_request(
        &self,
        id: &str,
        requester: &str,
        object: &Securable,
        privilege: Privilege,
        reason: &str,
    ) -> Result<AccessRequest> {
        let pending = self
            .access_requests(Some(requester), Some(RequestStatus::Pending))
            .await?
            .into_iter()
            .any(|r| r.object == *object);
        let exists = || {
            CatalogError::BadValue(format!(
                "{requester} already has a pending request on {object}; wait for its decision or cancel it first"
            ))
        };
        if pending {
            return Err(exists());
        }
        sqlx::query(
            "INSERT INTO access_requests (id, requester, object, privilege, reason, status, created_at, comment) VALUES ($1, $2, $3, $4, $5, 'pending', $6, '')",
        )
        .bind(id)
        .bind(requester)
        .bind(object.to_string())
        .bind(privilege.to_string())
        .bind(reason)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            // Another request of the same requester on the same object won a race.
            sqlx::Error::Database(db) if db.is_unique_violation() => exists(),
            _ => CatalogError::Database {
                action: "recording an access request".into(),
                source: e,
            },
        })?;
        self.access_request(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                kind: "access request",
                name: id.to_string(),
                suggestion: None,
            })
    }

    /// The request `id`, if any.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>> {
        let row = sqlx::query(concat!(request_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading access request '{id}'"))?;
        row.map(|r| request_from_row(&r)).transpose()
    }

    /// Requests of one requester (all when `None`) with one status (any when `None`), newest
    /// first.
    pub async fn access_requests(
        &self,
        requester: Option<&str>,
        status: Option<RequestStatus>,
    ) -> Result<Vec<AccessRequest>> {
        let rows = sqlx::query(concat!(
            request_select!(),
            " WHERE ($1 = '' OR requester = $1) AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id"
        ))
        .bind(requester.unwrap_or(""))
        .bind(status.map(RequestStatus::as_str).unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing access requests".into())?;
        rows.iter().map(request_from_row).collect()
    }

    /// Moves a pending request to `status` (approved, denied or cancelled), by `by`, with a
    /// comment. Returns whether it was still pending (a concurrent decision wins otherwise).
    pub async fn decide_access_request(
        &self,
        id: &str,
        status: RequestStatus,
        by: &str,
        comment: &str,
    ) -> Result<bool> {
        if status == RequestStatus::Pending {
            return Err(CatalogError::BadValue(
                "a decision moves a request out of 'pending'".into(),
            ));
        }
        let done = sqlx::query(
            "UPDATE access_requests SET status = $1, decided_by = $2, decided_at = $3, comment = $4 WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(by)
        .bind(now())
        .bind(comment)
        .bind(id)
        .execute(&self.pool)
        .await
        .ctx(|| format!("deciding access request '{id}'"))?;
        Ok(done.rows_affected() == 1)
    }
}

fn request_from_row(r: &AnyRow) -> Result<AccessRequest> {
    Ok(AccessRequest {
        id: get(r, "id")?,
        requester: get(r, "requester")?,
        object: Securable::parse(&get::<String>(r, "object")?)?,
        privilege: get::<String>(r, "privilege")?.parse()?,
        reason: get(r, "reason")?,
        status: get::<String>(r, "status")?.parse()?,
        created_at: get(r, "created_at")?,
        decided_by: get(r, "decided_by")?,
        decided_at: get(r, "decided_at")?,
        comment: get(r, "comment")?,
    })
}
