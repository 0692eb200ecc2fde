//! `GRANT` and `REVOKE`, in Basin's grammar (which covers hubs, datasets, tables, columns and
//! tag expressions):
//!
//! ```sql
//! GRANT SELECT (id, region), MODIFY ON TABLE sales.orders TO analyst, bob
//! GRANT SELECT ON TAG classification IN ('public', 'internal') TO analyst
//! REVOKE USAGE ON HUB de FROM analyst
//! ```

use basin_catalog::access::{Grant, Privilege, Securable};
use basin_core::{DatasetRef, Name, TableRef};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::access::table_policy;
use crate::dialect::BasinDialect;
use crate::engine::{Engine, QueryOutput};
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

/// Runs one GRANT or REVOKE statement.
pub(crate) async fn run(engine: &Engine, sql: &str) -> Result<QueryOutput> {
    let statement = parse(sql)?;
    check_manage(engine, &statement.object).await?;
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
    QueryOutput::write_summary(if statement.revoke { "revoke" } else { "grant" }, n, 0)
}

/// Fails unless the engine's principal may grant on `object`; an object it cannot see answers
/// "not found", exactly as a missing one.
pub async fn check_manage(engine: &Engine, object: &Securable) -> Result<()> {
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
    if snapshot.may_manage(principal, object) {
        Ok(())
    } else {
        Err(SqlError::Denied(format!(
            "permission denied: you need MANAGE on {object} to grant or revoke on it{}",
            if matches!(object, Securable::Tag { .. }) {
                " (tag grants are for administrators)"
            } else {
                ""
            }
        )))
    }
}

fn parse(sql: &str) -> Result<GrantStatement> {
    let tokens: Vec<Token> = Tokenizer::new(&BasinDialect, sql)
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
            let d = DatasetRef::parse(&p.dotted()?)?;
            Securable::Dataset {
                hub: d.hub.to_string(),
                dataset: d.dataset.to_string(),
            }
        }
        "TABLE" => Securable::table(&TableRef::parse(&p.dotted()?)?),
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

/// Checks that a policy expression (row filter or mask) is valid SQL over the table's columns.
pub async fn check_policy_expression(engine: &Engine, t: &TableRef, sql: &str) -> Result<()> {
    let entry = engine.catalog().require_table(t).await?;
    let schema = basin_lake::LakeTable::open(&entry.location)
        .await?
        .schema()?;
    let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
    let bound = crate::principal_sql::bind_principal(sql, None)?;
    engine
        .base_state()
        .create_logical_expr(&bound, &df_schema)
        .map_err(|e| {
            SqlError::Invalid(format!("'{sql}' is not a valid expression over '{t}': {e}"))
        })?;
    Ok(())
}
