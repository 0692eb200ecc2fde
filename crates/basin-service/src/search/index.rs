//! The search index: every hub, dataset, table and column of the catalog as a document, an
//! inverted index from tokens to the documents that hold them, and matching with prefixes and
//! typos. Deciding who sees what is not here (see `super`): the index holds everything.

use std::collections::{BTreeMap, HashMap};

use basin_catalog::{Dataset, Hub as HubEntry, Table};

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Hub,
    Dataset,
    Table,
    Column,
}

/// No such parent.
pub const NONE: u32 = u32::MAX;

/// One searchable object.
#[derive(Debug)]
pub struct Doc {
    pub kind: Kind,
    /// Index into `Index::hubs`.
    pub hub: u32,
    /// Index into `Index::datasets` (`NONE` for a hub).
    pub dataset: u32,
    /// Index into `Index::tables` (`NONE` for a hub or dataset).
    pub table: u32,
    /// Position in its table (`NONE` unless a column).
    pub column: u32,
    /// The documents of its hub, dataset and table (`NONE` where there is none), whose names
    /// count as context ("sales orders" finds `sales.orders`).
    pub parents: [u32; 3],
    /// Lower-case name, and lower-case qualified name (`hub.dataset.table.column`).
    pub name: String,
    pub qualified: String,
    /// Effective tags, as indexes into `Index::tags`.
    pub tags: Box<[u32]>,
}

/// Where a token was found in a document.
const FIELD_NAME: u8 = 0;
const FIELD_TEXT: u8 = 1;

/// How well one query token matched a document, best first.
pub mod class {
    /// A token of the name, in full.
    pub const NAME_EXACT: u8 = 0;
    /// A token of the name starts with it.
    pub const NAME_PREFIX: u8 = 1;
    /// In the description, tags, domain or owner, or in the name of its hub, dataset or table.
    pub const TEXT: u8 = 2;
    /// Within the edit distance allowed, anywhere.
    pub const FUZZY: u8 = 3;
}

/// The catalog, indexed.
pub struct Index {
    pub hubs: Vec<HubEntry>,
    pub datasets: Vec<Dataset>,
    pub tables: Vec<Table>,
    pub docs: Vec<Doc>,
    pub tags: Vec<String>,
    /// Sorted tokens and, for each, the documents holding it (`(doc, field)`, by doc).
    vocabulary: Vec<String>,
    postings: Vec<Vec<(u32, u8)>>,
    /// Token ids by token length in characters (for typo matching).
    by_length: Vec<Vec<u32>>,
}

/// Splits text into lower-case tokens: at anything but letters and digits, between a lower-case
/// letter and an upper-case one (`camelCase`), before the last capital of a run followed by
/// lower-case (`HTTPServer` → `http`, `server`), and between letters and digits.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = word.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (a, b) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            let boundary = (a.is_lowercase() && b.is_uppercase())
                || (a.is_uppercase() && b.is_uppercase() && next_lower)
                || (a.is_alphabetic() && b.is_numeric())
                || (a.is_numeric() && b.is_alphabetic());
            if boundary {
                tokens.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        if start < chars.len() {
            tokens.push(chars[start..].iter().collect::<String>().to_lowercase());
        }
    }
    tokens
}

/// The edit distance a query token may be away from an indexed one: none below 4 characters,
/// 1 up to 7, 2 beyond; none for a number (`2024` is not `2025`).
pub fn typos_allowed(token: &str) -> usize {
    if token.chars().any(|c| c.is_numeric()) {
        return 0;
    }
    match token.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

#[derive(Default)]
struct Builder {
    docs: Vec<Doc>,
    tokens: BTreeMap<String, Vec<(u32, u8)>>,
    tags: Vec<String>,
    tag_ids: HashMap<String, u32>,
}

impl Builder {
    fn add(&mut self, doc: Doc, name: &str, texts: &[&str]) -> u32 {
        let id = self.docs.len() as u32;
        self.docs.push(doc);
        for (field, text) in
            std::iter::once((FIELD_NAME, name)).chain(texts.iter().map(|t| (FIELD_TEXT, *t)))
        {
            for token in tokenize(text) {
                let postings = self.tokens.entry(token).or_default();
                match postings.last_mut() {
                    Some((d, f)) if *d == id => *f = (*f).min(field),
                    _ => postings.push((id, field)),
                }
            }
        }
        id
    }

    fn tag_ids(&mut self, tags: &[String]) -> Box<[u32]> {
        tags.iter()
            .map(|t| match self.tag_ids.get(t) {
                Some(id) => *id,
                None => {
                    let id = self.tags.len() as u32;
                    self.tags.push(t.clone());
                    self.tag_ids.insert(t.clone(), id);
                    id
                }
            })
            .collect()
    }
}

impl Index {
    /// Indexes hubs, datasets and tables (with their columns).
    pub fn build(hubs: Vec<HubEntry>, datasets: Vec<Dataset>, tables: Vec<Table>) -> Index {
        let mut b = Builder::default();
        let mut hub_docs = HashMap::new();
        for (i, h) in hubs.iter().enumerate() {
            let doc = Doc {
                kind: Kind::Hub,
                hub: i as u32,
                dataset: NONE,
                table: NONE,
                column: NONE,
                parents: [NONE; 3],
                name: h.name.to_lowercase(),
                qualified: h.name.to_lowercase(),
                tags: Box::new([]),
            };
            let id = b.add(doc, &h.name, &[&h.description]);
            hub_docs.insert(h.name.as_str(), (i as u32, id));
        }
        let mut dataset_docs = HashMap::new();
        for (i, d) in datasets.iter().enumerate() {
            let Some(&(hub, hub_doc)) = hub_docs.get(d.hub.as_str()) else {
                continue;
            };
            let tags = b.tag_ids(&d.tags);
            let tag_text = d.tags.join(" ");
            let doc = Doc {
                kind: Kind::Dataset,
                hub,
                dataset: i as u32,
                table: NONE,
                column: NONE,
                parents: [hub_doc, NONE, NONE],
                name: d.name.to_lowercase(),
                qualified: format!("{}.{}", d.hub, d.name).to_lowercase(),
                tags,
            };
            let texts = [
                d.description.as_str(),
                &tag_text,
                d.domain.as_deref().unwrap_or(""),
                d.owner.as_deref().unwrap_or(""),
            ];
            let id = b.add(doc, &d.name, &texts);
            dataset_docs.insert(
                (d.hub.as_str(), d.name.as_str()),
                (hub, hub_doc, i as u32, id),
            );
        }
        for (i, t) in tables.iter().enumerate() {
            let Some(&(hub, hub_doc, dataset, dataset_doc)) =
                dataset_docs.get(&(t.hub.as_str(), t.dataset.as_str()))
            else {
                continue;
            };
            let qualified = format!("{}.{}.{}", t.hub, t.dataset, t.name).to_lowercase();
            let table_tags = t.inherited_tags();
            let tags = b.tag_ids(&table_tags);
            let doc = Doc {
                kind: Kind::Table,
                hub,
                dataset,
                table: i as u32,
                column: NONE,
                parents: [hub_doc, dataset_doc, NONE],
                name: t.name.to_lowercase(),
                qualified: qualified.clone(),
                tags: tags.clone(),
            };
            let table_doc = b.add(doc, &t.name, &[&t.description, &t.tags.join(" ")]);
            for (position, c) in t.columns.iter().enumerate() {
                let tags = if c.tags.is_empty() {
                    tags.clone()
                } else {
                    b.tag_ids(&t.effective_tags(c))
                };
                let doc = Doc {
                    kind: Kind::Column,
                    hub,
                    dataset,
                    table: i as u32,
                    column: position as u32,
                    parents: [hub_doc, dataset_doc, table_doc],
                    name: c.name.to_lowercase(),
                    qualified: format!("{qualified}.{}", c.name.to_lowercase()),
                    tags,
                };
                b.add(doc, &c.name, &[&c.description, &c.tags.join(" ")]);
            }
        }
        let (vocabulary, postings): (Vec<String>, Vec<Vec<(u32, u8)>>) =
            b.tokens.into_iter().unzip();
        let mut by_length: Vec<Vec<u32>> = Vec::new();
        for (id, token) in vocabulary.iter().enumerate() {
            let n = token.chars().count();
            if by_length.len() <= n {
                by_length.resize(n + 1, Vec::new());
            }
            by_length[n].push(id as u32);
        }
        Index {
            hubs,
            datasets,
            tables,
            docs: b.docs,
            tags: b.tags,
            vocabulary,
            postings,
            by_length,
        }
    }

    /// The documents matching every token of `query` (in their own name or text, or in the
    /// name of a parent), each with its tier: 0 when its name or qualified name is the query,
    /// else the worst [`class`] of its tokens plus one.
    pub fn matches(&self, query: &str) -> Vec<(u32, u8)> {
        let tokens = tokenize(query);
        if tokens.is_empty() {
            return Vec::new();
        }
        let per_token: Vec<TokenHits> = tokens.iter().map(|t| self.token_matches(t)).collect();
        // Candidates match at least one token themselves.
        let mut candidates: Vec<u32> = per_token
            .iter()
            .flat_map(|m| m.docs.iter().copied())
            .collect();
        if per_token.len() > 1 {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let whole = query.trim().to_lowercase();
        let suffix = format!(".{whole}");
        let mut out = Vec::new();
        'doc: for d in candidates {
            let doc = &self.docs[d as usize];
            let mut worst = class::NAME_EXACT;
            for m in &per_token {
                let mut best = m.class[d as usize];
                // A parent's name matches as context, no better than text.
                for p in doc.parents.iter().filter(|p| **p != NONE) {
                    let c = match m.class[*p as usize] {
                        class::NAME_EXACT | class::NAME_PREFIX => class::TEXT,
                        class::FUZZY => class::FUZZY,
                        _ => continue,
                    };
                    best = best.min(c);
                }
                if best == NO_MATCH {
                    continue 'doc;
                }
                worst = worst.max(best);
            }
            let exact =
                doc.name == whole || doc.qualified == whole || doc.qualified.ends_with(&suffix);
            out.push((d, if exact { 0 } else { worst + 1 }));
        }
        out
    }

    /// The documents holding a token that is `token`, starts with it (2 characters or more),
    /// or is within the typos allowed, with the best class each reaches.
    fn token_matches(&self, token: &str) -> TokenHits {
        let mut hits = TokenHits {
            class: vec![NO_MATCH; self.docs.len()],
            docs: Vec::new(),
        };
        let mut add = |postings: &[(u32, u8)], exact: bool, fuzzy: bool| {
            for &(doc, field) in postings {
                let c = match (fuzzy, field, exact) {
                    (true, _, _) => class::FUZZY,
                    (false, FIELD_NAME, true) => class::NAME_EXACT,
                    (false, FIELD_NAME, false) => class::NAME_PREFIX,
                    _ => class::TEXT,
                };
                let best = &mut hits.class[doc as usize];
                if *best == NO_MATCH {
                    hits.docs.push(doc);
                }
                *best = (*best).min(c);
            }
        };
        // Tokens starting with `token` are one run of the sorted vocabulary.
        let start = self.vocabulary.partition_point(|v| v.as_str() < token);
        let prefix_ok = token.chars().count() >= 2;
        let mut end = start;
        for v in &self.vocabulary[start..] {
            if !v.starts_with(token) || (!prefix_ok && v != token) {
                break;
            }
            add(&self.postings[end], v == token, false);
            end += 1;
        }
        let typos = typos_allowed(token);
        if typos > 0 {
            let n = token.chars().count();
            for len in n.saturating_sub(typos)..=n + typos {
                for &id in self.by_length.get(len).into_iter().flatten() {
                    let id = id as usize;
                    if (start..end).contains(&id) {
                        continue;
                    }
                    if strsim::osa_distance(token, &self.vocabulary[id]) <= typos {
                        add(&self.postings[id], false, true);
                    }
                }
            }
        }
        hits
    }
}

/// No match for a token in a document.
const NO_MATCH: u8 = u8::MAX;

/// The best [`class`] each document reaches for one query token (`NO_MATCH` where none), and
/// the documents that reach one.
struct TokenHits {
    class: Vec<u8>,
    docs: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_at_case_digits_and_punctuation() {
        assert_eq!(tokenize("customer_id"), ["customer", "id"]);
        assert_eq!(tokenize("orderLines2024"), ["order", "lines", "2024"]);
        assert_eq!(
            tokenize("HTTPServer-log.v2"),
            ["http", "server", "log", "v", "2"]
        );
        assert_eq!(tokenize("  Ünïcode Straße  "), ["ünïcode", "straße"]);
        assert!(tokenize("__ --").is_empty());
    }

    #[test]
    fn typos_allowed_grow_with_length() {
        assert_eq!(typos_allowed("ord"), 0);
        assert_eq!(typos_allowed("ordr"), 1);
        assert_eq!(typos_allowed("custmers"), 2);
        assert_eq!(typos_allowed("00005"), 0);
    }
}
