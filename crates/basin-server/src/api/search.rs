//! Search over hubs, datasets, tables and columns, for what the caller may see.

use axum::{Extension, Json};
use basin_service::{FacetCount, SearchHit, SearchQuery, SearchResults};
use serde::{Deserialize, Serialize};

use super::{ApiResult, Caller, Params};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// Words to search for (1–200 characters): names, descriptions, tags, domains, owners.
    q: Option<String>,
    /// Only hits in this hub.
    hub: Option<String>,
    /// Only hits in datasets of this layer: source, prepared or semantic.
    layer: Option<String>,
    /// Only hits in datasets of this domain.
    domain: Option<String>,
    /// Only hits carrying this tag (`key` or `key=value`), inherited tags included.
    tag: Option<String>,
    /// Only hits in datasets of this owner.
    owner: Option<String>,
    /// Hits per page (1–100, default 20).
    limit: Option<usize>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// One hit.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HitView {
    /// hub, dataset, table or column.
    kind: String,
    /// The qualified name: `hub`, `hub.dataset`, `hub.dataset.table` or `hub.dataset.table.column`.
    name: String,
    hub: String,
    dataset: Option<String>,
    table: Option<String>,
    column: Option<String>,
    /// The description, shortened to 300 characters.
    description: String,
    /// Tags in effect (inherited ones included).
    tags: Vec<String>,
    layer: Option<String>,
    domain: Option<String>,
    owner: Option<String>,
    /// A column's SQL type; `table` or `view` for a table.
    data_type: Option<String>,
    /// How it matched: exact (its name), name, text or fuzzy.
    matched: String,
    /// Successful queries naming it (or the tables in it) in the last 30 days.
    usage: u64,
}

impl From<SearchHit> for HitView {
    fn from(h: SearchHit) -> Self {
        HitView {
            kind: h.kind.into(),
            name: h.name,
            hub: h.hub,
            dataset: h.dataset,
            table: h.table,
            column: h.column,
            description: h.description,
            tags: h.tags,
            layer: h.layer.map(str::to_string),
            domain: h.domain,
            owner: h.owner,
            data_type: h.data_type,
            matched: h.matched.into(),
            usage: h.usage,
        }
    }
}

/// How many hits carry one value of a facet.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FacetView {
    value: String,
    count: usize,
}

/// Counts per value; each facet's counts follow the other filters, not its own.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FacetsView {
    hub: Vec<FacetView>,
    layer: Vec<FacetView>,
    domain: Vec<FacetView>,
    tag: Vec<FacetView>,
    owner: Vec<FacetView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SearchAnswer {
    /// Hits on all pages.
    total: usize,
    hits: Vec<HitView>,
    facets: FacetsView,
    /// Continues the search; absent on the last page.
    next_page_token: Option<String>,
    /// Answered from the index as it was before the latest catalog change (the new one was
    /// still building): nothing hidden or dropped since is a hit, but counts may lag.
    stale: bool,
}

fn facet(v: Vec<FacetCount>) -> Vec<FacetView> {
    v.into_iter()
        .map(|f| FacetView {
            value: f.value,
            count: f.count,
        })
        .collect()
}

impl From<SearchResults> for SearchAnswer {
    fn from(r: SearchResults) -> Self {
        SearchAnswer {
            total: r.total,
            hits: r.hits.into_iter().map(HitView::from).collect(),
            facets: FacetsView {
                hub: facet(r.facets.hub),
                layer: facet(r.facets.layer),
                domain: facet(r.facets.domain),
                tag: facet(r.facets.tag),
                owner: facet(r.facets.owner),
            },
            next_page_token: r.next_page_token,
            stale: r.stale,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/search", params(SearchParams), responses(
    (status = 200, description = "Hits the caller may see, best first, with facets", body = SearchAnswer),
    (status = 400, description = "q empty or longer than 200 characters, or a bad filter, limit or page_token", body = crate::error::Problem)))]
pub(crate) async fn search(
    Extension(c): Extension<Caller>,
    Params(p): Params<SearchParams>,
) -> ApiResult<Json<SearchAnswer>> {
    let results = c
        .session
        .search(&SearchQuery {
            q: p.q.unwrap_or_default(),
            hub: p.hub,
            layer: p.layer,
            domain: p.domain,
            tag: p.tag,
            owner: p.owner,
            limit: p.limit,
            page_token: p.page_token,
        })
        .await?;
    Ok(Json(results.into()))
}
