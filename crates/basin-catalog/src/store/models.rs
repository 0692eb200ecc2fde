//! Models (SQL that builds a table from other tables, applied from a project folder) and the
//! record of their runs.

use basin_core::TableRef;
use sqlx::any::AnyRow;

use super::{Catalog, get};
use crate::error::DbContext;
use crate::{CatalogError, Result};

/// A model as applied: its target table, its project, what its file says, and its owner.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    #[serde(serialize_with = "as_text")]
    pub table: TableRef,
    pub project: String,
    /// Materialization, SQL, checks and upstream tables (basin-pipelines' `ModelSpec`).
    pub spec: serde_json::Value,
    /// The principal it runs as.
    pub owner: String,
    pub updated_at: String,
}

/// One run of a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelRun {
    /// The model's target, `hub.dataset.table`.
    pub model: String,
    /// `apply`, `manual` or `downstream`.
    pub trigger: String,
    pub started_at: String,
    pub duration_ms: u64,
    /// `ok`, `warned` (a `warn` check failed; committed), `failed` (nothing committed).
    pub status: String,
    pub rows_out: u64,
    /// The target's version the run made (-1: none).
    pub version: i64,
    /// Each check's outcome, with a sample of failing rows.
    pub checks: serde_json::Value,
    pub error: String,
    /// How the run built the table: `full: <why>`, `incremental: …` or `up to date`.
    pub refresh: String,
}

fn as_text<S: serde::Serializer>(t: &TableRef, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}

fn json(r: &AnyRow, column: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&get::<String>(r, column)?)
        .map_err(|e| CatalogError::BadValue(format!("model {column}: {e}")))
}

fn model_from(r: &AnyRow) -> Result<Model> {
    Ok(Model {
        table: TableRef::new(
            &get::<String>(r, "hub")?,
            &get::<String>(r, "dataset")?,
            &get::<String>(r, "table_name")?,
        )?,
        project: get(r, "project")?,
        spec: json(r, "spec")?,
        owner: get(r, "owner")?,
        updated_at: get(r, "updated_at")?,
    })
}

impl Catalog {
    /// Records a model, or replaces the record of the model of the same table.
    pub async fn put_model(&self, m: &Model) -> Result<()> {
        sqlx::query(
            "INSERT INTO models (name, project, hub, dataset, table_name, spec, owner, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET project = excluded.project, spec = excluded.spec,
               owner = excluded.owner, updated_at = excluded.updated_at",
        )
        .bind(m.table.to_string())
        .bind(&m.project)
        .bind(m.table.hub.as_str())
        .bind(m.table.dataset.as_str())
        .bind(m.table.table.as_str())
        .bind(m.spec.to_string())
        .bind(&m.owner)
        .bind(&m.updated_at)
        .execute(&self.pool)
        .await
        .ctx(|| format!("recording model '{}'", m.table))?;
        Ok(())
    }

    /// Every model, by target.
    pub async fn models(&self) -> Result<Vec<Model>> {
        let rows = sqlx::query("SELECT * FROM models ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .ctx(|| "listing models".into())?;
        rows.iter().map(model_from).collect()
    }

    /// The model that builds `table`.
    pub async fn model(&self, table: &TableRef) -> Result<Option<Model>> {
        let row = sqlx::query("SELECT * FROM models WHERE name = $1")
            .bind(table.to_string())
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading model '{table}'"))?;
        row.as_ref().map(model_from).transpose()
    }

    /// The grants project `project` declared on `hub` when it was last applied (GRANT
    /// statements, one grant each).
    pub async fn project_grants(&self, project: &str, hub: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT statement FROM project_grants WHERE project = $1 AND hub = $2 ORDER BY statement",
        )
        .bind(project)
        .bind(hub)
        .fetch_all(&self.pool)
        .await
        .ctx(|| format!("reading the grants of project '{project}'"))?;
        rows.iter().map(|r| get(r, "statement")).collect()
    }

    /// Records the grants project `project` declares on `hub`, replacing those it declared.
    pub async fn set_project_grants(
        &self,
        project: &str,
        hub: &str,
        grants: &[String],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM project_grants WHERE project = $1 AND hub = $2")
            .bind(project)
            .bind(hub)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("recording the grants of project '{project}'"))?;
        for g in grants {
            sqlx::query("INSERT INTO project_grants (project, hub, statement) VALUES ($1, $2, $3)")
                .bind(project)
                .bind(hub)
                .bind(g)
                .execute(&mut *tx)
                .await
                .ctx(|| format!("recording the grants of project '{project}'"))?;
        }
        tx.commit()
            .await
            .ctx(|| format!("recording the grants of project '{project}'"))?;
        Ok(())
    }

    /// Removes a model (its table and its runs stay).
    pub async fn drop_model(&self, table: &TableRef) -> Result<()> {
        sqlx::query("DELETE FROM models WHERE name = $1")
            .bind(table.to_string())
            .execute(&self.pool)
            .await
            .ctx(|| format!("removing model '{table}'"))?;
        Ok(())
    }

    /// Records a run of a model.
    pub async fn record_model_run(&self, r: &ModelRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_runs (model, trigger, started_at, duration_ms, status, rows_out, version, checks, error, refresh)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.model)
        .bind(&r.trigger)
        .bind(&r.started_at)
        .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
        .bind(&r.status)
        .bind(i64::try_from(r.rows_out).unwrap_or(i64::MAX))
        .bind(r.version)
        .bind(r.checks.to_string())
        .bind(&r.error)
        .bind(&r.refresh)
        .execute(&self.pool)
        .await
        .ctx(|| format!("recording a run of model '{}'", r.model))?;
        Ok(())
    }

    /// The newest runs (of one model, or all), newest first.
    pub async fn model_runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<ModelRun>> {
        let rows = sqlx::query(
            "SELECT * FROM model_runs WHERE ($1 = '' OR model = $1) ORDER BY started_at DESC LIMIT $2",
        )
        .bind(model.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing model runs".into())?;
        rows.iter()
            .map(|r| {
                Ok(ModelRun {
                    model: get(r, "model")?,
                    trigger: get(r, "trigger")?,
                    started_at: get(r, "started_at")?,
                    duration_ms: get::<i64>(r, "duration_ms")?.max(0) as u64,
                    status: get(r, "status")?,
                    rows_out: get::<i64>(r, "rows_out")?.max(0) as u64,
                    version: get(r, "version")?,
                    checks: json(r, "checks")?,
                    error: get(r, "error")?,
                    refresh: get(r, "refresh")?,
                })
            })
            .collect()
    }
}
