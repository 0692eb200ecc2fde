//! The one write path of Basin and the lifecycle of tables.
//!
//! Every write — SQL DML, batch loads, uploads, restore, key rotation — is a [`Write`] handed to
//! [`Tables::commit`], which runs the same steps in the same order: **decide** (may this actor
//! make this write on this table, under its policy) → **encrypt** the PII columns → the **Delta
//! operation** (one commit, in the table's turn: see [`sequencer`]) → **sync** the catalog's columns → **audit** → announce a
//! [`CommitEvent`] on the bus that pipelines, subscriptions and maintenance listen to. New
//! tables come into being through [`Tables::create`], with one ownership rule whatever the
//! surface. Nothing else in Basin calls basin-lake's write builders.

mod create;
mod drop;
mod error;
mod event;
mod keys;
mod log;
pub mod pii;
mod sequencer;
mod stream;
mod view;
mod write;

use basin_catalog::Catalog;
use basin_catalog::access::Principal;
use basin_keys::{HubKey, Keystore};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use create::NewTableSpec;
pub use error::TablesError;
pub use event::CommitEvent;
pub use sequencer::DEFAULT_COMMIT_WAIT;
pub use stream::{Ack, Claim, CommitPolicy, PendingRows, Recall, Refused, StreamConfig};
pub use write::{ColumnChange, Committed, Write, WriteNeeds};

/// Result type of this crate.
pub type Result<T, E = TablesError> = std::result::Result<T, E>;

/// Who makes a write: a catalog principal (decided by its policies) or the trusted operator of
/// a data directory, and where the request came from (for the audit log).
#[derive(Debug, Clone)]
pub struct Actor {
    /// `None`: the trusted operator (maintenance inside the process); every surface acts as a
    /// principal.
    pub principal: Option<Principal>,
    /// `cli`, a client address, …
    pub origin: String,
}

impl Actor {
    /// The name the audit log records.
    pub fn name(&self) -> &str {
        self.principal
            .as_ref()
            .map(|p| p.name.as_str())
            .unwrap_or("operator")
    }
}

/// The tables of one catalog, with the keys that protect their PII and the commit bus.
#[derive(Clone)]
pub struct Tables {
    catalog: Catalog,
    keys: Option<Keystore>,
    events: broadcast::Sender<CommitEvent>,
    /// The turns of this process's writes on each table (see [`sequencer`]).
    sequencer: Arc<sequencer::Sequencer<write::Pending, Committed>>,
    /// This node's streamed records, once `basin serve` opens their log.
    streams: stream::StreamsCell,
}

impl Tables {
    /// The write path over `catalog`; `keys` encrypt PII columns (a write that needs them
    /// without a keystore is refused).
    pub fn new(catalog: Catalog, keys: Option<Keystore>) -> Self {
        let (events, _) = broadcast::channel(1024);
        // An operator may let writes wait longer (or shorter) for their turn on a busy table.
        let wait = std::env::var("BASIN_COMMIT_WAIT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(DEFAULT_COMMIT_WAIT, Duration::from_secs_f64);
        Tables {
            catalog,
            keys,
            events,
            sequencer: Arc::new(sequencer::Sequencer::new(wait)),
            streams: Default::default(),
        }
    }

    /// The catalog the tables are recorded in.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The keystore, if one is open.
    pub fn keystore(&self) -> Option<&Keystore> {
        self.keys.as_ref()
    }

    /// Every commit from now on, as it lands.
    pub fn subscribe(&self) -> broadcast::Receiver<CommitEvent> {
        self.events.subscribe()
    }

    /// Appends to the audit log in the actor's name.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        self.audit_as(actor.name(), &actor.origin, action, target, outcome, detail)
            .await
    }

    /// Appends to the audit log for someone who is not a principal (yet): a sign-in, a refused
    /// request. The action has happened (or not) either way: a lost audit row is logged as an
    /// error and must not undo it.
    pub async fn audit_as(
        &self,
        name: &str,
        origin: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let event = basin_catalog::access::AuditEvent {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            principal: name.to_string(),
            source: origin.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail: detail.to_string(),
        };
        if let Err(e) = self.catalog.audit(&event).await {
            tracing::error!(action, target, outcome, "cannot write the audit log: {e}");
        }
    }

    /// The current key of a hub.
    pub fn hub_key(&self, hub: &str) -> Result<HubKey> {
        match &self.keys {
            Some(k) => Ok(k.hub_key(hub)?),
            None => Err(TablesError::Invalid(format!(
                "hub '{hub}' has encrypted (PII) columns but no keystore is open; pass --keystore"
            ))),
        }
    }
}
