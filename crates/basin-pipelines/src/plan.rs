//! A project compared with the catalog of one hub: what applying it creates, changes, rebuilds
//! and drops, and the order its models run in. Reading a plan changes nothing.

use std::fmt;

use basin_core::{DatasetRef, TableRef};
use basin_sql::Engine;

use crate::project::{DatasetSpec, Materialized, ModelSpec, Project};
use crate::{PipelineError, Result};

/// One change a plan makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateDataset(DatasetSpec),
    /// The fields of the dataset that change.
    AlterDataset(DatasetSpec, Vec<&'static str>),
    CreateModel(TableRef),
    /// What of the model changes (sql, materialized, checks, description).
    AlterModel(TableRef, Vec<&'static str>),
    /// The model is unchanged but its result is not there (drift): it is built again.
    RebuildModel(TableRef, String),
    /// A model of the project that left the folder (its table stays).
    DropModel(TableRef),
    /// A declared grant the hub does not have (a GRANT statement, one grant).
    Grant(String),
    /// A grant the project declared before and no longer does (a REVOKE statement).
    Revoke(String),
}

/// What applying a project to a hub does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub project: String,
    pub hub: String,
    pub changes: Vec<Change>,
    /// Every model of the project, ready to record, in run order (upstream first).
    pub models: Vec<(TableRef, ModelSpec)>,
    /// Every grant the project declares, one GRANT statement each (recorded once applied).
    pub grants: Vec<String>,
}

impl Plan {
    /// Whether applying changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The models a plan builds: the created, changed and rebuilt ones, and every model
    /// downstream of them, in run order.
    pub fn to_run(&self) -> Vec<TableRef> {
        let mut dirty = built(&self.changes);
        let mut run = Vec::new();
        for (t, spec) in &self.models {
            let name = t.to_string();
            if dirty.contains(&name) || spec.upstream.iter().any(|u| dirty.contains(u)) {
                if !dirty.contains(&name) {
                    dirty.push(name);
                }
                run.push(t.clone());
            }
        }
        run
    }
}

/// The models `changes` create, change or rebuild (`hub.dataset.table`).
fn built(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateModel(t) | Change::AlterModel(t, _) | Change::RebuildModel(t, _) => {
                Some(t.to_string())
            }
            _ => None,
        })
        .collect()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(
                f,
                "No changes: hub {} matches project {}.",
                self.hub, self.project
            );
        }
        writeln!(f, "Plan for project {} on hub {}:", self.project, self.hub)?;
        let (mut add, mut change, mut drop) = (0, 0, 0);
        for c in &self.changes {
            match c {
                Change::CreateDataset(d) => {
                    add += 1;
                    writeln!(f, "  + dataset {} (layer {})", d.name, d.layer)?
                }
                Change::AlterDataset(d, fields) => {
                    change += 1;
                    writeln!(f, "  ~ dataset {}: {}", d.name, fields.join(", "))?
                }
                Change::CreateModel(t) => {
                    add += 1;
                    let m = self.model(t).map_or("table", |m| m.materialized.as_str());
                    writeln!(f, "  + model {t} ({m})")?;
                    self.incremental_note(f, t)?
                }
                Change::AlterModel(t, what) => {
                    change += 1;
                    writeln!(f, "  ~ model {t}: {}", what.join(", "))?;
                    self.incremental_note(f, t)?
                }
                Change::RebuildModel(t, why) => {
                    change += 1;
                    writeln!(f, "  ! model {t}: {why}; it is built again")?
                }
                Change::DropModel(t) => {
                    drop += 1;
                    writeln!(f, "  - model {t} (its table stays)")?
                }
                Change::Grant(g) => {
                    add += 1;
                    writeln!(f, "  + {g}")?
                }
                Change::Revoke(g) => {
                    drop += 1;
                    writeln!(f, "  - {g}")?
                }
            }
        }
        let run: Vec<String> = self.to_run().iter().map(|t| t.to_string()).collect();
        if !run.is_empty() {
            writeln!(f, "Runs, in order: {}", run.join(", "))?;
        }
        writeln!(f, "{add} to add, {change} to change, {drop} to drop.")
    }
}

impl Plan {
    fn model(&self, t: &TableRef) -> Option<&ModelSpec> {
        self.models.iter().find(|(m, _)| m == t).map(|(_, s)| s)
    }

    /// For an incremental model: by which key, or why each run rebuilds it in full.
    fn incremental_note(&self, f: &mut fmt::Formatter<'_>, t: &TableRef) -> fmt::Result {
        let Some(spec) = self
            .model(t)
            .filter(|m| m.materialized == Materialized::Incremental)
        else {
            return Ok(());
        };
        match crate::incremental::why_not(&spec.query, &spec.unique_key) {
            None => writeln!(
                f,
                "      incremental by {}: each run recomputes the keys that upstream changes touch",
                spec.unique_key.join(", ")
            ),
            Some(why) => writeln!(
                f,
                "      not maintainable incrementally ({why}): each run rebuilds it in full"
            ),
        }
    }
}

/// Compares `project` with hub `hub` as `engine`'s principal sees it.
pub async fn plan(engine: &Engine, project: &Project, hub: &str) -> Result<Plan> {
    let catalog = engine.catalog();
    let mut changes = Vec::new();
    for d in &project.datasets {
        match catalog.dataset(&DatasetRef::new(hub, &d.name)?).await? {
            None => changes.push(Change::CreateDataset(d.clone())),
            Some(have) => {
                let mut fields = Vec::new();
                if have.layer != d.layer {
                    fields.push("layer");
                }
                if d.domain.is_some() && have.domain != d.domain {
                    fields.push("domain");
                }
                if d.owner.is_some() && have.owner != d.owner {
                    fields.push("owner");
                }
                if have.description != d.description {
                    fields.push("description");
                }
                if d.update_frequency.is_some()
                    && have.contract.update_frequency != d.update_frequency
                {
                    fields.push("update_frequency");
                }
                if d.support_contact.is_some() && have.contract.support_contact != d.support_contact
                {
                    fields.push("support_contact");
                }
                if !fields.is_empty() {
                    changes.push(Change::AlterDataset(d.clone(), fields));
                }
            }
        }
    }
    let mut models = Vec::new();
    for spec in &project.models {
        let target = TableRef::new(hub, &spec.dataset, &spec.table)?;
        let declared = project.datasets.iter().any(|d| d.name == spec.dataset);
        if !declared && catalog.dataset(&target.dataset_ref()).await?.is_none() {
            return Err(PipelineError::Project {
                file: spec.path.clone(),
                line: None,
                message: format!(
                    "dataset '{}' is neither declared in basin.toml nor in hub {hub}",
                    spec.dataset
                ),
            });
        }
        let (query, upstream) =
            Engine::qualify_query(&spec.sql, hub).map_err(|e| PipelineError::Project {
                file: spec.path.clone(),
                line: None,
                message: e.to_string(),
            })?;
        let mut spec = spec.clone();
        spec.query = query;
        spec.upstream = upstream.iter().map(|t| t.to_string()).collect();
        models.push((target, spec));
    }
    let graph: Vec<(TableRef, Vec<TableRef>)> =
        models.iter().map(|(t, s)| (t.clone(), s.reads())).collect();
    let order = crate::dag::order(&graph)?;
    models.sort_by_key(|(t, _)| order.iter().position(|o| o == t));
    for (target, spec) in &models {
        let table = catalog.table(target).await?;
        match catalog.model(target).await? {
            Some(have) if have.project != project.name => {
                return Err(PipelineError::Project {
                    file: spec.path.clone(),
                    line: None,
                    message: format!(
                        "{target} is built by a model of project '{}'; a table has one model",
                        have.project
                    ),
                });
            }
            Some(have) => {
                let before: ModelSpec = serde_json::from_value(have.spec).map_err(|e| {
                    PipelineError::Run(format!("the catalog's record of model {target}: {e}"))
                })?;
                let what: Vec<&'static str> = [
                    ("sql", before.query != spec.query),
                    ("materialized", before.materialized != spec.materialized),
                    ("unique_key", before.unique_key != spec.unique_key),
                    ("export", before.export != spec.export),
                    ("checks", before.checks != spec.checks),
                    ("trigger", before.trigger != spec.trigger),
                    ("description", before.description != spec.description),
                ]
                .into_iter()
                .filter_map(|(field, changed)| changed.then_some(field))
                .collect();
                if !what.is_empty() {
                    changes.push(Change::AlterModel(target.clone(), what));
                } else if table.is_none()
                    && !matches!(
                        spec.materialized,
                        Materialized::Export | Materialized::Audit
                    )
                {
                    changes.push(Change::RebuildModel(
                        target.clone(),
                        "its table is missing".into(),
                    ));
                } else if table.as_ref().is_some_and(|t| {
                    (t.kind == "view") != (spec.materialized == Materialized::View)
                }) {
                    changes.push(Change::RebuildModel(
                        target.clone(),
                        "its table was replaced by hand".into(),
                    ));
                }
            }
            None => changes.push(Change::CreateModel(target.clone())),
        }
    }
    // A query whose tables are all there (none of them rebuilt by this plan) must plan now:
    // a wrong column or a table the owner may not read is refused before anything changes.
    let rebuilt = built(&changes);
    for (_, spec) in &models {
        if spec.upstream.iter().any(|u| rebuilt.contains(u)) {
            continue;
        }
        if let Err(e) = engine.execute(&format!("EXPLAIN {}", spec.query)).await {
            return Err(PipelineError::Project {
                file: spec.path.clone(),
                line: None,
                message: format!("the query does not plan: {e}"),
            });
        }
    }
    for have in catalog.models().await? {
        if have.project == project.name
            && have.table.hub.as_str() == hub
            && !models.iter().any(|(t, _)| t == &have.table)
        {
            changes.push(Change::DropModel(have.table));
        }
    }
    // Grants: each declared one the hub lacks is made (again, if revoked by hand); one the
    // project declared before and no longer does is revoked.
    let mut grants = Vec::new();
    for text in &project.grants {
        for g in basin_sql::expand_grant(text, hub)? {
            let statement = basin_sql::grant_statement(&g, false);
            if !grants.contains(&statement) {
                grants.push(statement);
            }
        }
    }
    let have: Vec<String> = catalog
        .grants()
        .await?
        .iter()
        .map(|g| basin_sql::grant_statement(g, false))
        .collect();
    for g in &grants {
        if !have.contains(g) {
            changes.push(Change::Grant(g.clone()));
        }
    }
    for g in catalog.project_grants(&project.name, hub).await? {
        if !grants.contains(&g) && have.contains(&g) {
            for old in basin_sql::expand_grant(&g, hub)? {
                changes.push(Change::Revoke(basin_sql::grant_statement(&old, true)));
            }
        }
    }
    Ok(Plan {
        project: project.name.clone(),
        hub: hub.to_string(),
        changes,
        models,
        grants,
    })
}
