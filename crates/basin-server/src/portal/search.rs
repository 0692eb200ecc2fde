//! `GET /search`: the search page (the header's box submits here). Ranked, typo-tolerant hits
//! from `Session::search` — only what the viewer may see — with facets as links that add or
//! remove a filter, and "next page" links.

use axum::extract::Query;
use basin_service::{FacetCount, SearchHit, SearchQuery};
use maud::{Markup, html};
use serde::Deserialize;

use super::{PortalResult, Viewer, page, url_encode};

#[derive(Deserialize, Default, Clone)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    hub: Option<String>,
    layer: Option<String>,
    domain: Option<String>,
    tag: Option<String>,
    owner: Option<String>,
    page: Option<String>,
}

/// The filters, by facet name.
const FACETS: [&str; 5] = ["hub", "layer", "domain", "tag", "owner"];

impl SearchParams {
    fn filter(&self, facet: &str) -> Option<&str> {
        match facet {
            "hub" => self.hub.as_deref(),
            "layer" => self.layer.as_deref(),
            "domain" => self.domain.as_deref(),
            "tag" => self.tag.as_deref(),
            "owner" => self.owner.as_deref(),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }

    /// The URL of this search with `facet` set to `value` (`None`: removed), from page one.
    fn with(&self, facet: &str, value: Option<&str>) -> String {
        let mut url = format!("/search?q={}", url_encode(&self.q));
        for f in FACETS {
            let v = if f == facet { value } else { self.filter(f) };
            if let Some(v) = v {
                url.push_str(&format!("&{f}={}", url_encode(v)));
            }
        }
        url
    }
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// `GET /search?q=&hub=&layer=&domain=&tag=&owner=&page=`.
pub(crate) async fn search(viewer: Viewer, Query(p): Query<SearchParams>) -> PortalResult {
    let q = p.q.trim().to_string();
    let results = if q.is_empty() {
        None
    } else {
        Some(
            viewer
                .session
                .search(&SearchQuery {
                    q: q.clone(),
                    hub: nonempty(&p.hub),
                    layer: nonempty(&p.layer),
                    domain: nonempty(&p.domain),
                    tag: nonempty(&p.tag),
                    owner: nonempty(&p.owner),
                    limit: Some(20),
                    page_token: nonempty(&p.page),
                })
                .await,
        )
    };
    let body = html! {
        h1 { "Search" }
        form.search.big role="search" action="/search" method="get" {
            label for="search-q" { "Search hubs, datasets, tables and columns" }
            input #search-q type="search" name="q" value=(q);
            @for f in FACETS { @if let Some(v) = p.filter(f) { input type="hidden" name=(f) value=(v); } }
            button type="submit" { "Search" }
        }
        @match results {
            None => { p.muted { "Type a few words: names, descriptions, tags, domains or owners. Typos are forgiven." } }
            Some(Err(e)) => { p.error role="alert" { (super::PortalError::from(e).message) } }
            Some(Ok(r)) => {
                @let active: Vec<(&str, &str)> = FACETS.iter().filter_map(|f| p.filter(f).map(|v| (*f, v))).collect();
                @if !active.is_empty() {
                    p.filters {
                        "Filtered by: "
                        @for (f, v) in &active {
                            a.tag href=(p.with(f, None)) aria-label={ "Remove filter " (f) " " (v) } { (f) ": " (v) " ×" }
                        }
                    }
                }
                p role="status" { (r.total) " result" @if r.total != 1 { "s" } " for “" (q) "”" }
                @if r.stale { p.muted { "The catalog just changed and the search index is being updated: results may lag by a moment." } }
                div.search-layout {
                    aside.facets aria-label="Filters" {
                        (facet(&p, "hub", "Hub", &r.facets.hub))
                        (facet(&p, "layer", "Layer", &r.facets.layer))
                        (facet(&p, "domain", "Domain", &r.facets.domain))
                        (facet(&p, "tag", "Tag", &r.facets.tag))
                        (facet(&p, "owner", "Owner", &r.facets.owner))
                    }
                    ol.results {
                        @for h in &r.hits { li { (hit(h)) } }
                    }
                }
                @if let Some(next) = &r.next_page_token {
                    nav.pager aria-label="Pages" {
                        a rel="next" href={ (p.with("", None)) "&page=" (url_encode(next)) } { "Next results" }
                    }
                }
            }
        }
    };
    let title = if q.is_empty() {
        "Search".to_string()
    } else {
        format!("Search: {q}")
    };
    Ok(page(&title, &viewer, body))
}

fn facet(p: &SearchParams, key: &str, label: &str, counts: &[FacetCount]) -> Markup {
    let chosen = p.filter(key);
    html! {
        @if !counts.is_empty() {
            section {
                h2 { (label) }
                ul {
                    @for c in counts {
                        li {
                            @if chosen == Some(c.value.as_str()) {
                                a aria-current="true" href=(p.with(key, None)) { strong { (c.value) } " (" (c.count) ") ×" }
                            } @else {
                                a href=(p.with(key, Some(&c.value))) { (c.value) " (" (c.count) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a hit's page is: its hub, dataset or table (a column: its table's page).
fn hit_path(h: &SearchHit) -> String {
    let mut path = format!("/hubs/{}", url_encode(&h.hub));
    for part in [&h.dataset, &h.table].into_iter().flatten() {
        path.push('/');
        path.push_str(&url_encode(part));
    }
    path
}

fn hit(h: &SearchHit) -> Markup {
    html! {
        span.marker.status { (h.kind) }
        " "
        a href=(hit_path(h)) { (h.name) }
        @if let Some(t) = &h.data_type { " " code { (t) } }
        @if !h.description.is_empty() { p { (h.description) } }
        p.muted {
            @if let Some(l) = h.layer { "layer " (l) " · " }
            @if let Some(d) = &h.domain { "domain " (d) " · " }
            @if let Some(o) = &h.owner { "owner " (o) " · " }
            "matched by " (h.matched)
            @if h.usage > 0 { " · " (h.usage) " queries in 30 days" }
        }
        @if !h.tags.is_empty() { p { @for t in &h.tags { span.tag { (t) } } } }
    }
}
