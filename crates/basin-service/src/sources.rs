//! Sources: connectors that keep a table fed, declared by a principal and run by the server's
//! scheduler as that principal (under its grants), one node at a time (a lease per source).
//!
//! The `files` kind loads each new file under a folder whose path matches a pattern
//! (`products/year=*/month=*/day=*/*.csv`), once, in path order. Each file's load carries a
//! load id made of its path, size and modification time, which the table's Delta log records in
//! the same commit as the rows: a restart between the commit and the catalog's record of the
//! file finds the load in the table and records it, so no file is loaded twice or skipped. A
//! file that fails is recorded with why, retried at the next runs up to `max_attempts`, and does
//! not hold the others back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basin_catalog::access::{Action, Securable};
use basin_catalog::{Source, SourceFile, SourceRun};
use basin_core::{Name, TableRef};
use basin_ingest::{LoadMode, LoadRequest};
use serde_json::json;
use sha2::Digest;

use crate::{Exclusive, Hub, Result, ServiceError, Session};

/// When a source runs: every so many seconds, at the times of a cron expression (UTC, e.g.
/// `0 2 * * *` for 02:00 every day), or continuously (again as soon as a run ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Every(u64),
    Cron(String),
    Continuous,
}

/// What a new files source reads and how often.
#[derive(Debug, Clone)]
pub struct NewFilesSource {
    pub name: String,
    pub table: TableRef,
    /// A local folder or an `s3://bucket/prefix` URL.
    pub location: String,
    /// A glob over paths relative to `location` (`*` stays within one folder level).
    pub pattern: String,
    /// The files' format when their names do not say it (csv, json, ndjson, parquet).
    pub format: Option<String>,
    pub max_attempts: u64,
    /// Bad rows a file may have (they go to the quarantine table) before it fails.
    pub max_bad_rows: u64,
    pub schedule: Schedule,
}

/// What a new PostgreSQL source reads and how often.
#[derive(Debug, Clone)]
pub struct NewPostgresSource {
    pub name: String,
    pub table: TableRef,
    /// `postgres://user@host:port/database`, without a password.
    pub url: String,
    /// The environment variable of the server that holds the password …
    pub password_env: Option<String>,
    /// … or a file that holds it.
    pub password_file: Option<PathBuf>,
    /// A SELECT.
    pub query: String,
    /// With `watermark`: the key rows are upserted by.
    pub key: Vec<String>,
    /// A column that grows with every change: each run reads the rows past the last one's
    /// highest value and upserts them by `key`. Without it, each run replaces the table with
    /// the query's rows (a snapshot, deletions included).
    pub watermark: Option<String>,
    pub schedule: Schedule,
}

/// What a new Kafka source reads and how often.
#[derive(Debug, Clone)]
pub struct NewKafkaSource {
    pub name: String,
    pub table: TableRef,
    /// `host:port` of one or more brokers.
    pub brokers: Vec<String>,
    pub topic: String,
    pub schedule: Schedule,
}

/// A source with the state of its files and its last runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    #[serde(flatten)]
    pub source: Source,
    pub files_loaded: u64,
    pub files_failed: u64,
    /// Failed files, with why.
    pub failures: Vec<SourceFile>,
    pub last_runs: Vec<SourceRun>,
}

/// How long a source's lease outlives a node that stopped renewing it (killed): another node
/// (or the same one, restarted) takes the source over after at most this long.
const SOURCE_LEASE: Duration = Duration::from_secs(15);

/// Runs of each source `SourceStatus` shows.
const SHOWN_RUNS: usize = 5;

impl Session {
    /// Declares a files source feeding `table` (the principal must be able to load into it:
    /// MODIFY and a full view, or CREATE on the dataset for a new table). It runs as the
    /// principal. Audited.
    pub async fn add_files_source(&self, s: NewFilesSource) -> Result<Source> {
        let result = async {
            let prefix = basin_ingest::Prefix::open(&s.location)?;
            prefix.check().await?;
            glob::Pattern::new(&s.pattern).map_err(|e| {
                ServiceError::Invalid(format!("pattern '{}' is not a glob: {e}", s.pattern))
            })?;
            if let Some(f) = &s.format {
                f.parse::<basin_ingest::Format>()?;
            }
            let config = json!({
                "location": prefix.location(),
                "pattern": s.pattern,
                "format": s.format,
                "max_bad_rows": s.max_bad_rows,
            });
            let new = (s.name.clone(), "files", s.table.clone(), config);
            self.declare(new, LoadMode::Append, s.schedule.clone(), s.max_attempts)
                .await
        }
        .await;
        self.audited("source.add", &s.name, result).await
    }

    /// Declares a PostgreSQL source feeding `table` (as [`Session::add_files_source`]). The
    /// password is read from the server's environment or a file at each run, never stored.
    /// Audited.
    pub async fn add_postgres_source(&self, s: NewPostgresSource) -> Result<Source> {
        let result = async {
            basin_ingest::check_pg_url(&s.url)?;
            if s.password_env.is_some() && s.password_file.is_some() {
                return Err(ServiceError::Invalid(
                    "give the password one way: --password-env or --password-file".into(),
                ));
            }
            if s.query.trim().is_empty() {
                return Err(ServiceError::Invalid("give the rows to read: --query or --from-table".into()));
            }
            let mode = match &s.watermark {
                Some(w) => {
                    Name::parse("column", w)?;
                    if s.key.is_empty() {
                        return Err(ServiceError::Invalid(format!(
                            "an incremental source (watermark '{w}') upserts the changed rows by a key: give --key COLUMN[,COLUMN]"
                        )));
                    }
                    LoadMode::Upsert
                }
                None => LoadMode::Overwrite(None),
            };
            let config = json!({
                "url": s.url,
                "password_env": s.password_env,
                "password_file": s.password_file.map(|p| p.display().to_string()),
                "query": s.query,
                "key": s.key,
                "watermark": s.watermark,
            });
            let new = (s.name.clone(), "postgres", s.table.clone(), config);
            self.declare(new, mode, s.schedule.clone(), 3).await
        }
        .await;
        self.audited("source.add", &s.name, result).await
    }

    /// Declares a Kafka source feeding `table` with the JSON values of a topic's records (as
    /// [`Session::add_files_source`]). Audited.
    pub async fn add_kafka_source(&self, s: NewKafkaSource) -> Result<Source> {
        let result = async {
            if s.brokers.is_empty() || s.brokers.iter().any(|b| !b.contains(':')) {
                return Err(ServiceError::Invalid(
                    "give the brokers as host:port (comma-separated)".into(),
                ));
            }
            if s.topic.trim().is_empty() {
                return Err(ServiceError::Invalid("give the topic".into()));
            }
            let config = json!({"brokers": s.brokers, "topic": s.topic});
            let new = (s.name.clone(), "kafka", s.table.clone(), config);
            self.declare(new, LoadMode::Append, s.schedule.clone(), 3)
                .await
        }
        .await;
        self.audited("source.add", &s.name, result).await
    }

    /// Records a new source of the principal, which must be able to load into its table.
    async fn declare(
        &self,
        (name, kind, table, config): (String, &str, TableRef, serde_json::Value),
        mode: LoadMode,
        schedule: Schedule,
        max_attempts: u64,
    ) -> Result<Source> {
        Name::parse("source", &name)?;
        basin_ingest::check_load(
            self.engine().tables(),
            &self.engine().actor(),
            &table,
            &mode,
            vec![],
        )
        .await?;
        // A continuous source is stored as one running every 0 seconds.
        let (every_secs, cron) = match schedule {
            Schedule::Every(0) => {
                return Err(ServiceError::Invalid(
                    "a source runs at least every second (--every), or --continuous".into(),
                ));
            }
            Schedule::Every(secs) => (secs, None),
            Schedule::Continuous => (0, None),
            Schedule::Cron(expr) => {
                cron_of(&expr)?;
                (0, Some(expr))
            }
        };
        if max_attempts == 0 {
            return Err(ServiceError::Invalid(
                "a source tries an input at least once (--max-attempts)".into(),
            ));
        }
        let source = Source {
            name,
            kind: kind.into(),
            table,
            config,
            every_secs,
            cron,
            max_attempts,
            owner: self.principal().name.clone(),
            paused: false,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            state: json!({}),
        };
        self.engine().catalog().create_source(&source).await?;
        Ok(source)
    }

    /// The sources the principal owns or whose table it sees.
    pub async fn sources(&self) -> Result<Vec<Source>> {
        let mut seen = Vec::new();
        for s in self.engine().catalog().sources().await? {
            if self.sees(&s).await {
                seen.push(s);
            }
        }
        Ok(seen)
    }

    /// Whether the principal owns `source` or sees its table (a source's first run may create
    /// its table).
    async fn sees(&self, source: &Source) -> bool {
        source.owner == self.principal().name
            || basin_sql::access::table_policy(self.engine(), &source.table)
                .await
                .is_ok()
    }

    /// A source the principal sees (its table is visible), with its files and last runs.
    pub async fn source(&self, name: &str) -> Result<SourceStatus> {
        let source = self.visible_source(name).await?;
        let catalog = self.engine().catalog();
        let files = catalog.source_files(name).await?;
        let failures: Vec<SourceFile> = files
            .iter()
            .filter(|f| f.status == "failed")
            .cloned()
            .collect();
        Ok(SourceStatus {
            files_loaded: files.iter().filter(|f| f.status == "loaded").count() as u64,
            files_failed: failures.len() as u64,
            failures,
            last_runs: catalog.source_runs(Some(name), SHOWN_RUNS).await?,
            source,
        })
    }

    /// Pauses or resumes a source (its owner, or who manages its table). Audited.
    pub async fn pause_source(&self, name: &str, paused: bool) -> Result<()> {
        let result = async {
            self.managed_source(name).await?;
            Ok(self
                .engine()
                .catalog()
                .set_source_paused(name, paused)
                .await?)
        }
        .await;
        let action = if paused {
            "source.pause"
        } else {
            "source.resume"
        };
        self.audited(action, name, result).await
    }

    /// Removes a source (its owner, or who manages its table); what it loaded stays. Audited.
    pub async fn remove_source(&self, name: &str) -> Result<()> {
        let result = async {
            self.managed_source(name).await?;
            Ok(self.engine().catalog().drop_source(name).await?)
        }
        .await;
        self.audited("source.remove", name, result).await
    }

    /// Runs a source now, as its owner (who may: its owner, or who manages its table).
    pub async fn run_source(&self, hub: &Hub, name: &str) -> Result<SourceRun> {
        self.managed_source(name).await?;
        match hub.run_source_exclusive(name, "manual").await? {
            Some(run) => Ok(run),
            None => Err(ServiceError::Invalid(format!(
                "source '{name}' is running on this or another server; try again when it is done"
            ))),
        }
    }

    async fn visible_source(&self, name: &str) -> Result<Source> {
        let missing = || {
            ServiceError::NotFound(format!(
                "source '{name}' not found; see `basin source list`"
            ))
        };
        match self.engine().catalog().source(name).await? {
            Some(source) if self.sees(&source).await => Ok(source),
            _ => Err(missing()),
        }
    }

    async fn managed_source(&self, name: &str) -> Result<Source> {
        let source = self.visible_source(name).await?;
        if source.owner != self.principal().name {
            let object = Securable::table(&source.table);
            self.require_on(&object, Action::Manage(&object)).await?;
        }
        Ok(source)
    }
}

impl Hub {
    /// Runs a source under its lease (`None`: it is running elsewhere) and records the run.
    async fn run_source_exclusive(&self, name: &str, trigger: &str) -> Result<Option<SourceRun>> {
        let lease = format!("source:{name}");
        match self
            .run_exclusive(&lease, SOURCE_LEASE, |_| self.run_source(name, trigger))
            .await?
        {
            Exclusive::Ran(run) => Ok(Some(run?)),
            Exclusive::Busy(_) | Exclusive::Lost(_) => Ok(None),
        }
    }

    /// One run of a source, as its owner: every new file is loaded (or fails) and recorded.
    async fn run_source(&self, name: &str, trigger: &str) -> Result<SourceRun> {
        let catalog = self.catalog();
        let source = catalog
            .source(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("source '{name}' not found")))?;
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let started = Instant::now();
        let mut run = SourceRun {
            source: name.to_string(),
            table: source.table.clone(),
            trigger: trigger.into(),
            started_at,
            duration_ms: 0,
            outcome: "ok".into(),
            files: 0,
            failed_files: 0,
            rows: 0,
            bytes: 0,
            lag_ms: 0,
            error: String::new(),
        };
        let loaded = match source.kind.as_str() {
            "files" => self.load_new_files(&source, &mut run).await,
            "postgres" => self.load_postgres(&source, &mut run).await,
            "kafka" => self.load_kafka(&source, &mut run).await,
            other => Err(ServiceError::Invalid(format!(
                "source kind '{other}' is not known"
            ))),
        };
        if let Err(e) = loaded {
            run.outcome = "error".into();
            run.error = e.to_string();
        } else if run.failed_files > 0 {
            run.outcome = "partial".into();
        }
        run.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = catalog.record_source_run(&run).await {
            tracing::error!(source = name, "a source run was not recorded: {e}");
        }
        Ok(run)
    }

    async fn load_new_files(&self, source: &Source, run: &mut SourceRun) -> Result<()> {
        let text = |k: &str| source.setting(k).map(str::to_string);
        let prefix = basin_ingest::Prefix::open(&text("location").unwrap_or_default())?;
        let pattern = glob::Pattern::new(&text("pattern").unwrap_or_default())
            .map_err(|e| ServiceError::Invalid(format!("the source's pattern: {e}")))?;
        let format = text("format")
            .map(|f| f.parse::<basin_ingest::Format>())
            .transpose()?;
        let max_bad_rows = source
            .config
            .get("max_bad_rows")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let session = self.owner_session(source).await?;
        let known: std::collections::HashMap<String, SourceFile> = self
            .catalog()
            .source_files(&source.name)
            .await?
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let found = prefix.list(&pattern).await?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for f in found {
            let same = |k: &SourceFile| k.size == f.size && k.modified_ms == f.modified_ms;
            let attempts = match known.get(&f.path) {
                Some(k) if same(k) && k.status == "loaded" => continue,
                Some(k) if same(k) && k.attempts >= source.max_attempts => continue,
                Some(k) if same(k) => k.attempts,
                _ => 0,
            };
            let load_id = load_id(
                source,
                &format!("{}\n{}\n{}", f.path, f.size, f.modified_ms),
            );
            let mut read = basin_ingest::ReadOptions::default();
            read.format = format;
            let scratch = scratch_path(source, "");
            let loaded = async {
                let (input, root) = prefix.local(&f, &scratch).await?;
                let request = LoadRequest {
                    table: Some(source.table.clone()),
                    inputs: vec![input.display().to_string()],
                    read,
                    mode: LoadMode::Append,
                    max_bad_rows,
                    load_id: Some(load_id),
                    partition_root: Some(root),
                    ..Default::default()
                };
                session.load(request, Default::default()).await
            }
            .await;
            drop(scratch);
            let (status, rows, version, error) = match loaded {
                Ok(report) => {
                    run.files += 1;
                    run.rows += report.rows;
                    run.bytes += f.size;
                    run.lag_ms = run.lag_ms.max((now_ms - f.modified_ms).max(0) as u64);
                    ("loaded", report.rows, report.version, String::new())
                }
                Err(e) => {
                    run.failed_files += 1;
                    tracing::warn!(source = %source.name, file = %f.path, "a source's file failed to load: {e}");
                    ("failed", 0, -1, e.to_string())
                }
            };
            let record = SourceFile {
                path: f.path,
                size: f.size,
                modified_ms: f.modified_ms,
                status: status.into(),
                attempts: attempts + 1,
                rows,
                version,
                error,
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            };
            self.catalog()
                .record_source_file(&source.name, &record)
                .await?;
        }
        Ok(())
    }

    /// The session a source runs in: its owner's, from origin `source:<name>`.
    async fn owner_session(&self, source: &Source) -> Result<Session> {
        self.user_session(&source.owner, &[], &format!("source:{}", source.name))
            .await
    }

    /// A PostgreSQL source's run: the query's rows (past the last watermark) into its table.
    async fn load_postgres(&self, source: &Source, run: &mut SourceRun) -> Result<()> {
        let text = |k: &str| source.setting(k).map(str::to_string);
        let password = match (text("password_env"), text("password_file")) {
            (Some(var), _) => Some(std::env::var(&var).map_err(|_| {
                ServiceError::Invalid(format!(
                    "the password variable {var} is not set in the server's environment"
                ))
            })?),
            (None, Some(file)) => Some(
                std::fs::read_to_string(&file)
                    .map_err(|e| ServiceError::Invalid(format!("the password file {file}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let query = basin_ingest::PgQuery {
            url: text("url").unwrap_or_default(),
            password,
            query: text("query").unwrap_or_default(),
            watermark: text("watermark"),
        };
        let key: Vec<String> =
            serde_json::from_value(source.config["key"].clone()).unwrap_or_default();
        let low = source
            .state
            .get("watermark")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let file = scratch_path(source, ".ndjson");
        let exported = basin_ingest::export_pg(&query, low.as_deref(), &file).await;
        let result = async {
            let exported = exported?;
            if exported.any {
                let (mode, load_id) = match &query.watermark {
                    Some(_) => {
                        let range = format!("{low:?}\n{:?}", exported.high);
                        (LoadMode::Upsert, Some(load_id(source, &range)))
                    }
                    None => (LoadMode::Overwrite(None), None),
                };
                let session = self.owner_session(source).await?;
                let request = LoadRequest {
                    mode,
                    key,
                    load_id,
                    ..ndjson_load(source, &file)
                };
                let report = session.load(request, Default::default()).await?;
                run.files = 1;
                run.rows = report.rows;
                run.bytes = report.bytes;
            }
            if let Some(high) = exported.high
                && Some(&high) != low.as_ref()
            {
                self.catalog()
                    .set_source_state(&source.name, &json!({"watermark": high}))
                    .await?;
            }
            Ok(())
        }
        .await;
        drop(file);
        result
    }

    /// A Kafka source's run: each partition's records past the offset the table holds into
    /// the table, one load per partition. The next offset of each partition is a Delta `txn`
    /// action (`basin-source-<name>-<partition>`) committed with the rows, so the table and its
    /// offsets never disagree: a run cut off anywhere reads from the offset of the last commit.
    async fn load_kafka(&self, source: &Source, run: &mut SourceRun) -> Result<()> {
        let brokers: Vec<String> =
            serde_json::from_value(source.config["brokers"].clone()).unwrap_or_default();
        let topic = source.setting("topic").unwrap_or_default();
        let kafka = basin_ingest::KafkaTopic::connect(&brokers, topic).await?;
        let session = self.owner_session(source).await?;
        // Each partition's offset only moves with its own commits: one read of the table serves
        // the whole run.
        let table = match self.catalog().table(&source.table).await? {
            Some(entry) => Some(basin_lake::LakeTable::open(&entry.location).await?),
            None => None,
        };
        let mut offsets = serde_json::Map::new();
        for p in kafka.partitions().await? {
            let app_id = format!("basin-source-{}-{p}", source.name);
            let committed = match &table {
                Some(table) => table.transaction_version(&app_id).await?,
                None => None,
            };
            let file = scratch_path(source, ".ndjson");
            let result = async {
                let (from, to) = kafka.read(p, committed, &file).await?;
                offsets.insert(p.to_string(), json!(to));
                if to <= from {
                    return Ok(());
                }
                let request = LoadRequest {
                    // A message that is not a record of the table must not stop the
                    // partition: it goes to `<table>__rejected`.
                    max_bad_rows: u64::MAX,
                    transaction: Some((app_id.clone(), to)),
                    ..ndjson_load(source, &file)
                };
                let report = session.load(request, Default::default()).await?;
                run.files += 1;
                run.rows += report.rows;
                run.bytes += report.bytes;
                Ok::<_, ServiceError>(())
            }
            .await;
            drop(file);
            result?;
        }
        // For `basin source show` only: the table's txn actions are the truth.
        self.catalog()
            .set_source_state(&source.name, &json!({ "offsets": offsets }))
            .await?;
        Ok(())
    }

    /// Runs every source that is due (not paused, its interval passed since its last run on
    /// this node), each under its lease, until the returned task is aborted.
    pub fn spawn_sources(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            // When each source last ran (or was first seen) on this node.
            let mut last: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
                Default::default();
            let running: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>> =
                Default::default();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let sources = match hub.catalog().sources().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("cannot read the sources: {e}");
                        continue;
                    }
                };
                let now = chrono::Utc::now();
                for s in sources.into_iter().filter(|s| !s.paused) {
                    let due = match (&s.cron, last.get(&s.name)) {
                        // A cron source waits for its next time; an interval one runs at once.
                        (Some(_), None) => {
                            last.insert(s.name.clone(), now);
                            false
                        }
                        (Some(expr), Some(at)) => cron_of(expr)
                            .ok()
                            .and_then(|c| c.find_next_occurrence(at, false).ok())
                            .is_some_and(|next| next <= now),
                        (None, None) => true,
                        (None, Some(at)) => {
                            now - *at >= chrono::Duration::seconds(s.every_secs as i64)
                        }
                    };
                    if !due
                        || !running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(s.name.clone())
                    {
                        continue;
                    }
                    last.insert(s.name.clone(), now);
                    let (hub, running) = (hub.clone(), running.clone());
                    tokio::spawn(async move {
                        if let Err(e) = hub.run_source_exclusive(&s.name, "schedule").await {
                            tracing::warn!(source = %s.name, "a source run failed: {e}");
                        }
                        running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&s.name);
                    });
                }
            }
        })
    }
}

/// The load id of what a source reads (a file, a range of a watermark), recorded in the
/// table's Delta log with the rows: the same input is never loaded twice.
fn load_id(source: &Source, input: &str) -> String {
    let hash = sha2::Sha256::digest(input.as_bytes());
    format!("source-{}-{}", source.name, &hex::encode(hash)[..24])
}

/// A load of the NDJSON file `file` a run wrote into `source`'s table.
fn ndjson_load(source: &Source, file: &std::path::Path) -> LoadRequest {
    let mut read = basin_ingest::ReadOptions::default();
    read.format = Some(basin_ingest::Format::Ndjson);
    LoadRequest {
        table: Some(source.table.clone()),
        inputs: vec![file.display().to_string()],
        read,
        ..Default::default()
    }
}

/// A new path in the temporary folder for what a run of `source` reads (ending in `suffix`).
fn scratch_path(source: &Source, suffix: &str) -> Scratch {
    Scratch(std::env::temp_dir().join(format!(
        "basin-source-{}-{:016x}{suffix}",
        source.name,
        rand::random::<u64>()
    )))
}

/// A scratch file or folder, removed when dropped: also when a run is cancelled mid-way (the
/// server stopping), which would otherwise leave it behind.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0).or_else(|_| std::fs::remove_dir_all(&self.0));
    }
}

/// A cron expression (five fields, or six with seconds), or why it is not one.
fn cron_of(expr: &str) -> Result<croner::Cron> {
    expr.parse::<croner::Cron>().map_err(|e| {
        ServiceError::Invalid(format!(
            "'{expr}' is not a cron expression ({e}): write five fields, e.g. '0 2 * * *' for 02:00 UTC every day"
        ))
    })
}
