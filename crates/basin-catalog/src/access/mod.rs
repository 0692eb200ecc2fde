//! The access model — users, roles, grants, row filters, column masks, tags, tokens and the
//! audit log — and the *decision* function that every entry point relies on.
//!
//! Decisions are pure functions of an [`AccessSnapshot`] (cached per access version) and the
//! objects concerned; enforcement lives in basin-sql's governed tables.

mod decision;
mod model;
pub(crate) mod store;

pub use decision::{AccessSnapshot, Action, ColumnPolicy, TablePolicy, is_pii};
pub use model::*;
pub(crate) use store::{AccessCache, AuditQueue};
pub use store::{AccessRequest, RequestStatus};
