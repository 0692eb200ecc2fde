//! Tags: keys and their allowed values (administrators), and the tags of datasets, tables and
//! columns (MANAGE; tags that mark personal data: administrators).

use axum::extract::Path;
use axum::{Extension, Json};
use basin_service::TagAssignment;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body2, Caller};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagDefinition {
    /// The values the tag may take; empty: any.
    #[serde(default)]
    allowed_values: Vec<String>,
}

/// A tag key.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TagKeyView {
    name: String,
    allowed_values: Vec<String>,
}

/// Tags for a dataset, a table or a column.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagRequest {
    /// `dataset HUB.NAME` or `table HUB.DATASET.NAME`.
    object: String,
    column: Option<String>,
    tags: Vec<String>,
}

/// Tags set; when a column became PII, the version of the commit that encrypted it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TagsSet {
    object: String,
    column: Option<String>,
    tags: Vec<String>,
    encrypted_version: Option<i64>,
}

/// The tag keys.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TagKeyList {
    tag_keys: Vec<TagKeyView>,
}

#[utoipa::path(get, path = "/api/v1/tags",
    responses((status = 200, description = "Tag keys and their allowed values (administrators and MANAGE holders)", body = TagKeyList), (status = 403, description = "Neither an administrator nor a MANAGE holder", body = crate::error::Problem)))]
pub(crate) async fn list_tag_keys(Extension(c): Extension<Caller>) -> ApiResult<Json<TagKeyList>> {
    let keys = c.session.tag_keys().await?;
    Ok(Json(TagKeyList {
        tag_keys: keys
            .into_iter()
            .map(|k| TagKeyView {
                name: k.name,
                allowed_values: k.allowed_values,
            })
            .collect(),
    }))
}

#[utoipa::path(put, path = "/api/v1/tags/{key}", params(("key" = String, Path)), request_body = TagDefinition,
    responses((status = 200, description = "Tag defined", body = TagKeyView)))]
pub(crate) async fn define_tag(
    Extension(c): Extension<Caller>,
    Path(key): Path<String>,
    Body2(d): Body2<TagDefinition>,
) -> ApiResult<Json<TagKeyView>> {
    let tag = c.session.define_tag(&key, &d.allowed_values).await?;
    Ok(Json(TagKeyView {
        name: tag.name,
        allowed_values: tag.allowed_values,
    }))
}

#[utoipa::path(put, path = "/api/v1/tags", request_body = TagRequest, responses((status = 200, description = "Tags set; PII columns encrypted", body = TagsSet)))]
pub(crate) async fn set_tags(
    Extension(c): Extension<Caller>,
    Body2(a): Body2<TagRequest>,
) -> ApiResult<Json<TagsSet>> {
    let assignment = TagAssignment {
        object: a.object,
        column: a.column,
        tags: a.tags,
    };
    let encrypted_version = c.session.set_tags(&assignment).await?;
    Ok(Json(TagsSet {
        object: assignment.object,
        column: assignment.column,
        tags: assignment.tags,
        encrypted_version,
    }))
}
