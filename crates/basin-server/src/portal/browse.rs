//! Browsing: the start page (hubs), hub pages (datasets by layer, then domain), dataset pages
//! (with the MANAGE holders' edit form) and table pages — each showing only what the viewer's
//! session may see; a hidden object answers 404 like a missing one. Long lists are paged.

use std::collections::BTreeMap;

use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use basin_catalog::access::{Action, Privilege, Securable, TablePolicy};
use basin_catalog::{Dataset, DatasetUpdate, Table};
use basin_core::{DatasetRef, Layer, TableRef};
use basin_service::Page;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    PortalError, PortalResult, Viewer, csrf_field, markdown, page, url_encode, verify_csrf,
};

/// Items per page of the hub and dataset pages.
const PAGE_SIZE: usize = 100;
/// Rows of a table's sample.
const SAMPLE_ROWS: usize = 20;
/// Commits shown in a table's history.
const HISTORY: usize = 20;

/// `?page=<token>` of a paged list.
#[derive(Deserialize)]
pub(crate) struct PageQuery {
    page: Option<String>,
    saved: Option<String>,
}

impl PageQuery {
    fn page(&self) -> Page {
        Page {
            size: Some(PAGE_SIZE),
            token: self.page.clone().filter(|t| !t.is_empty()),
        }
    }
}

/// "Next page" (and "first page") links of a paged list.
fn pager(path: &str, current: &Option<String>, next: &Option<String>) -> Markup {
    html! {
        @if current.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if current.is_some() { a href=(path) { "First page" } }
                @if let Some(n) = next { a href={ (path) "?page=" (url_encode(n)) } rel="next" { "Next page" } }
            }
        }
    }
}

fn tags(tags: &[String]) -> Markup {
    html! { @for t in tags { span.tag { (t) } } }
}

fn hub_path(hub: &str) -> String {
    format!("/hubs/{}", url_encode(hub))
}

fn dataset_path(hub: &str, dataset: &str) -> String {
    format!("/hubs/{}/{}", url_encode(hub), url_encode(dataset))
}

fn table_path(hub: &str, dataset: &str, table: &str) -> String {
    format!(
        "/hubs/{}/{}/{}",
        url_encode(hub),
        url_encode(dataset),
        url_encode(table)
    )
}

/// Breadcrumbs: hub › dataset › table.
fn crumbs(parts: &[(&str, String)]) -> Markup {
    html! {
        nav aria-label="Breadcrumb" {
            ol.crumbs {
                li { a href="/" { "Home" } }
                @for (name, href) in parts { li { a href=(href) { (name) } } }
            }
        }
    }
}

/// `GET /`: the search box and the hubs the viewer sees.
pub(crate) async fn home(viewer: Viewer) -> PortalResult {
    let hubs = viewer
        .session
        .hubs(&Page {
            size: Some(1000),
            token: None,
        })
        .await?;
    let body = html! {
        h1 { "Find data" }
        form.search.big role="search" action="/search" method="get" {
            label for="home-q" { "Search hubs, datasets, tables and columns" }
            input #home-q type="search" name="q";
            button type="submit" { "Search" }
        }
        h2 { "Hubs" }
        @if hubs.items.is_empty() {
            p { "You do not see any hub yet. Ask an owner for access on the Requests page." }
        } @else {
            ul.cards {
                @for h in &hubs.items {
                    li {
                        a href=(hub_path(&h.name)) { (h.name) }
                        @if !h.description.is_empty() { p { (h.description) } }
                    }
                }
            }
        }
    };
    Ok(page("Home", &viewer, body))
}

const LAYERS: [Layer; 3] = [Layer::Source, Layer::Prepared, Layer::Semantic];

/// `GET /hubs/{hub}`: the hub's datasets the viewer sees, grouped by layer, then domain.
pub(crate) async fn hub(
    viewer: Viewer,
    Path(hub): Path<String>,
    Query(q): Query<PageQuery>,
) -> PortalResult {
    let datasets = viewer.session.datasets(&hub, &q.page()).await?;
    let mut groups: BTreeMap<usize, BTreeMap<String, Vec<&Dataset>>> = BTreeMap::new();
    for d in &datasets.items {
        let layer = LAYERS.iter().position(|l| *l == d.layer).unwrap_or(0);
        groups
            .entry(layer)
            .or_default()
            .entry(d.domain.clone().unwrap_or_default())
            .or_default()
            .push(d);
    }
    let body = html! {
        (crumbs(&[(hub.as_str(), hub_path(&hub))]))
        h1 { "Hub " (hub) }
        @if datasets.items.is_empty() { p { "No datasets you can see in this hub." } }
        @for (layer, domains) in &groups {
            h2 { "Layer: " (LAYERS[*layer]) }
            @for (domain, items) in domains {
                h3 { @if domain.is_empty() { "No domain" } @else { "Domain: " (domain) } }
                ul.cards {
                    @for d in items {
                        li {
                            a href=(dataset_path(&d.hub, &d.name)) { (d.name) }
                            @if let Some(o) = &d.owner { p { "Owner: " (o) } }
                            @if !d.description.is_empty() { p { (first_line(&d.description)) } }
                            @if !d.tags.is_empty() { p { (tags(&d.tags)) } }
                        }
                    }
                }
            }
        }
        (pager(&hub_path(&hub), &q.page, &datasets.next_page_token))
    };
    Ok(page(&format!("Hub {hub}"), &viewer, body))
}

/// The first line of a description (for lists), without Markdown markers.
fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim().trim_start_matches(['#', '>', '-', '*', ' ']);
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

fn dataset_securable(d: &Dataset) -> Securable {
    Securable::Dataset {
        hub: d.hub.clone(),
        dataset: d.name.clone(),
    }
}

/// `GET /hubs/{hub}/{dataset}`: the dataset's facts, description, tags, contract and tables.
pub(crate) async fn dataset(
    viewer: Viewer,
    Path((hub, name)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> PortalResult {
    let s = &viewer.session;
    let (d, tables) = s.dataset_and_tables(&hub, &name, &q.page()).await?;
    let object = dataset_securable(&d);
    let manages = s.may(Action::Manage(&object)).await?;
    let reads_all = !tables.items.is_empty()
        && tables
            .items
            .iter()
            .all(|(_, p)| p.allows(Privilege::Select) && p.sees_everything());
    let path = dataset_path(&d.hub, &d.name);
    let body = html! {
        (crumbs(&[(d.hub.as_str(), hub_path(&d.hub)), (d.name.as_str(), path.clone())]))
        h1 { "Dataset " (d.hub) "." (d.name) }
        @if q.saved.is_some() { p.notice role="status" { "Saved." } }
        dl.facts {
            dt { "Layer" } dd { (d.layer) }
            dt { "Domain" } dd { (d.domain.as_deref().unwrap_or("—")) }
            dt { "Owner" } dd { (d.owner.as_deref().unwrap_or("—")) }
            dt { "Tags" } dd { @if d.tags.is_empty() { "—" } @else { (tags(&d.tags)) } }
            dt { "Update frequency" } dd { (d.contract.update_frequency.as_deref().unwrap_or("—")) }
            dt { "Support contact" } dd { (d.contract.support_contact.as_deref().unwrap_or("—")) }
        }
        section aria-labelledby="about" {
            h2 #about { "About" }
            @if d.description.trim().is_empty() { p.muted { "No description yet." } }
            @else { div.markdown { (markdown(&d.description)) } }
        }
        @if !reads_all { (request_access(&object)) }
        section aria-labelledby="tables" {
            h2 #tables { "Tables" }
            @if tables.items.is_empty() { p { "No tables you can see in this dataset." } }
            @else {
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Table" } th scope="col" { "Description" } th scope="col" { "Tags" } th scope="col" { "Your access" } } }
                        tbody {
                            @for (t, p) in &tables.items {
                                tr {
                                    td { a href=(table_path(&t.hub, &t.dataset, &t.name)) { (t.name) } @if t.is_view() { " " span.marker.status { "view" } } }
                                    td { (first_line(&t.description)) }
                                    td { (tags(&t.tags)) }
                                    td { (access_summary(p)) }
                                }
                            }
                        }
                    }
                }
                (pager(&path, &q.page, &tables.next_page_token))
            }
        }
        @if manages { (edit_form(&viewer, &d, &path)) }
    };
    Ok(page(
        &format!("Dataset {}.{}", d.hub, d.name),
        &viewer,
        body,
    ))
}

/// What the viewer may do with a table, in words.
fn access_summary(p: &TablePolicy) -> Markup {
    html! {
        @if p.allows(Privilege::Select) {
            "read"
            @if p.row_filter.is_some() { " " span.marker.filtered { "row-filtered" } }
            @if !p.all_columns { " " span.marker.masked { "some columns hidden" } }
        } @else { span.muted { "metadata only" } }
    }
}

/// The button asking for SELECT on `object` (leads to the request form of `/requests`).
fn request_access(object: &Securable) -> Markup {
    html! {
        p.request {
            a.button href={ "/requests?object=" (url_encode(&object.to_string())) } { "Request access" }
            " "
            span.muted { "You cannot read all of this yet; ask its owners for SELECT." }
        }
    }
}

fn edit_form(viewer: &Viewer, d: &Dataset, path: &str) -> Markup {
    html! {
        section aria-labelledby="edit" {
            h2 #edit { "Edit dataset" }
            form method="post" action=(path) {
                (csrf_field(viewer))
                p {
                    label for="description" { "Description (Markdown)" }
                    textarea #description name="description" { (d.description) }
                }
                p {
                    label for="layer" { "Layer" }
                    select #layer name="layer" {
                        @for l in LAYERS { option value=(l) selected[l == d.layer] { (l) } }
                    }
                }
                p {
                    label for="domain" { "Domain" }
                    input #domain name="domain" type="text" value=(d.domain.as_deref().unwrap_or(""));
                }
                p {
                    label for="update_frequency" { "Update frequency" }
                    input #update_frequency name="update_frequency" type="text" placeholder="daily, hourly, PT15M" value=(d.contract.update_frequency.as_deref().unwrap_or(""));
                }
                p {
                    label for="support_contact" { "Support contact" }
                    input #support_contact name="support_contact" type="text" value=(d.contract.support_contact.as_deref().unwrap_or(""));
                }
                p { button type="submit" { "Save" } }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct DatasetForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    description: Option<String>,
    layer: Option<String>,
    domain: Option<String>,
    update_frequency: Option<String>,
    support_contact: Option<String>,
}

/// `POST /hubs/{hub}/{dataset}`: saves the edit form through the service layer (MANAGE is
/// checked there); only fields that changed are sent.
pub(crate) async fn edit_dataset(
    viewer: Viewer,
    Path((hub, name)): Path<(String, String)>,
    Form(f): Form<DatasetForm>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    let s = &viewer.session;
    let d = s.dataset(&hub, &name).await?;
    let changed = |new: Option<String>, old: Option<&str>| {
        let new = new.map(|v| v.replace("\r\n", "\n"));
        new.filter(|n| n.trim() != old.unwrap_or("").trim())
    };
    let layer = match f.layer.filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<Layer>()
                .map_err(|e| PortalError::bad_request(format!("layer: {e}")))?,
        ),
        None => None,
    }
    .filter(|l| *l != d.layer);
    let update = DatasetUpdate {
        layer,
        domain: changed(f.domain, d.domain.as_deref()),
        owner: None,
        description: changed(f.description, Some(d.description.as_str())),
        update_frequency: changed(f.update_frequency, d.contract.update_frequency.as_deref()),
        support_contact: changed(f.support_contact, d.contract.support_contact.as_deref()),
    };
    let path = dataset_path(&d.hub, &d.name);
    if !update.is_empty() {
        let dref =
            DatasetRef::new(&hub, &name).map_err(|e| PortalError::bad_request(e.to_string()))?;
        s.update_dataset(&dref, &update).await?;
    }
    Ok(Redirect::to(&format!("{path}?saved=1")).into_response())
}

/// `GET /hubs/{hub}/{dataset}/{table}`: columns with protection markers, statistics, history
/// and a sample of rows, all under the viewer's policies.
pub(crate) async fn table(
    viewer: Viewer,
    Path((hub, dataset, name)): Path<(String, String, String)>,
) -> PortalResult {
    let s = &viewer.session;
    let t = TableRef::new(&hub, &dataset, &name)
        .map_err(|_| PortalError::not_found(format!("table '{hub}.{dataset}.{name}' not found")))?;
    let info = s.table(&t).await?;
    let (entry, policy, stats) = (&info.table, &info.policy, &info.stats);
    let history = if entry.is_view() {
        Vec::new()
    } else {
        s.history(&t, Some(HISTORY)).await?
    };
    let reads = policy.allows(Privilege::Select);
    let sample = if reads {
        Some(sample(&viewer, &t).await)
    } else {
        None
    };
    let path = table_path(&entry.hub, &entry.dataset, &entry.name);
    let body = html! {
        (crumbs(&[(entry.hub.as_str(), hub_path(&entry.hub)), (entry.dataset.as_str(), dataset_path(&entry.hub, &entry.dataset)), (entry.name.as_str(), path.clone())]))
        h1 { @if entry.is_view() { "View " } @else { "Table " } (entry.hub) "." (entry.dataset) "." (entry.name) }
        @if !entry.description.trim().is_empty() { div.markdown { (markdown(&entry.description)) } }
        @if !entry.tags.is_empty() { p { (tags(&entry.tags)) } }
        @if policy.row_filter.is_some() {
            p { span.marker.filtered { "row-filtered" } " A row filter limits the rows you see." }
        }
        @if !policy.all_columns { p { span.marker.masked { "columns hidden" } " Some columns are hidden from you." } }
        @if !reads || !policy.sees_everything() {
            (request_access(&Securable::Table { hub: t.hub.to_string(), dataset: t.dataset.to_string(), table: t.table.to_string() }))
        }
        (columns(entry, policy))
        section aria-labelledby="stats" {
            h2 #stats { "Statistics" }
            dl.facts {
                @if entry.is_view() {
                    dt { "Kind" } dd { "view (a query; no files)" }
                } @else {
                    dt { "Rows" } dd {
                        @match (stats.rows, policy.row_filter.is_some()) {
                            (_, true) => { "not shown (a row filter applies to you)" }
                            (Some(r), false) => { (r) }
                            (None, false) => { "unknown" }
                        }
                    }
                    dt { "Size" } dd { (basin_core::human_bytes(stats.bytes)) }
                    dt { "Files" } dd { (stats.files) }
                    dt { "Version" } dd { (stats.version) }
                    dt { "Last commit" } dd {
                        @match history.first() {
                            Some(c) => { (c.operation) " at " (c.timestamp.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "unknown time".into())) }
                            None => { "—" }
                        }
                    }
                }
                dt { "Updated in catalog" } dd { (entry.updated_at) }
            }
        }
        @if !history.is_empty() {
            section aria-labelledby="history" {
                h2 #history { "Version history" }
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "Operation" } } }
                    tbody { @for c in &history { tr {
                        td.num { (c.version) }
                        td { (c.timestamp.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                        td { (c.operation) }
                    } } }
                } }
            }
        }
        section aria-labelledby="sample" {
            h2 #sample { "Sample" }
            @match sample {
                None => { p.muted { "You may see this table's description but not its rows." } }
                Some(Err(e)) => { p.error { "The sample could not be read: " (e) } }
                Some(Ok(m)) => { (m) }
            }
        }
    };
    Ok(page(
        &format!("{}.{}.{}", entry.hub, entry.dataset, entry.name),
        &viewer,
        body,
    ))
}

/// The visible columns with types, descriptions, tags and protection markers.
fn columns(entry: &Table, policy: &TablePolicy) -> Markup {
    html! {
        section aria-labelledby="columns" {
            h2 #columns { "Columns" }
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { "Column" } th scope="col" { "Type" } th scope="col" { "Description" }
                    th scope="col" { "Tags" } th scope="col" { "Protection" }
                } }
                tbody {
                    @for p in &policy.columns {
                        @if let Some(c) = entry.columns.iter().find(|c| c.name == p.name) {
                            tr {
                                td { code { (c.name) } @if entry.primary_key.contains(&c.name) { " " span.marker.status { "key" } } }
                                td { code { (c.data_type) } @if !c.nullable { " not null" } }
                                td { (c.description) }
                                td { (tags(&c.tags)) }
                                td {
                                    @if p.pii { span.marker.pii { "PII" } }
                                    @if p.mask.is_some() || (p.pii && !p.clear) { span.marker.masked { "masked" } }
                                    @if policy.row_filter.is_some() { span.marker.filtered { "row-filtered" } }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// The first rows as the viewer may see them (a governed, audited query).
async fn sample(viewer: &Viewer, t: &TableRef) -> Result<Markup, String> {
    let sql = format!(
        "SELECT * FROM \"{}\".\"{}\".\"{}\" LIMIT {SAMPLE_ROWS}",
        t.hub, t.dataset, t.table
    );
    let out = viewer
        .session
        .query(&sql)
        .await
        .map_err(|e| e.to_string())?;
    Ok(result_table(&out.schema, &out.batches))
}

/// Query results as an HTML table (every value escaped).
pub(crate) fn result_table(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
) -> Markup {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    html! {
        @if rows == 0 { p.muted { "No rows." } }
        @else {
            div.table-wrap { table {
                thead { tr { @for f in schema.fields() { th scope="col" { (f.name()) } } } }
                tbody {
                    @for b in batches {
                        @let formatters: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect();
                        @for row in 0..b.num_rows() {
                            tr { @for f in &formatters {
                                td { @match f { Ok(f) => { (f.value(row).to_string()) } Err(_) => { "?" } } }
                            } }
                        }
                    }
                }
            } }
        }
    }
}
