//! Listings of what a caller may see: hubs, the datasets of a hub, the tables of a dataset.
//! Each is paged (`page_size`, `page_token`) in a stable order (by name). Hubs and datasets are
//! changed (PATCH) and deleted (DELETE, only when empty) here too.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use basin_catalog::{Dataset, DatasetUpdate, Hub, Table};
use basin_core::{DatasetRef, Layer};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller, PageParams, Params};
use crate::error::ApiError;

/// A hub.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HubView {
    name: String,
    description: String,
    created_at: String,
}

/// A dataset.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DatasetView {
    name: String,
    /// source, prepared or semantic.
    layer: String,
    domain: Option<String>,
    owner: Option<String>,
    description: String,
    tags: Vec<String>,
    update_frequency: Option<String>,
    support_contact: Option<String>,
    created_at: String,
    updated_at: String,
}

/// A table in a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TableSummary {
    name: String,
    /// `table` or `view`.
    kind: String,
    description: String,
    primary_key: Vec<String>,
    partition_columns: Vec<String>,
    tags: Vec<String>,
    created_at: String,
    updated_at: String,
}

/// A page of hubs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HubPage {
    hubs: Vec<HubView>,
    next_page_token: Option<String>,
}

/// A page of datasets.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DatasetPage {
    datasets: Vec<DatasetView>,
    next_page_token: Option<String>,
}

/// A page of tables.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TablePage {
    tables: Vec<TableSummary>,
    next_page_token: Option<String>,
}

impl From<Hub> for HubView {
    fn from(h: Hub) -> Self {
        HubView {
            name: h.name,
            description: h.description,
            created_at: h.created_at,
        }
    }
}

impl From<Dataset> for DatasetView {
    fn from(d: Dataset) -> Self {
        DatasetView {
            name: d.name,
            layer: d.layer.to_string(),
            domain: d.domain,
            owner: d.owner,
            description: d.description,
            tags: d.tags,
            update_frequency: d.contract.update_frequency,
            support_contact: d.contract.support_contact,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

impl From<Table> for TableSummary {
    fn from(t: Table) -> Self {
        TableSummary {
            name: t.name,
            kind: t.kind,
            description: t.description,
            primary_key: t.primary_key,
            partition_columns: t.partition_columns,
            tags: t.tags,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/hubs", params(PageParams), responses((status = 200, description = "Hubs the caller may see", body = HubPage)))]
pub(crate) async fn list_hubs(
    Extension(c): Extension<Caller>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<HubPage>> {
    let p = c.session.hubs(&page.into()).await?;
    Ok(Json(HubPage {
        hubs: p.items.into_iter().map(HubView::from).collect(),
        next_page_token: p.next_page_token,
    }))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets", params(("hub" = String, Path), PageParams),
    responses((status = 200, description = "Datasets the caller may see", body = DatasetPage), (status = 404, description = "Missing or invisible hub", body = crate::error::Problem)))]
pub(crate) async fn list_datasets(
    Extension(c): Extension<Caller>,
    Path(hub): Path<String>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<DatasetPage>> {
    let p = c.session.datasets(&hub, &page.into()).await?;
    Ok(Json(DatasetPage {
        datasets: p.items.into_iter().map(DatasetView::from).collect(),
        next_page_token: p.next_page_token,
    }))
}

#[utoipa::path(get, path = "/api/v1/hubs/{hub}/datasets/{dataset}/tables", params(("hub" = String, Path), ("dataset" = String, Path), PageParams),
    responses((status = 200, description = "Tables the caller may see", body = TablePage), (status = 404, description = "Missing or invisible dataset", body = crate::error::Problem)))]
pub(crate) async fn list_tables(
    Extension(c): Extension<Caller>,
    Path((hub, dataset)): Path<(String, String)>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<TablePage>> {
    let p = c.session.tables(&hub, &dataset, &page.into()).await?;
    Ok(Json(TablePage {
        tables: p.items.into_iter().map(|(t, _)| t.into()).collect(),
        next_page_token: p.next_page_token,
    }))
}

/// Changes to a hub.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HubPatch {
    /// The new description ("" clears it).
    description: String,
}

/// Changes to a dataset; absent fields stay as they are, "" clears an optional one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetPatch {
    /// source, prepared or semantic.
    layer: Option<String>,
    domain: Option<String>,
    owner: Option<String>,
    description: Option<String>,
    update_frequency: Option<String>,
    support_contact: Option<String>,
}

fn dataset_ref(hub: &str, dataset: &str) -> ApiResult<DatasetRef> {
    DatasetRef::new(hub, dataset)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))
}

#[utoipa::path(patch, path = "/api/v1/hubs/{hub}", params(("hub" = String, Path)), request_body = HubPatch,
    responses((status = 200, description = "The changed hub", body = HubView), (status = 403, description = "Needs MANAGE on the hub", body = crate::error::Problem), (status = 404, description = "Missing or invisible hub", body = crate::error::Problem)))]
pub(crate) async fn update_hub(
    Extension(c): Extension<Caller>,
    Path(hub): Path<String>,
    Body2(patch): Body2<HubPatch>,
) -> ApiResult<Json<HubView>> {
    Ok(Json(
        c.session.update_hub(&hub, &patch.description).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/hubs/{hub}", params(("hub" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Administrators only", body = crate::error::Problem), (status = 404, description = "Missing or invisible hub", body = crate::error::Problem), (status = 409, description = "The hub still holds datasets (named in the message)", body = crate::error::Problem)))]
pub(crate) async fn delete_hub(
    Extension(c): Extension<Caller>,
    Path(hub): Path<String>,
) -> ApiResult<StatusCode> {
    c.session.delete_hub(&hub).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(patch, path = "/api/v1/hubs/{hub}/datasets/{dataset}", params(("hub" = String, Path), ("dataset" = String, Path)), request_body = DatasetPatch,
    responses((status = 200, description = "The changed dataset", body = DatasetView), (status = 403, description = "Needs MANAGE on the dataset", body = crate::error::Problem), (status = 404, description = "Missing or invisible dataset", body = crate::error::Problem)))]
pub(crate) async fn update_dataset(
    Extension(c): Extension<Caller>,
    Path((hub, dataset)): Path<(String, String)>,
    Body2(patch): Body2<DatasetPatch>,
) -> ApiResult<Json<DatasetView>> {
    let d = dataset_ref(&hub, &dataset)?;
    let layer = patch
        .layer
        .map(|l| l.parse::<Layer>())
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let update = DatasetUpdate {
        layer,
        domain: patch.domain,
        owner: patch.owner,
        description: patch.description,
        update_frequency: patch.update_frequency,
        support_contact: patch.support_contact,
    };
    Ok(Json(c.session.update_dataset(&d, &update).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/hubs/{hub}/datasets/{dataset}", params(("hub" = String, Path), ("dataset" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Needs MANAGE on the dataset or its hub", body = crate::error::Problem), (status = 404, description = "Missing or invisible dataset", body = crate::error::Problem), (status = 409, description = "The dataset still holds tables (named in the message)", body = crate::error::Problem)))]
pub(crate) async fn delete_dataset(
    Extension(c): Extension<Caller>,
    Path((hub, dataset)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    c.session
        .delete_dataset(&dataset_ref(&hub, &dataset)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
