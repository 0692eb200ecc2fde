//! The one API every surface calls.
//!
//! A [`Hub`] is Basin's running state: the catalog, the keystore, the write path and the SQL
//! engine. A [`Session`] is one principal acting through one origin (`cli`, a client address):
//! queries, loads, table details and history, listings with pages, and administration (users,
//! roles, grants, policies, tags, tokens, keys). Every method validates its input, asks the
//! catalog's one decision point, acts through basin-sql or basin-tables, and leaves an audit row.
//! The REST server and the CLI only parse, call a session and render.

mod admin;
mod backup;
mod completion;
pub mod credentials;
mod error;
mod lease;
mod lineage;
mod listing;
mod maintenance;
mod models;
pub mod openlineage;
mod queries;
mod requests;
mod search;
mod session;
mod sources;
mod streams;

use std::path::PathBuf;

use basin_catalog::Catalog;
use basin_catalog::access::Principal;
use basin_core::{DEFAULT_HUB, Name};
use basin_keys::Keystore;
use basin_sql::Engine;
use basin_sql::export::ExportRoot;
use basin_tables::Tables;

pub use admin::{MAX_TOKEN_DAYS, NewUser, TagAssignment, grants_of};
pub use backup::{BackupReport, restore};
pub use basin_pipelines::{Plan, Project};
pub use completion::{Completion, MAX_COMPLETIONS};
pub use error::ServiceError;
pub use lease::Exclusive;
pub use listing::{Page, Paged};
pub use maintenance::OptimizeOptions;
pub use models::{Applied, Direction, SHOWN_MODEL_RUNS};
pub use queries::{HistoryEntry, MAX_HISTORY, RunningQuery};
pub use requests::RequestScope;
pub use search::{
    FacetCount, Facets, MAX_QUERY_CHARS, MAX_SEARCH_LIMIT, SearchHit, SearchQuery, SearchResults,
};
pub use session::{Session, TableInfo};
pub use sources::{NewFilesSource, NewKafkaSource, NewPostgresSource, Schedule, SourceStatus};

/// Result type of this crate.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Where a hub's state lives.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The data directory (catalog.db, tables of hubs without their own storage root, keys).
    pub data_dir: PathBuf,
    /// A catalog database URL (`postgres://…`); `None`: SQLite in the data directory.
    pub catalog_url: Option<String>,
    /// The keystore directory; `None`: `<data-dir>/keys`.
    pub keystore_dir: Option<PathBuf>,
    /// The master key (`BASIN_MASTER_KEY`); `None`: generated into the keystore directory.
    pub master_key: Option<String>,
}

/// Basin's running state, shared by every session.
#[derive(Clone)]
pub struct Hub {
    engine: Engine,
    /// Queries running in this process (to cancel them).
    queries: std::sync::Arc<queries::Registry>,
    keystore: Keystore,
    data_dir: PathBuf,
    keys_dir: PathBuf,
    search: search::SearchCache,
}

impl Hub {
    /// Opens (creating on first use) the data directory's catalog with the hub `main`, and the
    /// keystore.
    pub async fn open(config: &HubConfig) -> Result<Hub> {
        basin_lake::register_object_stores();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ServiceError::Invalid(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let catalog = match &config.catalog_url {
            Some(url) => Catalog::connect(url).await?,
            None => Catalog::open_sqlite(&config.data_dir.join("catalog.db")).await?,
        };
        let keys_dir = config
            .keystore_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("keys"));
        let keystore = Keystore::open(&keys_dir, config.master_key.as_deref())?;
        let mut hub = Hub::new(catalog, keystore, config.data_dir.clone());
        hub.keys_dir = keys_dir;
        hub.ensure_default_hub().await?;
        Ok(hub)
    }

    /// A hub over an open catalog and keystore. Storage paths inside `data_dir` are stored
    /// relative to it, so that the directory can be copied or moved whole.
    pub fn new(catalog: Catalog, keystore: Keystore, data_dir: PathBuf) -> Hub {
        let catalog = catalog.with_data_dir(&data_dir);
        let tables = Tables::new(catalog, Some(keystore.clone()));
        Hub {
            engine: Engine::new(tables)
                .with_export_root(ExportRoot::Folder(data_dir.join("exports"))),
            queries: Default::default(),
            keystore,
            keys_dir: data_dir.join("keys"),
            data_dir,
            search: Default::default(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        self.engine.catalog()
    }

    /// The write path (and its commit bus).
    pub fn tables(&self) -> &Tables {
        self.engine.tables()
    }

    /// A session of `principal`, from `origin`.
    pub fn session(&self, principal: Principal, origin: &str) -> Session {
        Session::new(
            self.engine.as_principal(principal).with_origin(origin),
            self.keystore.clone(),
            self.data_dir.clone(),
        )
        .with_keys_dir(self.keys_dir.clone())
        .with_search(self.search.clone())
        .with_queries(self.queries.clone())
    }

    /// A session of the catalog user `name`, acting in its roles plus `extra_roles`; a missing
    /// or disabled user is refused.
    pub async fn user_session(
        &self,
        name: &str,
        extra_roles: &[String],
        origin: &str,
    ) -> Result<Session> {
        match self.catalog().user(name).await? {
            Some(u) if !u.disabled => {}
            Some(_) => return Err(ServiceError::Denied(format!("user '{name}' is disabled"))),
            None => {
                return Err(ServiceError::NotFound(format!(
                    "user '{name}' not found; see `basin user list`"
                )));
            }
        }
        let snapshot = self.catalog().access_snapshot().await?;
        Ok(self.session(snapshot.principal(name, extra_roles), origin))
    }

    /// The same hub, each statement holding at most `bytes` of memory (see
    /// [`Engine::with_memory_limit`]).
    pub fn with_memory_limit(mut self, bytes: usize) -> Hub {
        self.engine = self.engine.with_memory_limit(bytes);
        self
    }

    /// Exports (`COPY … TO`, export models) go under `location`, a folder or an
    /// `s3://bucket/prefix` URL, instead of `<data-dir>/exports`.
    pub fn with_exports(mut self, location: &str) -> Result<Hub> {
        self.engine = self.engine.with_export_root(ExportRoot::parse(location)?);
        Ok(self)
    }

    /// Appends to the audit log for someone who has no session yet (a sign-in, a refused
    /// request); a failure to audit is reported on stderr (the action has already happened).
    pub async fn audit(
        &self,
        principal: &str,
        origin: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        self.tables()
            .audit_as(principal, origin, action, target, outcome, detail)
            .await
    }

    /// The storage root of a hub created without one: `<data-dir>/hubs/<hub>`, as a URL.
    pub fn default_root(&self, hub: &str) -> Result<String> {
        default_root(&self.data_dir, hub)
    }

    async fn ensure_default_hub(&self) -> Result<()> {
        let catalog = self.catalog();
        if catalog.hub(DEFAULT_HUB).await?.is_some() {
            return Ok(());
        }
        let created = catalog
            .create_hub(basin_catalog::NewHub {
                name: Name::parse("hub", DEFAULT_HUB)?,
                storage_root: self.default_root(DEFAULT_HUB)?,
                description: "The default hub".into(),
            })
            .await;
        // Another process may have created it at the same moment.
        if let Err(e) = created
            && catalog.hub(DEFAULT_HUB).await?.is_none()
        {
            return Err(e.into());
        }
        Ok(())
    }
}

fn default_root(data_dir: &std::path::Path, hub: &str) -> Result<String> {
    root_url(&data_dir.join("hubs").join(hub).display().to_string())
}

/// A storage root as given by a user, as a URL: a relative path is resolved against the
/// working directory (the catalog then stores it relative to the data directory when inside).
fn root_url(root: &str) -> Result<String> {
    let url = basin_lake::location_url(root)
        .map_err(|e| ServiceError::Invalid(format!("storage root '{root}': {e}")))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}
