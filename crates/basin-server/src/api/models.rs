//! Models: a project planned and applied (its files sent as JSON), models listed and run
//! (see docs/models.md).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State as AxState};
use axum::{Extension, Json};
use basin_catalog::ModelRun;
use basin_core::TableRef;
use basin_service::Project;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Body2, Caller};
use crate::State;
use crate::error::ApiError;

/// A project folder's files.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectRequest {
    /// Each file's text by its path in the folder: `basin.toml`,
    /// `models/<dataset>/<table>.sql`.
    files: BTreeMap<String, String>,
    /// The hub to plan or apply on (default: the project's `hub`, else main).
    hub: Option<String>,
}

fn project_of(r: &ProjectRequest) -> ApiResult<Project> {
    Project::from_files(&r.files).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn plan_view(plan: &basin_service::Plan) -> Value {
    let text = plan.to_string();
    json!({
        "project": plan.project,
        "hub": plan.hub,
        "changes": plan.changes.len(),
        "runs": plan.to_run().iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "text": text,
    })
}

#[utoipa::path(post, path = "/api/v1/projects/plan", request_body = ProjectRequest,
    responses((status = 200, description = "What applying would change (nothing is changed)", body = Object),
              (status = 400, description = "A malformed project, naming the file and line", body = crate::error::Problem)))]
pub(crate) async fn plan_project(
    Extension(c): Extension<Caller>,
    Body2(r): Body2<ProjectRequest>,
) -> ApiResult<Json<Value>> {
    let plan = c
        .session
        .plan_project(&project_of(&r)?, r.hub.as_deref())
        .await?;
    Ok(Json(plan_view(&plan)))
}

#[utoipa::path(post, path = "/api/v1/projects/apply", request_body = ProjectRequest,
    responses((status = 200, description = "The plan applied and the runs of the models it built (each with its status)", body = Object),
              (status = 400, description = "A malformed project, naming the file and line", body = crate::error::Problem),
              (status = 403, description = "You may not create or manage what it changes", body = crate::error::Problem)))]
pub(crate) async fn apply_project(
    Extension(c): Extension<Caller>,
    Body2(r): Body2<ProjectRequest>,
) -> ApiResult<Json<Value>> {
    let applied = c
        .session
        .apply_project(&project_of(&r)?, r.hub.as_deref())
        .await?;
    Ok(Json(
        json!({"plan": plan_view(&applied.plan), "runs": applied.runs}),
    ))
}

#[utoipa::path(get, path = "/api/v1/models",
    responses((status = 200, description = "The models whose tables you see, with their last runs", body = Object)))]
pub(crate) async fn list_models(Extension(c): Extension<Caller>) -> ApiResult<Json<Value>> {
    let models: Vec<Value> = c
        .session
        .models()
        .await?
        .into_iter()
        .map(|(m, runs)| json!({"model": m.table.to_string(), "project": m.project, "owner": m.owner, "spec": m.spec, "updated_at": m.updated_at, "last_runs": runs}))
        .collect();
    Ok(Json(json!({"models": models})))
}

/// Whether to run what reads the model too.
#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct RunParams {
    #[serde(default)]
    downstream: bool,
    /// Rebuild the model in full even if it is incremental.
    #[serde(default)]
    full: bool,
}

fn table_of(name: &str) -> ApiResult<TableRef> {
    TableRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[utoipa::path(post, path = "/api/v1/models/{name}/run", params(("name" = String, Path), RunParams),
    responses((status = 200, description = "The runs, in order (a failed one says why)", body = Object),
              (status = 403, description = "Not its owner, nor a manager of its table", body = crate::error::Problem),
              (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn run_model(
    AxState(state): AxState<State>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    Query(p): Query<RunParams>,
) -> ApiResult<Json<Vec<ModelRun>>> {
    let runs = c
        .session
        .run_model(&state.hub, &table_of(&name)?, p.downstream, p.full)
        .await?;
    Ok(Json(runs))
}

#[utoipa::path(get, path = "/api/v1/models/{name}/runs", params(("name" = String, Path)),
    responses((status = 200, description = "The model's last runs, newest first, with its checks", body = Object),
              (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn model_runs(
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ModelRun>>> {
    let t = table_of(&name)?;
    let found = c
        .session
        .models()
        .await?
        .into_iter()
        .find(|(m, _)| m.table == t);
    match found {
        Some((_, runs)) => Ok(Json(runs)),
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("model {t} not found"),
        )),
    }
}

/// Which way and how far to follow lineage.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineageParams {
    /// `up` (what feeds the table, default) or `down` (what it feeds).
    direction: Option<String>,
    /// Steps to follow (default 1, at most 20).
    depth: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/lineage/{table}", params(("table" = String, Path), LineageParams),
    responses((status = 200, description = "The table edges (upstream, downstream, kind, via) and, along them, the column edges (upstream, upstream_column, downstream, downstream_column, kind, via) you may see", body = Object),
              (status = 404, description = "Missing or invisible", body = crate::error::Problem)))]
pub(crate) async fn lineage(
    Extension(c): Extension<Caller>,
    Path(table): Path<String>,
    Query(p): Query<LineageParams>,
) -> ApiResult<Json<Value>> {
    let direction = match p.direction.as_deref() {
        None | Some("up") => basin_service::Direction::Up,
        Some("down") => basin_service::Direction::Down,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "direction '{other}' is not known: use up or down"
            )));
        }
    };
    let depth = p.depth.unwrap_or(1);
    if !(1..=20).contains(&depth) {
        return Err(ApiError::bad_request("depth is 1 to 20"));
    }
    let t = table_of(&table)?;
    let (edges, columns) = c.session.lineage_with_columns(&t, direction, depth).await?;
    Ok(Json(
        json!({"table": t.to_string(), "edges": edges, "columns": columns}),
    ))
}
