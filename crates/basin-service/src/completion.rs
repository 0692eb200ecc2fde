//! Completion for SQL editors: the hubs, datasets, tables and columns the principal may see, and
//! SQL keywords. Only the scope the prefix names is read (one dataset's tables, one table's
//! columns), so that completing stays fast however many tables the catalog holds; hidden
//! objects never appear (they are filtered by the catalog's one decision).

use basin_core::DEFAULT_HUB;
use serde::Serialize;

use crate::{Result, Session};

/// Most suggestions one completion returns.
pub const MAX_COMPLETIONS: usize = 50;

/// One suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completion {
    /// The word that completes the prefix's last part.
    pub label: String,
    /// `keyword`, `hub`, `dataset`, `table` or `column`.
    pub kind: &'static str,
    /// More about it: a column's type, a table's full name.
    pub detail: String,
}

/// SQL words offered at the start of a name.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT JOIN",
    "INNER JOIN",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS NULL",
    "IS NOT NULL",
    "LIKE",
    "BETWEEN",
    "DISTINCT",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "UNION ALL",
    "WITH",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE FROM",
    "MERGE INTO",
    "CREATE TABLE",
    "DESCRIBE",
    "SHOW TABLES",
    "EXPLAIN",
    "VERSION AS OF",
    "TIMESTAMP AS OF",
    "CAST",
    "DESC",
    "ASC",
];

/// Tables a statement names after FROM, JOIN, INTO, UPDATE or TABLE, with their aliases — read
/// from words, not parsed, since the statement being written is seldom complete.
fn tables_in(context: &str) -> Vec<(String, Option<String>)> {
    let words: Vec<String> = context
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('"').to_ascii_lowercase())
        .collect();
    let mut found = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !matches!(w.as_str(), "from" | "join" | "into" | "update" | "table") {
            continue;
        }
        let Some(name) = words.get(i + 1) else {
            continue;
        };
        if !name.contains('.') {
            continue;
        }
        let mut alias = words.get(i + 2).cloned();
        if alias.as_deref() == Some("as") {
            alias = words.get(i + 3).cloned();
        }
        let alias = alias.filter(|a| {
            !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(a))
                && !matches!(a.as_str(), "left" | "right" | "inner" | "full" | "cross")
                && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        found.push((name.clone(), alias));
    }
    found
}

impl Session {
    /// Suggestions for the name being written, `prefix` (`sal`, `sales.`, `main.sales.or`,
    /// `o.am`), in a statement `context` whose tables' columns are offered too.
    pub async fn complete(&self, prefix: &str, context: &str) -> Result<Vec<Completion>> {
        let prefix = prefix.trim().trim_matches('"').to_ascii_lowercase();
        let (qualifier, word) = match prefix.rsplit_once('.') {
            Some((q, w)) => (Some(q.to_string()), w.to_string()),
            None => (None, prefix.clone()),
        };
        let mut out = Vec::new();
        let context_tables = tables_in(context);
        match qualifier.as_deref() {
            None => {
                for k in KEYWORDS {
                    if k.to_ascii_lowercase().starts_with(&word) && !word.is_empty() {
                        out.push(Completion {
                            label: k.to_string(),
                            kind: "keyword",
                            detail: String::new(),
                        });
                    }
                }
                for (name, _) in &context_tables {
                    out.extend(self.columns_of(name, &word).await?);
                }
                out.extend(self.datasets_of(DEFAULT_HUB, &word).await?);
                out.extend(self.hubs_named(&word).await?);
            }
            Some(q) => {
                let parts: Vec<&str> = q.split('.').collect();
                // An alias or a table named in the statement: its columns.
                if let [one] = parts.as_slice()
                    && let Some((table, _)) = context_tables
                        .iter()
                        .find(|(_, alias)| alias.as_deref() == Some(one))
                {
                    out.extend(self.columns_of(table, &word).await?);
                }
                match parts.as_slice() {
                    [one] => {
                        out.extend(self.datasets_of(one, &word).await?);
                        out.extend(self.tables_of(DEFAULT_HUB, one, &word).await?);
                    }
                    [a, b] => {
                        out.extend(self.tables_of(a, b, &word).await?);
                        out.extend(self.columns_of(q, &word).await?);
                    }
                    [_, _, _] => out.extend(self.columns_of(q, &word).await?),
                    _ => {}
                }
            }
        }
        out.dedup();
        out.truncate(MAX_COMPLETIONS);
        Ok(out)
    }

    /// Visible hubs whose names start with `word`: by a grant of their own, or through a
    /// dataset the principal may see.
    async fn hubs_named(&self, word: &str) -> Result<Vec<Completion>> {
        let catalog = self.engine().catalog();
        let snapshot = catalog.access_snapshot().await?;
        let mut out = Vec::new();
        for hub in catalog.hubs().await? {
            if !hub.name.starts_with(word) {
                continue;
            }
            if snapshot.hub_visible(self.principal(), &hub.name)
                || !self.datasets_of(&hub.name, "").await?.is_empty()
            {
                out.push(Completion {
                    detail: format!("hub {}", hub.name),
                    label: hub.name,
                    kind: "hub",
                });
            }
        }
        Ok(out)
    }

    /// Visible datasets of `hub` whose names start with `word` (none when the hub is not a name).
    async fn datasets_of(&self, hub: &str, word: &str) -> Result<Vec<Completion>> {
        if basin_core::Name::parse("hub", hub).is_err() {
            return Ok(Vec::new());
        }
        let catalog = self.engine().catalog();
        let snapshot = catalog.access_snapshot().await?;
        let p = self.principal();
        let tag_grants = snapshot.sees_tables_by_tag(p);
        let mut out = Vec::new();
        for d in catalog.datasets(Some(hub)).await? {
            if !d.name.starts_with(word) || out.len() >= MAX_COMPLETIONS {
                continue;
            }
            let visible = snapshot.dataset_visible(p, &d)
                || tag_grants
                    && !basin_sql::access::visible_tables(self.engine(), Some(hub), Some(&d.name))
                        .await?
                        .is_empty();
            if visible {
                out.push(Completion {
                    detail: format!("dataset {hub}.{}", d.name),
                    label: d.name,
                    kind: "dataset",
                });
            }
        }
        Ok(out)
    }

    /// Visible tables of `hub.dataset` whose names start with `word`: the candidates decided
    /// one by one, in name order, until enough are found; when the first few hundred show too
    /// few, the dataset's visible tables at once.
    async fn tables_of(&self, hub: &str, dataset: &str, word: &str) -> Result<Vec<Completion>> {
        const ONE_BY_ONE: usize = 200;
        let Ok(scope) = basin_core::DatasetRef::new(hub, dataset) else {
            return Ok(Vec::new());
        };
        let catalog = self.engine().catalog();
        let Some(entry) = catalog.dataset(&scope).await? else {
            return Ok(Vec::new());
        };
        let snapshot = catalog.access_snapshot().await?;
        let candidates: Vec<String> = catalog
            .tables(Some(hub), Some(dataset))
            .await?
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with(word))
            .collect();
        let mut names = Vec::new();
        for name in candidates.iter().take(ONE_BY_ONE) {
            if names.len() >= MAX_COMPLETIONS {
                break;
            }
            let Ok(t) = basin_core::TableRef::new(hub, dataset, name) else {
                continue;
            };
            if let Some(table) = catalog.table(&t).await?
                && snapshot
                    .table_policy(self.principal(), &entry, &table)
                    .is_some()
            {
                names.push(name.clone());
            }
        }
        if names.len() < MAX_COMPLETIONS && candidates.len() > ONE_BY_ONE {
            names = basin_sql::access::visible_tables(self.engine(), Some(hub), Some(dataset))
                .await?
                .into_iter()
                .map(|(t, _)| t.name)
                .filter(|n| n.starts_with(word))
                .collect();
        }
        Ok(names
            .into_iter()
            .take(MAX_COMPLETIONS)
            .map(|name| Completion {
                detail: format!("table {scope}.{name}"),
                label: name,
                kind: "table",
            })
            .collect())
    }

    /// A table as the principal sees it (only its visible columns); `None` when it is missing
    /// or hidden. Asks the catalog's decision for this one table only.
    async fn seen_table(&self, t: &basin_core::TableRef) -> Result<Option<basin_catalog::Table>> {
        let catalog = self.engine().catalog();
        let Some(mut table) = catalog.table(t).await? else {
            return Ok(None);
        };
        let Some(dataset) = catalog.dataset(&t.dataset_ref()).await? else {
            return Ok(None);
        };
        let snapshot = catalog.access_snapshot().await?;
        Ok(snapshot
            .table_policy(self.principal(), &dataset, &table)
            .map(|policy| {
                table
                    .columns
                    .retain(|c| policy.columns.iter().any(|p| p.name == c.name));
                table
            }))
    }

    /// Visible columns of the table `name` (`dataset.table` or `hub.dataset.table`) whose names
    /// start with `word`; none when the table is missing or hidden.
    async fn columns_of(&self, name: &str, word: &str) -> Result<Vec<Completion>> {
        let Ok(t) = basin_core::TableRef::parse(name) else {
            return Ok(Vec::new());
        };
        Ok(self
            .seen_table(&t)
            .await?
            .into_iter()
            .flat_map(|x| x.columns)
            .filter(|c| c.name.starts_with(word))
            .map(|c| Completion {
                label: c.name,
                kind: "column",
                detail: c.data_type,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::tables_in;

    #[test]
    fn tables_and_aliases_are_read_from_an_unfinished_statement() {
        assert_eq!(
            tables_in("SELECT o. FROM sales.orders o JOIN main.sales.customers AS c ON"),
            vec![
                ("sales.orders".to_string(), Some("o".to_string())),
                ("main.sales.customers".to_string(), Some("c".to_string()))
            ]
        );
        assert_eq!(
            tables_in("select * from sales.orders where"),
            vec![("sales.orders".to_string(), None)]
        );
    }
}
