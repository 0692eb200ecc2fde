//! Listings, in pages: every list is in a stable order (by name), and a page ends with a token
//! that continues after its last item, so that paging stays correct while objects are added.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use basin_catalog::access::TablePolicy;
use basin_catalog::{Dataset, Hub as HubEntry, Table};
use basin_core::Name;
use serde::Serialize;

use crate::{Result, ServiceError, Session};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Which page of a listing to return.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Items per page (default 100, at most 1000).
    pub size: Option<usize>,
    /// The `next_page_token` of the previous page.
    pub token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Continues the listing; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl Page {
    /// Cuts a list sorted by `key` into the page asked for.
    fn apply<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> Result<Paged<T>> {
        let size = self.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ServiceError::Invalid(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}, not {size}"
            )));
        }
        let after = match &self.token {
            None => None,
            Some(t) => Some(
                URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ServiceError::Invalid(
                            "page_token is not a token this listing gave out; start again without it"
                                .into(),
                        )
                    })?,
            ),
        };
        let mut rest = items
            .into_iter()
            .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
            .peekable();
        let page: Vec<T> = rest.by_ref().take(size).collect();
        let next_page_token = match (rest.peek(), page.last()) {
            (Some(_), Some(last)) => Some(URL_SAFE_NO_PAD.encode(key(last))),
            _ => None,
        };
        Ok(Paged {
            items: page,
            next_page_token,
        })
    }
}

impl Session {
    /// The hubs the principal may see, by name.
    pub async fn hubs(&self, page: &Page) -> Result<Paged<HubEntry>> {
        let (mut hubs, _) = basin_sql::access::visible_datasets(self.engine(), None, None).await?;
        hubs.sort_by(|a, b| a.name.cmp(&b.name));
        page.apply(hubs, |h| h.name.clone())
    }

    /// The datasets of a hub the principal may see, by name; a hidden hub is "not found".
    pub async fn datasets(&self, hub: &str, page: &Page) -> Result<Paged<Dataset>> {
        let hub = Name::parse("hub", hub)?;
        let (hubs, mut datasets) =
            basin_sql::access::visible_datasets(self.engine(), Some(hub.as_str()), None).await?;
        if hubs.is_empty() {
            return Err(ServiceError::NotFound(format!("hub '{hub}' not found")));
        }
        datasets.sort_by(|a, b| a.name.cmp(&b.name));
        page.apply(datasets, |d| d.name.clone())
    }

    /// The tables of a dataset the principal may see, with the policy each is seen under, by
    /// name; a hidden dataset is "not found".
    pub async fn tables(
        &self,
        hub: &str,
        dataset: &str,
        page: &Page,
    ) -> Result<Paged<(Table, TablePolicy)>> {
        Ok(self.dataset_and_tables(hub, dataset, page).await?.1)
    }

    /// One dataset the principal may see; a hidden one is "not found", like a missing one.
    pub async fn dataset(&self, hub: &str, dataset: &str) -> Result<Dataset> {
        let (hub, dataset) = (Name::parse("hub", hub)?, Name::parse("dataset", dataset)?);
        basin_sql::access::visible_datasets(
            self.engine(),
            Some(hub.as_str()),
            Some(dataset.as_str()),
        )
        .await?
        .1
        .into_iter()
        .find(|d| d.name == dataset.as_str())
        .ok_or_else(|| ServiceError::NotFound(format!("dataset '{hub}.{dataset}' not found")))
    }

    /// A dataset the principal may see and a page of its visible tables, from one decision
    /// (a dataset page needs both); a hidden dataset is "not found", like a missing one.
    pub async fn dataset_and_tables(
        &self,
        hub: &str,
        dataset: &str,
        page: &Page,
    ) -> Result<(Dataset, Paged<(Table, TablePolicy)>)> {
        let (hub, dataset) = (Name::parse("hub", hub)?, Name::parse("dataset", dataset)?);
        let seen =
            basin_sql::access::visible(self.engine(), Some(hub.as_str()), Some(dataset.as_str()))
                .await?;
        let Some(found) = seen
            .datasets
            .into_iter()
            .find(|d| d.name == dataset.as_str())
        else {
            return Err(ServiceError::NotFound(format!(
                "dataset '{hub}.{dataset}' not found"
            )));
        };
        let mut tables = seen.tables;
        tables.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok((found, page.apply(tables, |(t, _)| t.name.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i:05}")).collect()
    }

    #[test]
    fn pages_walk_the_whole_list_once_in_order() {
        let all = names(2500);
        let mut seen = Vec::new();
        let mut page = Page {
            size: Some(1000),
            token: None,
        };
        loop {
            let p = page.apply(all.clone(), |s| s.clone()).unwrap();
            seen.extend(p.items);
            match p.next_page_token {
                Some(t) => page.token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn a_new_item_does_not_shift_the_next_page() {
        let mut all = names(10);
        let first = Page {
            size: Some(5),
            token: None,
        }
        .apply(all.clone(), |s| s.clone())
        .unwrap();
        all.insert(0, "a-new-one".into());
        let second = Page {
            size: Some(5),
            token: first.next_page_token,
        }
        .apply(all, |s| s.clone())
        .unwrap();
        assert_eq!(second.items, names(10)[5..].to_vec());
        assert_eq!(second.next_page_token, None);
    }

    #[test]
    fn bad_pages_are_refused_with_a_reason() {
        let e = Page {
            size: Some(0),
            token: None,
        }
        .apply(names(3), |s| s.clone())
        .unwrap_err()
        .to_string();
        assert!(e.contains("page_size"), "{e}");
        let e = Page {
            size: None,
            token: Some("!!".into()),
        }
        .apply(names(3), |s| s.clone())
        .unwrap_err()
        .to_string();
        assert!(e.contains("page_token"), "{e}");
    }
}
