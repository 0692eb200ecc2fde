//! Models: a project folder planned against and applied to a hub, and models run as their
//! owner. Applying records each model with the applying principal as its owner, then builds the
//! changed models and everything downstream of them, upstream first.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use basin_catalog::access::{Action, Securable};
use basin_catalog::{DatasetUpdate, Model, ModelRun, NewDataset};
use basin_core::{DEFAULT_HUB, TableRef};
use basin_pipelines::{Change, ModelSpec, Plan, Project, Trigger};
use serde_json::json;

use crate::{Hub, Result, ServiceError, Session};

/// What applying a project did: its plan, and the runs of the models it built.
#[derive(Debug, Clone)]
pub struct Applied {
    pub plan: Plan,
    pub runs: Vec<ModelRun>,
}

/// Runs of each model `basin model status` shows.
pub const SHOWN_MODEL_RUNS: usize = 5;

impl Session {
    /// Compares `project` with `hub` (by default the project's hub, else `main`). Changes
    /// nothing.
    pub async fn plan_project(&self, project: &Project, hub: Option<&str>) -> Result<Plan> {
        let hub = hub
            .or(project.hub.as_deref())
            .unwrap_or(DEFAULT_HUB)
            .to_string();
        Ok(basin_pipelines::plan(self.engine(), project, &hub).await?)
    }

    /// Applies `project` to `hub` (see [`Session::plan_project`]): datasets created and
    /// changed, models recorded (run as this principal) and dropped, then the changed models
    /// built in order. A model whose upstream failed is skipped. Audited.
    pub async fn apply_project(&self, project: &Project, hub: Option<&str>) -> Result<Applied> {
        let target = project.name.clone();
        let result = async {
            let plan = self.plan_project(project, hub).await?;
            self.make_changes(&plan).await?;
            let runs = self
                .build(&plan.models, &plan.to_run(), "apply", false)
                .await?;
            // Grants last: a grant on a model's table needs the table built. The project owns
            // the grants it made (and still declares): only those can it revoke later, never
            // one that was there before it declared it.
            let catalog = self.engine().catalog();
            let mut owned: Vec<String> = catalog
                .project_grants(&plan.project, &plan.hub)
                .await?
                .into_iter()
                .filter(|g| plan.grants.contains(g))
                .collect();
            for change in &plan.changes {
                match change {
                    Change::Grant(sql) => {
                        self.engine().execute(sql).await?;
                        if !owned.contains(sql) {
                            owned.push(sql.clone());
                        }
                    }
                    Change::Revoke(sql) => {
                        self.engine().execute(sql).await?;
                    }
                    _ => {}
                }
            }
            catalog
                .set_project_grants(&plan.project, &plan.hub, &owned)
                .await?;
            Ok::<_, ServiceError>(Applied { plan, runs })
        }
        .await;
        let detail = match &result {
            Ok(a) => json!({"changes": a.plan.changes.len(), "runs": a.runs.len()}),
            Err(e) => json!({"error": e.to_string()}),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.audit("project.apply", &target, outcome, detail).await;
        result
    }

    async fn make_changes(&self, plan: &Plan) -> Result<()> {
        let catalog = self.engine().catalog();
        for change in &plan.changes {
            match change {
                Change::CreateDataset(d) => {
                    self.create_dataset(NewDataset {
                        dataset: basin_core::DatasetRef::new(&plan.hub, &d.name)?,
                        layer: d.layer,
                        domain: d.domain.clone(),
                        owner: d.owner.clone(),
                        description: d.description.clone(),
                        tags: d.tags.clone(),
                        contract: basin_catalog::Contract {
                            update_frequency: d.update_frequency.clone(),
                            support_contact: d.support_contact.clone(),
                        },
                    })
                    .await?;
                }
                Change::AlterDataset(d, _) => {
                    let update = DatasetUpdate {
                        layer: Some(d.layer),
                        domain: d.domain.clone(),
                        owner: d.owner.clone(),
                        description: Some(d.description.clone()),
                        update_frequency: d.update_frequency.clone(),
                        support_contact: d.support_contact.clone(),
                    };
                    self.update_dataset(&basin_core::DatasetRef::new(&plan.hub, &d.name)?, &update)
                        .await?;
                }
                _ => {}
            }
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for change in &plan.changes {
            match change {
                Change::CreateModel(t) | Change::AlterModel(t, _) => {
                    self.may_build(t).await?;
                    let spec = plan
                        .models
                        .iter()
                        .find(|(m, _)| m == t)
                        .map(|(_, s)| s)
                        .ok_or_else(|| {
                            ServiceError::Invalid(format!("model {t} is not in the plan"))
                        })?;
                    catalog
                        .put_model(&Model {
                            table: t.clone(),
                            project: plan.project.clone(),
                            spec: serde_json::to_value(spec)
                                .map_err(|e| ServiceError::Invalid(e.to_string()))?,
                            owner: self.principal().name.clone(),
                            updated_at: now.clone(),
                        })
                        .await?;
                }
                Change::DropModel(t) => {
                    self.may_build(t).await?;
                    catalog.drop_model(t).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the principal may build `t`: MANAGE on it when it exists, CREATE in its dataset
    /// when it does not.
    async fn may_build(&self, t: &TableRef) -> Result<()> {
        let engine = self.engine();
        if engine.catalog().table(t).await?.is_some() {
            let object = Securable::table(t);
            self.require_on(&object, Action::Manage(&object)).await
        } else {
            Ok(engine.tables().check_create(&engine.actor(), t).await?)
        }
    }

    /// Runs `targets` (in the order given) as this principal, recording each run; a model
    /// whose upstream model failed in this build is skipped. `full` rebuilds incremental
    /// models in full.
    async fn build(
        &self,
        models: &[(TableRef, ModelSpec)],
        targets: &[TableRef],
        trigger: &str,
        full: bool,
    ) -> Result<Vec<ModelRun>> {
        let mut runs: Vec<ModelRun> = Vec::new();
        for t in targets {
            let Some((_, spec)) = models.iter().find(|(m, _)| m == t) else {
                continue;
            };
            let started_at =
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let started = Instant::now();
            let broken = runs
                .iter()
                .find(|r| r.status == "failed" || r.status == "skipped")
                .filter(|r| spec.upstream.contains(&r.model));
            let outcome = match broken {
                Some(r) => basin_pipelines::RunOutcome {
                    status: "skipped".into(),
                    version: -1,
                    error: format!("its upstream model {} did not build", r.model),
                    ..Default::default()
                },
                None => {
                    // Column lineage and OpenLineage events: derived and sent around the run,
                    // never failing it.
                    let lineage = self.record_column_lineage(t, spec).await;
                    let events = crate::openlineage::RunEvents::start(t, spec, lineage);
                    let outcome = basin_pipelines::run_model(self.engine(), t, spec, full).await;
                    if let Some(events) = events {
                        events.end(&outcome);
                    }
                    outcome
                }
            };
            let run = ModelRun {
                model: t.to_string(),
                trigger: trigger.into(),
                started_at,
                duration_ms: started.elapsed().as_millis() as u64,
                status: outcome.status,
                rows_out: outcome.rows_out,
                version: outcome.version,
                checks: serde_json::to_value(&outcome.checks).unwrap_or_default(),
                error: outcome.error,
                refresh: outcome.refresh,
            };
            self.engine().catalog().record_model_run(&run).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// The models whose tables the principal sees, with their last runs.
    pub async fn models(&self) -> Result<Vec<(Model, Vec<ModelRun>)>> {
        let catalog = self.engine().catalog();
        let mut seen = Vec::new();
        for mut m in catalog.models().await? {
            if self.sees_model(&m).await {
                let runs = catalog
                    .model_runs(Some(&m.table.to_string()), SHOWN_MODEL_RUNS)
                    .await?;
                // Column lineage names upstream columns: it is read through lineage, which
                // shows only the columns the principal sees.
                if let Some(spec) = m.spec.as_object_mut() {
                    spec.remove(basin_sql::lineage::MODEL_COLUMN_LINEAGE);
                }
                seen.push((m, runs));
            }
        }
        Ok(seen)
    }

    async fn sees_model(&self, m: &Model) -> bool {
        m.owner == self.principal().name
            || basin_sql::access::table_policy(self.engine(), &m.table)
                .await
                .is_ok()
    }

    /// Runs the model that builds `t` now — and with `downstream`, every model that reads
    /// it, directly or not, after it — each as its owner; `full` rebuilds `t` in full even if
    /// it is incremental. Who may: a model's owner, or who manages its table.
    pub async fn run_model(
        &self,
        hub: &Hub,
        t: &TableRef,
        downstream: bool,
        full: bool,
    ) -> Result<Vec<ModelRun>> {
        let catalog = self.engine().catalog();
        let all = catalog.models().await?;
        let missing =
            || ServiceError::NotFound(format!("model {t} not found; see `basin model list`"));
        let model = all.iter().find(|m| &m.table == t).ok_or_else(missing)?;
        if !self.sees_model(model).await {
            return Err(missing());
        }
        if model.owner != self.principal().name {
            let object = Securable::table(t);
            self.require_on(&object, Action::Manage(&object)).await?;
        }
        let mut specs: Vec<(TableRef, ModelSpec, String)> = Vec::new();
        for m in &all {
            let spec: ModelSpec = serde_json::from_value(m.spec.clone()).map_err(|e| {
                ServiceError::Invalid(format!("the catalog's record of model {}: {e}", m.table))
            })?;
            specs.push((m.table.clone(), spec, m.owner.clone()));
        }
        let graph: Vec<(TableRef, Vec<TableRef>)> = specs
            .iter()
            .map(|(t, s, _)| (t.clone(), s.reads()))
            .collect();
        let mut chosen = vec![t.to_string()];
        let mut targets = Vec::new();
        for next in basin_pipelines::order(&graph)? {
            let (_, spec, _) = specs
                .iter()
                .find(|(m, _, _)| m == &next)
                .ok_or_else(missing)?;
            let picked = chosen.contains(&next.to_string())
                || (downstream && spec.upstream.iter().any(|u| chosen.contains(u)));
            if picked {
                chosen.push(next.to_string());
                targets.push(next);
            }
        }
        let mut runs = Vec::new();
        for next in targets {
            let (_, spec, owner) = specs
                .iter()
                .find(|(m, _, _)| m == &next)
                .ok_or_else(missing)?;
            let session = hub
                .user_session(owner, &[], &format!("model:{next}"))
                .await?;
            let trigger = if next == *t { "manual" } else { "downstream" };
            let models = [(next.clone(), spec.clone())];
            let full = full && next == *t;
            let mut done = session
                .build(&models, &[next.clone()], trigger, full)
                .await?;
            let failed = done.iter().any(|r| r.status == "failed");
            runs.append(&mut done);
            if failed {
                break;
            }
        }
        Ok(runs)
    }
}

/// Quiet time after a commit to an upstream table before an `on_change` model runs, so that
/// a burst of commits makes one run.
const DEBOUNCE: Duration = Duration::from_secs(2);

/// How often the versions of the tables that `on_change` models read are looked at, to see
/// commits made by other processes (a `basin` CLI, another node), which the bus does not carry.
const POLL: Duration = Duration::from_secs(5);

/// Tries of a scheduled run that fails (waiting 5 s, 10 s, … between them).
const RETRIES: u32 = 3;

/// How long a model's lease outlives a node that stopped renewing it.
const MODEL_LEASE: Duration = Duration::from_secs(60);

impl Hub {
    /// Runs models on their triggers until the task is aborted: `on_change` models once after
    /// a burst of commits to a table they read (commits made through this server — SQL, REST,
    /// sources, streams, other models — at once; commits of other processes within [`POLL`]),
    /// `cron` models at their times. Each run holds the
    /// model's lease (one node runs it), runs as the model's owner, and is recorded; a failed
    /// run is tried again with backoff, up to [`RETRIES`] times.
    pub fn spawn_models(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        let mut commits = hub.tables().subscribe();
        tokio::spawn(async move {
            // When each model is due, and why.
            let mut due: HashMap<String, (Instant, &'static str)> = HashMap::new();
            let mut cron_seen: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
            let mut failures: HashMap<String, u32> = HashMap::new();
            let mut running: HashSet<String> = HashSet::new();
            // The models and their specs, read from the catalog at each tick.
            let mut models: Vec<(String, ModelSpec)> = Vec::new();
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool)>();
            // The Delta id and newest version seen of each table an `on_change` model reads.
            let mut versions: HashMap<String, (String, i64)> = HashMap::new();
            let mut polled: Option<Instant> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    event = commits.recv() => {
                        let event = match event {
                            Ok(e) => e,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return,
                        };
                        if let Some((_, seen)) = versions.get_mut(&event.table) {
                            *seen = (*seen).max(event.version);
                        }
                        upstream_changed(&models, &mut due, &event.table);
                    }
                    Some((name, ok)) = done_rx.recv() => {
                        running.remove(&name);
                        if ok {
                            failures.remove(&name);
                        } else {
                            let n = failures.entry(name.clone()).or_default();
                            *n += 1;
                            if *n < RETRIES {
                                let wait = Duration::from_secs(5 << (*n - 1));
                                due.insert(name, (Instant::now() + wait, "retry"));
                            } else {
                                failures.remove(&name);
                            }
                        }
                    }
                    _ = tick.tick() => {
                        let now = chrono::Utc::now();
                        if let Ok(all) = hub.catalog().models().await {
                            models = all
                                .into_iter()
                                .filter_map(|m| Some((m.table.to_string(), serde_json::from_value(m.spec).ok()?)))
                                .collect();
                        }
                        if polled.is_none_or(|at| at.elapsed() >= POLL) {
                            polled = Some(Instant::now());
                            // A slow store must not hold up the other triggers for long.
                            let moved = tokio::time::timeout(POLL, hub.commits_elsewhere(&models, &mut versions)).await;
                            for table in moved.unwrap_or_default() {
                                upstream_changed(&models, &mut due, &table);
                            }
                        }
                        for (name, spec) in &models {
                            let Trigger::Cron(expr) = &spec.trigger else { continue };
                            let Some(at) = cron_seen.get(name) else {
                                cron_seen.insert(name.clone(), now);
                                continue;
                            };
                            let next = expr
                                .parse::<croner::Cron>()
                                .ok()
                                .and_then(|c| c.find_next_occurrence(at, false).ok());
                            if next.is_some_and(|n| n <= now) {
                                cron_seen.insert(name.clone(), now);
                                due.insert(name.clone(), (Instant::now(), "schedule"));
                            }
                        }
                        let ready: Vec<(String, &'static str)> = due
                            .iter()
                            .filter(|(name, (at, _))| *at <= Instant::now() && !running.contains(*name))
                            .map(|(name, (_, why))| (name.clone(), *why))
                            .collect();
                        for (name, trigger) in ready {
                            due.remove(&name);
                            running.insert(name.clone());
                            let (hub, done) = (hub.clone(), done_tx.clone());
                            tokio::spawn(async move {
                                let ok = match hub.run_model_exclusive(&name, trigger).await {
                                    Ok(ok) => ok,
                                    Err(e) => {
                                        tracing::warn!(model = %name, "a model run failed: {e}");
                                        false
                                    }
                                };
                                let _ = done.send((name, ok));
                            });
                        }
                    }
                }
            }
        })
    }

    /// The tables read by `on_change` models whose version moved past the one in `versions`,
    /// or that were created again (which is brought up to date); a table first seen here only
    /// has its version noted.
    async fn commits_elsewhere(
        &self,
        models: &[(String, ModelSpec)],
        versions: &mut HashMap<String, (String, i64)>,
    ) -> Vec<String> {
        let watched: BTreeSet<&String> = models
            .iter()
            .filter(|(_, spec)| spec.trigger == Trigger::OnChange)
            .flat_map(|(_, spec)| &spec.upstream)
            .collect();
        let mut moved = Vec::new();
        for table in watched {
            let Ok(t) = TableRef::parse(table) else {
                continue;
            };
            // A table that cannot be read now (dropped, storage down) is looked at next time.
            let (version, id, _) = match self.tables().progress(&t, &[]).await {
                Ok(progress) => progress,
                Err(e) => {
                    tracing::debug!(table = %table, "on_change: the table's version cannot be read now: {e}");
                    continue;
                }
            };
            match versions.get(table) {
                Some((seen_id, seen)) if *seen_id == id && *seen >= version => continue,
                Some(_) => moved.push(table.clone()),
                None => {}
            }
            versions.insert(table.clone(), (id, version));
        }
        moved
    }

    /// One run of model `name` under its lease, as its owner; whether it did not fail (a run
    /// held elsewhere counts as done).
    async fn run_model_exclusive(&self, name: &str, trigger: &str) -> Result<bool> {
        let t = TableRef::parse(name)?;
        let outcome = self
            .run_exclusive(&format!("model:{name}"), MODEL_LEASE, |_| async {
                let Some(model) = self.catalog().model(&t).await? else {
                    return Ok(true);
                };
                let spec: ModelSpec = serde_json::from_value(model.spec)
                    .map_err(|e| ServiceError::Invalid(format!("model {name}: {e}")))?;
                let session = self
                    .user_session(&model.owner, &[], &format!("model:{name}"))
                    .await?;
                let runs = session
                    .build(&[(t.clone(), spec)], &[t.clone()], trigger, false)
                    .await?;
                Ok::<_, ServiceError>(runs.iter().all(|r| r.status != "failed"))
            })
            .await?;
        match outcome {
            crate::Exclusive::Ran(ok) => ok,
            crate::Exclusive::Busy(_) | crate::Exclusive::Lost(_) => Ok(true),
        }
    }
}

/// Makes the `on_change` models that read `table` due once it has been quiet for [`DEBOUNCE`].
fn upstream_changed(
    models: &[(String, ModelSpec)],
    due: &mut HashMap<String, (Instant, &'static str)>,
    table: &str,
) {
    for (name, spec) in models {
        if spec.trigger == Trigger::OnChange && spec.upstream.iter().any(|u| u == table) {
            due.insert(name.clone(), (Instant::now() + DEBOUNCE, "upstream"));
        }
    }
}

/// Which way lineage is followed from a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What feeds it.
    Up,
    /// What it feeds.
    Down,
}

impl Session {
    /// The lineage edges within `depth` steps of table `t` in `direction`, as the principal
    /// sees them (a hidden table is neither shown nor followed).
    pub async fn lineage(
        &self,
        t: &TableRef,
        direction: Direction,
        depth: usize,
    ) -> Result<Vec<basin_sql::lineage::LineageEdge>> {
        basin_sql::access::table_policy(self.engine(), t).await?;
        let edges = basin_sql::lineage::edges(self.engine()).await?;
        let mut frontier = vec![t.to_string()];
        let mut seen: HashSet<String> = frontier.iter().cloned().collect();
        let mut found = Vec::new();
        for _ in 0..depth {
            let mut next = Vec::new();
            for e in &edges {
                let (from, to) = match direction {
                    Direction::Up => (&e.downstream, &e.upstream),
                    Direction::Down => (&e.upstream, &e.downstream),
                };
                if frontier.contains(from) && !found.contains(e) {
                    found.push(e.clone());
                    if seen.insert(to.clone()) {
                        next.push(to.clone());
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(found)
    }
}
