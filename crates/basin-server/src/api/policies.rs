//! Row filters and column masks (MANAGE on the table; masks of PII columns: administrators).

use axum::{Extension, Json};
use basin_catalog::access::{ColumnMask, RowFilter};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller, table_named};
use crate::error::ApiError;

/// A row filter: rows of `table` outside `expression` are invisible to `grantee`'s members.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterRequest {
    /// `hub.dataset.table` or `dataset.table`.
    table: String,
    grantee: String,
    /// SQL over the table's columns; `user_attribute('key')` and `current_user()` refer to the
    /// reader. Needed to set, ignored to drop.
    expression: Option<String>,
}

/// A mask of one column for `grantee`'s members.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaskRequest {
    table: String,
    column: String,
    grantee: String,
    /// null, hash, keep_last(N) or expr:<SQL>. Needed to set, ignored to drop.
    mask: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Dropped {
    dropped: bool,
}

/// The row filters on the tables the caller manages.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RowFilterList {
    row_filters: Vec<FilterRequest>,
}

/// The column masks on the tables the caller manages.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MaskList {
    masks: Vec<MaskRequest>,
}

#[utoipa::path(get, path = "/api/v1/policies/row-filters",
    responses((status = 200, description = "Row filters on the tables the caller manages (administrators: all)", body = RowFilterList)))]
pub(crate) async fn list_row_filters(
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<RowFilterList>> {
    let row_filters = c.session.row_filters().await?;
    Ok(Json(RowFilterList {
        row_filters: row_filters
            .into_iter()
            .map(|f| FilterRequest {
                table: f.table.to_string(),
                grantee: f.grantee,
                expression: Some(f.expression),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/policies/masks",
    responses((status = 200, description = "Column masks on the tables the caller manages (administrators: all)", body = MaskList)))]
pub(crate) async fn list_masks(Extension(c): Extension<Caller>) -> ApiResult<Json<MaskList>> {
    let masks = c.session.masks().await?;
    Ok(Json(MaskList {
        masks: masks
            .into_iter()
            .map(|m| MaskRequest {
                table: m.table.to_string(),
                column: m.column,
                grantee: m.grantee,
                mask: Some(m.mask.to_string()),
            })
            .collect(),
    }))
}

#[utoipa::path(put, path = "/api/v1/policies/row-filters", request_body = FilterRequest,
    responses((status = 200, description = "Row filter set (it was run once on the table first)", body = FilterRequest), (status = 400, description = "The expression fails on the table", body = crate::error::Problem)))]
pub(crate) async fn set_row_filter(
    Extension(c): Extension<Caller>,
    Body2(f): Body2<FilterRequest>,
) -> ApiResult<Json<FilterRequest>> {
    let expression = f
        .expression
        .clone()
        .ok_or_else(|| ApiError::bad_request("a row filter needs 'expression'"))?;
    let filter = RowFilter {
        table: table_named(&f.table)?,
        grantee: f.grantee.clone(),
        expression,
    };
    c.session.set_row_filter(&filter).await?;
    Ok(Json(FilterRequest {
        table: filter.table.to_string(),
        grantee: filter.grantee,
        expression: Some(filter.expression),
    }))
}

#[utoipa::path(delete, path = "/api/v1/policies/row-filters", request_body = FilterRequest, responses((status = 200, description = "Row filter removed", body = Dropped)))]
pub(crate) async fn drop_row_filter(
    Extension(c): Extension<Caller>,
    Body2(f): Body2<FilterRequest>,
) -> ApiResult<Json<Dropped>> {
    let table = table_named(&f.table)?;
    c.session.drop_row_filter(&table, &f.grantee).await?;
    Ok(Json(Dropped { dropped: true }))
}

#[utoipa::path(put, path = "/api/v1/policies/masks", request_body = MaskRequest,
    responses((status = 200, description = "Mask set (it was run once on the table first)", body = MaskRequest), (status = 403, description = "No MANAGE, or a PII column and not an administrator", body = crate::error::Problem)))]
pub(crate) async fn set_mask(
    Extension(c): Extension<Caller>,
    Body2(m): Body2<MaskRequest>,
) -> ApiResult<Json<MaskRequest>> {
    let mask = m
        .mask
        .as_deref()
        .ok_or_else(|| {
            ApiError::bad_request("a mask needs 'mask': null, hash, keep_last(N) or expr:<SQL>")
        })?
        .parse()?;
    let mask = ColumnMask {
        table: table_named(&m.table)?,
        column: m.column.clone(),
        grantee: m.grantee.clone(),
        mask,
    };
    c.session.set_mask(&mask).await?;
    Ok(Json(MaskRequest {
        table: mask.table.to_string(),
        column: mask.column,
        grantee: mask.grantee,
        mask: Some(mask.mask.to_string()),
    }))
}

#[utoipa::path(delete, path = "/api/v1/policies/masks", request_body = MaskRequest, responses((status = 200, description = "Mask removed", body = Dropped)))]
pub(crate) async fn drop_mask(
    Extension(c): Extension<Caller>,
    Body2(m): Body2<MaskRequest>,
) -> ApiResult<Json<Dropped>> {
    let table = table_named(&m.table)?;
    c.session.drop_mask(&table, &m.column, &m.grantee).await?;
    Ok(Json(Dropped { dropped: true }))
}
