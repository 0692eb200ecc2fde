//! `GRANT` and `REVOKE`, in Basin's grammar (which covers hubs, datasets, tables, columns and
//! tag expressions):
//!
//! ```sql
//! GRANT SELECT (id, region), MODIFY ON TABLE sales.orders TO analyst, bob
//! GRANT SELECT ON TAG classification IN ('public', 'internal') TO analyst
//! REVOKE USAGE ON HUB de FROM analyst
//! ```

use basin_catalog::access::{Action, Grant, Mask, Privilege, Securable, TablePolicy};
use basin_core::{DatasetRef, Name, TableRef};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::access::table_policy;
use crate::dialect::BasinDialect;
use crate::engine::{Engine, QueryOutput};
use crate::governed::GovernedTable;
use crate::{Result, SqlError};

/// Whether the SQL text is a GRANT or REVOKE statement.
pub(crate) fn is_grant(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    first.eq_ignore_ascii_case("grant") || first.eq_ignore_ascii_case("revoke")
}

/// What a GRANT or REVOKE statement says.
#[derive(Debug)]
struct GrantStatement {
    revoke: bool,
    privileges: Vec<(Privilege, Vec<String>)>,
    object: Securable,
    grantees: Vec<String>,
}

/// The single grants (one privilege, column, grantee each) that a `GRANT` statement, or its
/// text without the word GRANT (as project files list them), gives; dataset and table names
/// without a hub are in `hub`. Tag grants are refused: a project grants on its hub, datasets
/// and tables.
pub fn expand_grant(text: &str, hub: &str) -> Result<Vec<Grant>> {
    let sql = if is_grant(text) {
        text.to_string()
    } else {
        format!("GRANT {text}")
    };
    let statement = parse_in(&sql, hub)?;
    if statement.revoke {
        return Err(SqlError::Invalid("a grant to declare, not a REVOKE".into()));
    }
    if matches!(statement.object, Securable::Tag { .. }) {
        return Err(SqlError::Invalid(
            "grants ON TAG are made with `basin grant`, not declared in a project".into(),
        ));
    }
    let mut grants = Vec::new();
    for grantee in &statement.grantees {
        for (privilege, columns) in &statement.privileges {
            let columns: Vec<Option<String>> = if columns.is_empty() {
                vec![None]
            } else {
                columns.iter().cloned().map(Some).collect()
            };
            for column in columns {
                grants.push(Grant {
                    grantee: grantee.clone(),
                    privilege: *privilege,
                    object: statement.object.clone(),
                    column,
                    granted_by: String::new(),
                    granted_at: String::new(),
                });
            }
        }
    }
    Ok(grants)
}

/// One grant as a statement (`GRANT SELECT (a) ON TABLE h.d.t TO x`, or its REVOKE).
pub fn grant_statement(g: &Grant, revoke: bool) -> String {
    let column = g
        .column
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let object = g.object.to_string();
    let (kind, name) = object.split_once(' ').unwrap_or((&object, ""));
    let (verb, to) = if revoke {
        ("REVOKE", "FROM")
    } else {
        ("GRANT", "TO")
    };
    format!(
        "{verb} {}{column} ON {} {name} {to} {}",
        g.privilege,
        kind.to_uppercase(),
        g.grantee
    )
}

/// Runs one GRANT or REVOKE statement.
pub(crate) async fn run(engine: &Engine, sql: &str) -> Result<QueryOutput> {
    let statement = parse(sql)?;
    let action = if statement.revoke { "revoke" } else { "grant" };
    let target = {
        let privileges: Vec<String> = statement
            .privileges
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        format!(
            "{} on {} {} {}",
            privileges.join(", "),
            statement.object,
            if statement.revoke { "from" } else { "to" },
            statement.grantees.join(", ")
        )
    };
    let result = change_grants(engine, &statement).await;
    let (outcome, detail) = match &result {
        Ok(n) => ("ok", serde_json::json!({"grants": n})),
        Err(e @ (SqlError::Denied(_) | SqlError::NotFound { .. })) => {
            ("denied", serde_json::json!({"error": e.to_string()}))
        }
        Err(e) => ("error", serde_json::json!({"error": e.to_string()})),
    };
    engine
        .tables()
        .audit(&engine.actor(), action, &target, outcome, detail)
        .await;
    QueryOutput::write_summary(action, result?, 0)
}

/// Makes the grants (or revocations) of a statement once the principal may; returns how many.
async fn change_grants(engine: &Engine, statement: &GrantStatement) -> Result<u64> {
    for (privilege, _) in &statement.privileges {
        check(
            engine,
            &statement.object,
            Action::Grant(*privilege, &statement.object),
        )
        .await?;
    }
    let by = engine
        .principal()
        .map_or(crate::OPERATOR.to_string(), |p| p.name.clone());
    let mut n = 0;
    for grantee in &statement.grantees {
        for (privilege, columns) in &statement.privileges {
            let column_list: Vec<Option<String>> = if columns.is_empty() {
                vec![None]
            } else {
                columns.iter().cloned().map(Some).collect()
            };
            for column in column_list {
                let grant = Grant {
                    grantee: grantee.clone(),
                    privilege: *privilege,
                    object: statement.object.clone(),
                    column,
                    granted_by: by.clone(),
                    granted_at: String::new(),
                };
                if statement.revoke {
                    engine.catalog().revoke(&grant).await?;
                } else {
                    engine.catalog().grant(&grant).await?;
                }
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Fails unless the engine's principal may take `action` on `object` (the catalog's one
/// decision, [`basin_catalog::access::AccessSnapshot::may`]); an object it cannot see answers
/// "not found", exactly as a missing one.
pub async fn check(engine: &Engine, object: &Securable, action: Action<'_>) -> Result<()> {
    let Some(principal) = engine.principal() else {
        return Ok(());
    };
    let catalog = engine.catalog();
    let snapshot = catalog.access_snapshot().await?;
    let hidden = match object {
        Securable::Table {
            hub,
            dataset,
            table,
        } => {
            table_policy(engine, &TableRef::new(hub, dataset, table)?).await?;
            false
        }
        Securable::Dataset { hub, dataset } => {
            match catalog.dataset(&DatasetRef::new(hub, dataset)?).await? {
                Some(d) => !snapshot.dataset_visible(principal, &d),
                None => true,
            }
        }
        Securable::Hub { hub } => {
            catalog.hub(hub).await?.is_none() || !snapshot.hub_visible(principal, hub)
        }
        Securable::Tag { .. } => false,
    };
    if hidden {
        let (kind, name) = match object {
            Securable::Hub { hub } => ("hub", hub.clone()),
            Securable::Dataset { hub, dataset } => ("dataset", format!("{hub}.{dataset}")),
            _ => unreachable!("tables and tags are handled above"),
        };
        return Err(SqlError::NotFound {
            kind,
            name,
            suggestion: None,
        });
    }
    if snapshot.may(principal, action) {
        return Ok(());
    }
    Err(SqlError::Denied(match action {
        Action::Grant(Privilege::Unmask, _) => format!(
            "permission denied: only administrators grant UNMASK (on {object}): it reveals personal data"
        ),
        Action::Tag { pii: true, .. } => format!(
            "permission denied: only administrators tag columns of {object} as personal data (pii) or untag them"
        ),
        Action::Mask { pii: true, .. } => format!(
            "permission denied: only administrators mask personal data (pii) columns of {object}: a mask sees the clear value"
        ),
        Action::Delete(Securable::Hub { hub }) => {
            format!("permission denied: only administrators delete hubs (hub '{hub}')")
        }
        Action::Administer | Action::ReadAudit | Action::Token { .. } => {
            "permission denied: this needs the admin role".to_string()
        }
        _ if matches!(object, Securable::Tag { .. }) => format!(
            "permission denied: you need MANAGE on {object} to do this (tag grants are for administrators)"
        ),
        _ => format!("permission denied: you need MANAGE on {object} to do this"),
    }))
}

fn parse(sql: &str) -> Result<GrantStatement> {
    parse_in(sql, basin_core::DEFAULT_HUB)
}

/// [`parse`], dataset and table names without a hub being in `hub`.
fn parse_in(sql: &str, hub: &str) -> Result<GrantStatement> {
    let tokens: Vec<Token> = Tokenizer::new(&BasinDialect::default(), sql)
        .tokenize()
        .map_err(|e| SqlError::Parse(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
        .collect();
    let mut p = Cursor { tokens, at: 0 };
    let revoke = match p.word()?.to_ascii_uppercase().as_str() {
        "GRANT" => false,
        "REVOKE" => true,
        other => {
            return Err(SqlError::Parse(format!(
                "expected GRANT or REVOKE, found {other}"
            )));
        }
    };
    let mut privileges = Vec::new();
    loop {
        let word = p.word()?.to_ascii_uppercase();
        let mut list: Vec<Privilege> = if word == "ALL" {
            p.optional_word("PRIVILEGES");
            vec![
                Privilege::Usage,
                Privilege::Select,
                Privilege::Modify,
                Privilege::Create,
                Privilege::Manage,
            ]
        } else {
            vec![
                word.parse::<Privilege>()
                    .map_err(|e| SqlError::Parse(e.to_string()))?,
            ]
        };
        let mut columns = Vec::new();
        if p.peek() == Some(&Token::LParen) {
            p.at += 1;
            loop {
                columns.push(Name::parse("column", &p.word()?)?.to_string());
                match p.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::RParen) => break,
                    _ => return Err(SqlError::Parse("a column list is written (a, b, c)".into())),
                }
            }
        }
        privileges.extend(list.drain(..).map(|p| (p, columns.clone())));
        if p.peek() == Some(&Token::Comma) {
            p.at += 1;
            continue;
        }
        break;
    }
    p.expect_word("ON")?;
    let kind = p.word()?.to_ascii_uppercase();
    let object = match kind.as_str() {
        "HUB" | "CATALOG" => Securable::Hub {
            hub: Name::parse("hub", &p.word()?)?.to_string(),
        },
        "DATASET" | "SCHEMA" => {
            let name = p.dotted()?;
            let name = if name.contains('.') {
                name
            } else {
                format!("{hub}.{name}")
            };
            let d = DatasetRef::parse(&name)?;
            Securable::Dataset {
                hub: d.hub.to_string(),
                dataset: d.dataset.to_string(),
            }
        }
        "TABLE" => {
            let name = p.dotted()?;
            let name = match name.split('.').count() {
                2 => format!("{hub}.{name}"),
                _ => name,
            };
            Securable::table(&TableRef::parse(&name)?)
        }
        "TAG" => {
            let key = p.word()?;
            let values = match p.peek() {
                Some(Token::Eq) => {
                    p.at += 1;
                    vec![p.string()?]
                }
                Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("IN") => {
                    p.at += 1;
                    p.expect(Token::LParen)?;
                    let mut v = vec![p.string()?];
                    while p.peek() == Some(&Token::Comma) {
                        p.at += 1;
                        v.push(p.string()?);
                    }
                    p.expect(Token::RParen)?;
                    v
                }
                _ => Vec::new(),
            };
            let text = if values.is_empty() {
                format!("tag {key}")
            } else {
                format!("tag {key}={}", values.join("|"))
            };
            Securable::parse(&text)?
        }
        other => {
            return Err(SqlError::Parse(format!(
                "expected HUB, DATASET, TABLE or TAG after ON, found {other}"
            )));
        }
    };
    if privileges.iter().any(|(_, c)| !c.is_empty()) && !matches!(object, Securable::Table { .. }) {
        return Err(SqlError::Invalid(
            "column lists are only allowed in grants ON TABLE".into(),
        ));
    }
    p.expect_word(if revoke { "FROM" } else { "TO" })?;
    let mut grantees = vec![Name::parse("grantee", &p.word()?)?.to_string()];
    while p.peek() == Some(&Token::Comma) {
        p.at += 1;
        grantees.push(Name::parse("grantee", &p.word()?)?.to_string());
    }
    if let Some(t) = p.peek() {
        return Err(SqlError::Parse(format!(
            "unexpected '{t}' at the end of the statement"
        )));
    }
    Ok(GrantStatement {
        revoke,
        privileges,
        object,
        grantees,
    })
}

struct Cursor {
    tokens: Vec<Token>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn word(&mut self) -> Result<String> {
        match self.next() {
            Some(Token::Word(w)) if w.quote_style.is_some() => Ok(w.value),
            Some(Token::Word(w)) => Ok(w.value.to_lowercase()),
            Some(t) => Err(SqlError::Parse(format!("expected a name, found '{t}'"))),
            None => Err(SqlError::Parse("the statement ends too early".into())),
        }
    }

    fn dotted(&mut self) -> Result<String> {
        let mut name = self.word()?;
        while self.peek() == Some(&Token::Period) {
            self.at += 1;
            name.push('.');
            name.push_str(&self.word()?);
        }
        Ok(name)
    }

    fn string(&mut self) -> Result<String> {
        match self.next() {
            Some(Token::SingleQuotedString(s)) => Ok(s),
            Some(Token::Word(w)) => Ok(w.value.to_lowercase()),
            other => Err(SqlError::Parse(format!(
                "expected a tag value such as 'public', found {}",
                other.map_or("the end".into(), |t| format!("'{t}'"))
            ))),
        }
    }

    fn expect(&mut self, token: Token) -> Result<()> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(SqlError::Parse(format!(
                "expected '{token}', found {}",
                other.map_or("the end".into(), |t| format!("'{t}'"))
            ))),
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        match self.next() {
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word) => Ok(()),
            other => Err(SqlError::Parse(format!(
                "expected {word}, found {}",
                other.map_or("the end".into(), |t| format!("'{t}'"))
            ))),
        }
    }

    fn optional_word(&mut self, word: &str) {
        if matches!(self.peek(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word)) {
            self.at += 1;
        }
    }
}

/// A policy expression to check before it is stored.
pub enum PolicyExpression<'a> {
    /// A row filter (SQL over the table's columns).
    RowFilter(&'a str),
    /// A mask of one column.
    Mask { column: &'a str, mask: &'a Mask },
}

/// Checks a row filter or mask by running it, the way every governed scan of the table will,
/// over a row of the table: an expression that would fail at query time fails here, instead of
/// breaking every query of the grantees later.
pub async fn check_policy_expression(
    engine: &Engine,
    t: &TableRef,
    expression: PolicyExpression<'_>,
) -> Result<()> {
    let entry = engine.catalog().require_table(t).await?;
    let mut policy = TablePolicy::unrestricted(&entry);
    let (what, sql) = match expression {
        PolicyExpression::RowFilter(sql) => {
            policy.row_filter = Some(sql.to_string());
            ("row filter", sql.to_string())
        }
        PolicyExpression::Mask { column, mask } => {
            let Some(c) = policy.columns.iter_mut().find(|c| c.name == column) else {
                return Err(SqlError::NotFound {
                    kind: "column",
                    name: format!("{t}.{column}"),
                    suggestion: None,
                });
            };
            c.mask = Some(mask.clone());
            ("mask", mask.to_string())
        }
    };
    let lake = basin_lake::LakeTable::open(&entry.location).await?;
    let key = if policy.columns.iter().any(|c| c.pii) {
        Some(engine.hub_key(t.hub.as_str())?)
    } else {
        None
    };
    let invalid = |e: SqlError| {
        SqlError::Invalid(format!("'{sql}' cannot be used as a {what} of '{t}': {e}"))
    };
    let governed = GovernedTable::try_new(
        t.to_string(),
        lake.provider().await?,
        &policy,
        key.as_ref(),
        None,
        engine.scan_planner().clone(),
    )
    .map_err(invalid)?;
    engine
        .read(std::sync::Arc::new(governed))?
        .limit(0, Some(1))?
        .collect()
        .await
        .map_err(|e| invalid(e.into()))?;
    Ok(())
}
