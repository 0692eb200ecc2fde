//! Search over the names, descriptions, tags, domains and owners of hubs, datasets, tables and
//! columns, with facets, for what the viewer may see.
//!
//! The index ([`index::Index`]) holds the whole catalog; one is shared by every session of a
//! [`crate::Hub`] and rebuilt in the background once the catalog's metadata version changes (a
//! search waits a moment for it, then is answered from the previous index, with each hit checked
//! against the catalog as it is now).
//! What a principal sees of it is decided by the access snapshot, as the listings decide it
//! (`table_policy` for tables and their columns, `roll_up` for datasets and hubs), and cached with
//! the index per set of roles until the access version changes. A hidden object is never a hit
//! and never counts in a facet.
//!
//! Ranking: the query as an object's whole name (or the end of its qualified name) first, then
//! objects whose name holds every word (in full or as a prefix), then those with some words only
//! in their description, tags, domain, owner or parents' names, then those with some words
//! matched only with a typo. Ties go to the most used (successful SELECT queries naming the
//! table in the last 30 days, from the audit log, recounted every 10 minutes; a dataset or hub
//! counts the queries of the tables in it the viewer sees), then hubs before datasets before
//! tables before columns, then by name.

pub(crate) mod index;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use basin_catalog::Catalog;
use basin_catalog::access::{AccessSnapshot, Principal};
use basin_core::{DEFAULT_HUB, Layer, TableRef};
use serde::Serialize;

use crate::{Result, ServiceError, Session};
use index::{Index, Kind, NONE};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Hits per page when none is asked for.
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
/// Most hits per page.
pub const MAX_SEARCH_LIMIT: usize = 100;
/// How long a search after a metadata change waits for the new index before it is answered
/// from the previous one.
pub const FRESH_WAIT: Duration = Duration::from_millis(250);
/// How long query counts are used before they are counted again.
const USAGE_TTL: Duration = Duration::from_secs(600);
/// The window of queries that count as use.
const USAGE_DAYS: i64 = 30;
/// Longest description shown in a hit, in characters.
const SNIPPET_CHARS: usize = 300;
/// Most values listed per facet.
const FACET_VALUES: usize = 50;

/// A search: words, optional filters (each keeps the hits that carry the value), and a page.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub q: String,
    pub hub: Option<String>,
    /// `source`, `prepared` or `semantic`.
    pub layer: Option<String>,
    pub domain: Option<String>,
    /// `key` (any value) or `key=value`.
    pub tag: Option<String>,
    pub owner: Option<String>,
    /// Hits per page (default 20, at most 100).
    pub limit: Option<usize>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// One page of hits, with the facets of all hits.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// Hits in all pages.
    pub total: usize,
    pub hits: Vec<SearchHit>,
    pub facets: Facets,
    /// Continues the search; `None` on the last page.
    pub next_page_token: Option<String>,
    /// Answered from the index as it was before the latest catalog change, because the new one
    /// was still being built: hits hidden or dropped since are left out, but counts may lag.
    pub stale: bool,
}

/// A hub, dataset, table or column that matched.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// `hub`, `dataset`, `table` or `column`.
    pub kind: &'static str,
    /// Its qualified name: `hub`, `hub.dataset`, `hub.dataset.table`, `hub.dataset.table.column`.
    pub name: String,
    pub hub: String,
    pub dataset: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// The description, shortened to 300 characters.
    pub description: String,
    /// Tags in effect (a column's include its table's and dataset's).
    pub tags: Vec<String>,
    /// Of its dataset (none for a hub).
    pub layer: Option<&'static str>,
    pub domain: Option<String>,
    pub owner: Option<String>,
    /// A column's SQL type; `view` or `table` for a table.
    pub data_type: Option<String>,
    /// How it matched: `exact` (its name), `name`, `text` or `fuzzy`.
    pub matched: &'static str,
    /// Successful queries in the last 30 days (see the module documentation).
    pub usage: u64,
}

/// Counts of hits per value, for each filter. The counts of one facet follow the other
/// filters but not its own, so that they show what choosing another value would give.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facets {
    pub hub: Vec<FacetCount>,
    pub layer: Vec<FacetCount>,
    pub domain: Vec<FacetCount>,
    pub tag: Vec<FacetCount>,
    pub owner: Vec<FacetCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

/// The index of a hub's catalog, shared by its sessions.
#[derive(Clone, Default)]
pub(crate) struct SearchCache(Arc<CacheState>);

#[derive(Default)]
struct CacheState {
    /// The newest index built.
    current: Mutex<Option<Arc<Built>>>,
    /// Held by the one build that runs at a time.
    building: Arc<tokio::sync::Mutex<()>>,
    /// The metadata version of the newest index, for searches waiting for it.
    built: tokio::sync::watch::Sender<i64>,
    /// How long the last build took: when longer than [`FRESH_WAIT`], searches do not wait.
    last_build: Mutex<Duration>,
}

/// An index at one metadata version, with what principals see of it.
struct Built {
    version: i64,
    index: Index,
    /// Table (by index) of each lower-case qualified name.
    table_ids: HashMap<String, u32>,
    state: Mutex<State>,
}

struct State {
    /// Query counts per table, and when they were counted.
    usage: Arc<(Vec<u64>, Instant)>,
    /// What each set of roles sees at access version `views_version` (cleared with new counts).
    views: HashMap<Vec<String>, Arc<View>>,
    views_version: i64,
}

/// What one principal sees of an index.
struct View {
    hubs: Vec<bool>,
    datasets: Vec<bool>,
    /// The columns seen, by position, of each visible table.
    tables: Vec<Option<Vec<bool>>>,
    usage: Arc<(Vec<u64>, Instant)>,
    /// Query counts of the visible tables in each dataset and hub.
    dataset_usage: Vec<u64>,
    hub_usage: Vec<u64>,
}

impl SearchCache {
    /// The index at the catalog's current metadata version, and whether it is older than that
    /// (stale). After a change a new index is built in the background; a search waits up to
    /// [`FRESH_WAIT`] for it (unless the last build took longer than that) and is otherwise
    /// answered from the previous one. Only the first index is always waited for.
    async fn current(&self, catalog: &Catalog) -> Result<(Arc<Built>, bool)> {
        let (version, _) = catalog.versions().await?;
        let Some(held) = self.newest() else {
            let _building = self.0.building.lock().await;
            if let Some(b) = self.newest().filter(|b| b.version >= version) {
                return Ok((b, false));
            }
            // The version is read before the catalog, so a change during a build leads to
            // another.
            let built = Arc::new(self.build(catalog, version).await?);
            self.install(built.clone());
            return Ok((built, false));
        };
        if held.version >= version {
            return Ok((held, false));
        }
        let mut newest = self.0.built.subscribe();
        self.build_in_background(catalog);
        let last_build = *self.0.last_build.lock().expect("cache lock");
        if last_build <= FRESH_WAIT {
            let _ = tokio::time::timeout(FRESH_WAIT, newest.wait_for(|v| *v >= version)).await;
        }
        let b = self.newest().unwrap_or(held);
        let stale = b.version < version;
        Ok((b, stale))
    }

    /// Builds the index at `version`, timing the build.
    async fn build(&self, catalog: &Catalog, version: i64) -> Result<Built> {
        let started = Instant::now();
        let built = Built::new(catalog, version).await?;
        *self.0.last_build.lock().expect("cache lock") = started.elapsed();
        Ok(built)
    }

    fn newest(&self) -> Option<Arc<Built>> {
        self.0.current.lock().expect("cache lock").clone()
    }

    fn install(&self, built: Arc<Built>) {
        let version = built.version;
        {
            let mut current = self.0.current.lock().expect("cache lock");
            if current.as_ref().is_none_or(|c| c.version < version) {
                *current = Some(built);
            }
        }
        self.0.built.send_modify(|v| *v = (*v).max(version));
    }

    /// Starts a build at the catalog's version unless one is running (a change during that one
    /// is built by the next search).
    fn build_in_background(&self, catalog: &Catalog) {
        let Ok(building) = self.0.building.clone().try_lock_owned() else {
            return;
        };
        let (cache, catalog) = (self.clone(), catalog.clone());
        tokio::spawn(async move {
            let _building = building;
            let built = async {
                let (version, _) = catalog.versions().await?;
                cache.build(&catalog, version).await
            };
            match built.await {
                Ok(b) => cache.install(Arc::new(b)),
                Err(e) => tracing::warn!("building the search index failed: {e}"),
            }
        });
    }
}

impl Built {
    async fn new(catalog: &Catalog, version: i64) -> Result<Built> {
        let hubs = catalog.hubs().await?;
        let datasets = catalog.datasets(None).await?;
        let tables = catalog.tables_with_columns(None, None).await?;
        // CPU-bound (about a second for 200,000 objects): off the async workers.
        let index = tokio::task::spawn_blocking(move || Index::build(hubs, datasets, tables))
            .await
            .map_err(|e| ServiceError::Invalid(format!("building the search index failed: {e}")))?;
        let table_ids = index
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let name = format!("{}.{}.{}", t.hub, t.dataset, t.name).to_lowercase();
                (name, i as u32)
            })
            .collect();
        let mut built = Built {
            version,
            index,
            table_ids,
            state: Mutex::new(State {
                usage: Arc::new((Vec::new(), Instant::now())),
                views: HashMap::new(),
                views_version: 0,
            }),
        };
        let usage = built.count_usage(catalog).await?;
        built.state.get_mut().expect("state lock").usage = Arc::new((usage, Instant::now()));
        Ok(built)
    }

    /// Successful queries naming each table in the last 30 days. Names are as written in the
    /// statement: `t` is `main.default.t`, `d.t` is `main.d.t`.
    async fn count_usage(&self, catalog: &Catalog) -> Result<Vec<u64>> {
        let since = (chrono::Utc::now() - chrono::Duration::days(USAGE_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut usage = vec![0; self.index.tables.len()];
        for (name, n) in catalog.query_counts(&since).await? {
            let parts: Vec<String> = name
                .split('.')
                .map(|p| p.trim_matches('"').to_lowercase())
                .collect();
            let qualified = match parts.as_slice() {
                [t] => format!("{DEFAULT_HUB}.default.{t}"),
                [d, t] => format!("{DEFAULT_HUB}.{d}.{t}"),
                [h, d, t] => format!("{h}.{d}.{t}"),
                _ => continue,
            };
            if let Some(&i) = self.table_ids.get(&qualified) {
                usage[i as usize] += n;
            }
        }
        Ok(usage)
    }

    /// What `p` sees, from the cache or decided now.
    async fn view(
        &self,
        catalog: &Catalog,
        p: &Principal,
        snapshot: &AccessSnapshot,
    ) -> Result<Arc<View>> {
        let stale = {
            let mut state = self.state.lock().expect("state lock");
            let stale = state.usage.1.elapsed() > USAGE_TTL;
            if stale {
                // One search counts again; the others use the old counts meanwhile.
                state.usage = Arc::new((state.usage.0.clone(), Instant::now()));
            }
            stale
        };
        if stale {
            let usage = Arc::new((self.count_usage(catalog).await?, Instant::now()));
            let mut state = self.state.lock().expect("state lock");
            state.usage = usage;
            state.views.clear();
        }
        let key: Vec<String> = p.roles.iter().cloned().collect();
        let usage = {
            let mut state = self.state.lock().expect("state lock");
            if state.views_version != snapshot.version() {
                state.views.clear();
                state.views_version = snapshot.version();
            }
            if let Some(v) = state.views.get(&key) {
                return Ok(v.clone());
            }
            state.usage.clone()
        };
        let view = Arc::new(self.decide(p, snapshot, usage));
        let mut state = self.state.lock().expect("state lock");
        if state.views.len() >= 256 {
            state.views.clear();
        }
        // Decided at an access version that is no longer current: not kept.
        if state.views_version == snapshot.version() {
            state.views.insert(key, view.clone());
        }
        Ok(view)
    }

    /// Decides what `p` sees, as the listings do.
    fn decide(
        &self,
        p: &Principal,
        snapshot: &AccessSnapshot,
        usage: Arc<(Vec<u64>, Instant)>,
    ) -> View {
        let ix = &self.index;
        let dataset_of: HashMap<(&str, &str), usize> = ix
            .datasets
            .iter()
            .enumerate()
            .map(|(i, d)| ((d.hub.as_str(), d.name.as_str()), i))
            .collect();
        let mut tables = Vec::with_capacity(ix.tables.len());
        let mut seen = Vec::new();
        for t in &ix.tables {
            let policy = dataset_of
                .get(&(t.hub.as_str(), t.dataset.as_str()))
                .and_then(|d| snapshot.table_policy(p, &ix.datasets[*d], t));
            tables.push(policy.map(|policy| {
                seen.push((t.hub.clone(), t.dataset.clone()));
                t.columns
                    .iter()
                    .map(|c| policy.columns.iter().any(|s| s.name == c.name))
                    .collect::<Vec<bool>>()
            }));
        }
        let (hubs, datasets) = snapshot.roll_up(p, ix.hubs.clone(), ix.datasets.clone(), &seen);
        let hub_names: std::collections::HashSet<&str> =
            hubs.iter().map(|h| h.name.as_str()).collect();
        let dataset_names: std::collections::HashSet<(&str, &str)> = datasets
            .iter()
            .map(|d| (d.hub.as_str(), d.name.as_str()))
            .collect();
        let mut dataset_usage = vec![0; ix.datasets.len()];
        let mut hub_usage = vec![0; ix.hubs.len()];
        let hub_of: HashMap<&str, usize> = ix
            .hubs
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.as_str(), i))
            .collect();
        for (i, t) in ix.tables.iter().enumerate() {
            if tables[i].is_none() {
                continue;
            }
            let n = usage.0.get(i).copied().unwrap_or(0);
            if let Some(d) = dataset_of.get(&(t.hub.as_str(), t.dataset.as_str())) {
                dataset_usage[*d] += n;
            }
            if let Some(h) = hub_of.get(t.hub.as_str()) {
                hub_usage[*h] += n;
            }
        }
        View {
            hubs: ix
                .hubs
                .iter()
                .map(|h| hub_names.contains(h.name.as_str()))
                .collect(),
            datasets: ix
                .datasets
                .iter()
                .map(|d| dataset_names.contains(&(d.hub.as_str(), d.name.as_str())))
                .collect(),
            tables,
            usage,
            dataset_usage,
            hub_usage,
        }
    }
}

impl View {
    fn sees(&self, doc: &index::Doc) -> bool {
        match doc.kind {
            Kind::Hub => self.hubs[doc.hub as usize],
            Kind::Dataset => self.datasets[doc.dataset as usize],
            Kind::Table => self.tables[doc.table as usize].is_some(),
            Kind::Column => self.tables[doc.table as usize]
                .as_ref()
                .is_some_and(|c| c[doc.column as usize]),
        }
    }

    fn usage(&self, doc: &index::Doc) -> u64 {
        match doc.kind {
            Kind::Hub => self.hub_usage[doc.hub as usize],
            Kind::Dataset => self.dataset_usage[doc.dataset as usize],
            Kind::Table | Kind::Column => {
                self.usage.0.get(doc.table as usize).copied().unwrap_or(0)
            }
        }
    }
}

/// The facets, in the order of `Facets`' fields.
const HUB: usize = 0;
const LAYER: usize = 1;
const DOMAIN: usize = 2;
const TAG: usize = 3;
const OWNER: usize = 4;

impl SearchQuery {
    fn checked(&self) -> Result<(String, usize, usize, [Option<String>; 5])> {
        let q = self.q.trim().to_string();
        if q.is_empty() {
            return Err(ServiceError::Invalid(
                "q is empty: give words to search for, e.g. q=orders".into(),
            ));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(ServiceError::Invalid(format!(
                "q is longer than {MAX_QUERY_CHARS} characters; search with fewer words"
            )));
        }
        let limit = self.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
        if limit == 0 || limit > MAX_SEARCH_LIMIT {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_SEARCH_LIMIT}, not {limit}"
            )));
        }
        let offset = match &self.page_token {
            None => 0,
            Some(t) => URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("search:")?.parse().ok())
                .ok_or_else(|| {
                    ServiceError::Invalid(
                        "page_token is not a token this search gave out; start again without it"
                            .into(),
                    )
                })?,
        };
        let clean = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let layer = match clean(&self.layer) {
            Some(l) => Some(l.to_lowercase().parse::<Layer>()?.as_str().to_string()),
            None => None,
        };
        Ok((
            q,
            limit,
            offset,
            [
                clean(&self.hub),
                layer,
                clean(&self.domain),
                clean(&self.tag),
                clean(&self.owner),
            ],
        ))
    }
}

impl Session {
    /// Searches what the principal may see (see the module documentation for the ranking).
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        let (q, limit, offset, filters) = query.checked()?;
        let catalog = self.engine().catalog();
        let (built, stale) = self.search.current(catalog).await?;
        let snapshot = catalog.access_snapshot().await?;
        let view = built.view(catalog, self.principal(), &snapshot).await?;
        let ix = &built.index;

        let mut counts: [HashMap<&str, usize>; 5] = Default::default();
        let mut hits: Vec<Hit<'_>> = Vec::new();
        for (d, tier) in ix.matches(&q) {
            let doc = &ix.docs[d as usize];
            if !view.sees(doc) {
                continue;
            }
            let dataset = (doc.dataset != NONE).then(|| &ix.datasets[doc.dataset as usize]);
            let tags: Vec<&str> = doc
                .tags
                .iter()
                .map(|t| ix.tags[*t as usize].as_str())
                .collect();
            let values: [Vec<&str>; 5] = [
                vec![ix.hubs[doc.hub as usize].name.as_str()],
                dataset.map(|d| d.layer.as_str()).into_iter().collect(),
                dataset
                    .and_then(|d| d.domain.as_deref())
                    .into_iter()
                    .collect(),
                tags.clone(),
                dataset
                    .and_then(|d| d.owner.as_deref())
                    .into_iter()
                    .collect(),
            ];
            let fails: Vec<usize> = (0..5)
                .filter(|f| {
                    filters[*f].as_deref().is_some_and(|want| {
                        !values[*f].iter().any(|v| {
                            v.eq_ignore_ascii_case(want)
                                || (*f == TAG && v.split_once('=').is_some_and(|(k, _)| k == want))
                        })
                    })
                })
                .collect();
            let counted: Vec<usize> = match fails.as_slice() {
                [] => (0..5).collect(),
                [one] => vec![*one],
                _ => vec![],
            };
            for f in counted {
                for v in &values[f] {
                    *counts[f].entry(v).or_default() += 1;
                }
            }
            if fails.is_empty() {
                hits.push((tier, view.usage(doc), doc.kind, doc.qualified.as_str(), d));
            }
        }
        let total = hits.len();
        // Only the hits up to the end of the page need their order.
        let rank = |a: &Hit<'_>, b: &Hit<'_>| {
            (a.0, std::cmp::Reverse(a.1), a.2, a.3).cmp(&(b.0, std::cmp::Reverse(b.1), b.2, b.3))
        };
        let end = offset.saturating_add(limit);
        if end < hits.len() {
            hits.select_nth_unstable_by(end, rank);
            hits.truncate(end);
        }
        hits.sort_unstable_by(rank);
        let mut page: Vec<SearchHit> = hits
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(tier, usage, _, _, d)| hit(ix, *d, *tier, *usage))
            .collect();
        if stale {
            page = self.still_visible(page).await?;
        }
        let next_page_token = (offset + limit < total)
            .then(|| URL_SAFE_NO_PAD.encode(format!("search:{}", offset + limit)));
        let facet = |f: usize| {
            let mut v: Vec<FacetCount> = counts[f]
                .iter()
                .map(|(value, count)| FacetCount {
                    value: value.to_string(),
                    count: *count,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            v.truncate(FACET_VALUES);
            v
        };
        Ok(SearchResults {
            total,
            hits: page,
            facets: Facets {
                hub: facet(HUB),
                layer: facet(LAYER),
                domain: facet(DOMAIN),
                tag: facet(TAG),
                owner: facet(OWNER),
            },
            next_page_token,
            stale,
        })
    }

    /// The hits of a stale index that the principal sees in the catalog now: an object dropped,
    /// renamed or hidden since the index was built is left out.
    async fn still_visible(&self, hits: Vec<SearchHit>) -> Result<Vec<SearchHit>> {
        use basin_sql::access::{table_policy, visible_datasets};
        let engine = self.engine();
        let mut kept = Vec::with_capacity(hits.len());
        for h in hits {
            let visible = match (&h.dataset, &h.table) {
                (Some(d), Some(t)) => match TableRef::new(&h.hub, d, t) {
                    Ok(t) => match table_policy(engine, &t).await {
                        Ok((_, policy)) => h
                            .column
                            .as_ref()
                            .is_none_or(|c| policy.columns.iter().any(|p| &p.name == c)),
                        Err(basin_sql::SqlError::NotFound { .. }) => false,
                        Err(e) => return Err(e.into()),
                    },
                    Err(_) => false,
                },
                (Some(d), None) => !visible_datasets(engine, Some(&h.hub), Some(d))
                    .await?
                    .1
                    .is_empty(),
                _ => !visible_datasets(engine, Some(&h.hub), None)
                    .await?
                    .0
                    .is_empty(),
            };
            if visible {
                kept.push(h);
            }
        }
        Ok(kept)
    }
}

/// A hit while ranking: tier, usage, kind, qualified name, document.
type Hit<'a> = (u8, u64, Kind, &'a str, u32);

fn hit(ix: &Index, d: u32, tier: u8, usage: u64) -> SearchHit {
    let doc = &ix.docs[d as usize];
    let hub = &ix.hubs[doc.hub as usize];
    let dataset = (doc.dataset != NONE).then(|| &ix.datasets[doc.dataset as usize]);
    let table = (doc.table != NONE).then(|| &ix.tables[doc.table as usize]);
    let column = table.and_then(|t| (doc.column != NONE).then(|| &t.columns[doc.column as usize]));
    let (kind, description, data_type) = match doc.kind {
        Kind::Hub => ("hub", hub.description.as_str(), None),
        Kind::Dataset => (
            "dataset",
            dataset.map_or("", |d| d.description.as_str()),
            None,
        ),
        Kind::Table => (
            "table",
            table.map_or("", |t| t.description.as_str()),
            table.map(|t| t.kind.clone()),
        ),
        Kind::Column => (
            "column",
            column.map_or("", |c| c.description.as_str()),
            column.map(|c| c.data_type.clone()),
        ),
    };
    let name = [
        Some(hub.name.as_str()),
        dataset.map(|d| d.name.as_str()),
        table.map(|t| t.name.as_str()),
        column.map(|c| c.name.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(".");
    SearchHit {
        kind,
        name,
        hub: hub.name.clone(),
        dataset: dataset.map(|d| d.name.clone()),
        table: table.map(|t| t.name.clone()),
        column: column.map(|c| c.name.clone()),
        description: snippet(description),
        tags: doc
            .tags
            .iter()
            .map(|t| ix.tags[*t as usize].clone())
            .collect(),
        layer: dataset.map(|d| d.layer.as_str()),
        domain: dataset.and_then(|d| d.domain.clone()),
        owner: dataset.and_then(|d| d.owner.clone()),
        data_type,
        matched: match tier {
            0 => "exact",
            1 | 2 => "name",
            3 => "text",
            _ => "fuzzy",
        },
        usage,
    }
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
