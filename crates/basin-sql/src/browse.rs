//! Statements that browse and describe the catalog: `SHOW HUBS`, `SHOW DATASETS [IN hub]`,
//! `SHOW TABLES [IN [hub.]dataset]`, `SHOW COLUMNS FROM t`, `DESCRIBE t`, and `COMMENT ON`.
//!
//! Each SHOW and DESCRIBE is rewritten into a query of the `system.*` tables, so it shows
//! exactly what those show the principal (hidden tables and columns absent, protected columns
//! marked); a named hub, dataset or table that is missing or hidden is "not found".

use basin_catalog::access::{Action, Securable};
use basin_core::{DEFAULT_HUB, DatasetRef, Name, TableRef};
use datafusion::sql::sqlparser::ast::{
    CommentObject, Ident, ObjectName, ShowStatementFilter, ShowStatementFilterPosition,
    ShowStatementOptions, Statement,
};
use futures::TryStreamExt;

use crate::engine::{Engine, QueryOutput, parse};
use crate::resolve::{name_parts, table_ref_of};
use crate::{Result, SqlError, access, check};

/// What a browsing statement lists.
#[derive(Debug, Clone, PartialEq)]
enum Listing {
    Hubs,
    Datasets { hub: Option<Name> },
    Tables { dataset: Option<DatasetRef> },
    Columns(TableRef),
}

/// Whether the statement is one this module runs.
pub(crate) fn handles(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ExplainTable { .. }
            | Statement::Comment { .. }
    ) || matches!(statement, Statement::ShowVariable { variable } if listing_of_words(variable).is_some())
}

/// Runs a SHOW, DESCRIBE or COMMENT ON statement.
pub(crate) async fn run(engine: &Engine, statement: Statement) -> Result<QueryOutput> {
    if let Statement::Comment {
        object_type,
        object_name,
        comment,
        if_exists,
    } = statement
    {
        let (object, column) = comment_target(object_type, &object_name)?;
        let text = comment.unwrap_or_default();
        return match set_description(engine, &object, column.as_deref(), &text).await {
            Err(
                SqlError::NotFound { .. }
                | SqlError::Catalog(basin_catalog::CatalogError::NotFound { .. }),
            ) if if_exists => QueryOutput::write_summary("comment", 0, 0),
            done => {
                done?;
                QueryOutput::write_summary("comment", 1, 0)
            }
        };
    }
    let (listing, like) = listing_of(&statement)?;
    require_visible(engine, &listing).await?;
    query(engine, &listing_sql(&listing, like.as_deref())).await
}

/// Sets the description of a hub, dataset, table or column (MANAGE on the object; a hidden
/// object or column answers "not found"), and records it in the audit log. An empty text clears
/// the description.
pub async fn set_description(
    engine: &Engine,
    object: &Securable,
    column: Option<&str>,
    text: &str,
) -> Result<()> {
    let target = match column {
        Some(c) => format!("{object}.{c}"),
        None => object.to_string(),
    };
    let result = async {
        check(engine, object, Action::Manage(object)).await?;
        if let (
            Securable::Table {
                hub,
                dataset,
                table,
            },
            Some(c),
        ) = (object, column)
        {
            let t = TableRef::new(hub, dataset, table)?;
            let (_, policy) = access::table_policy(engine, &t).await?;
            if !policy.columns.iter().any(|p| p.name == c) {
                return Err(SqlError::NotFound {
                    kind: "column",
                    name: format!("{t}.{c}"),
                    suggestion: basin_core::closest(
                        c,
                        policy.columns.iter().map(|p| p.name.as_str()),
                    )
                    .map(str::to_string),
                });
            }
        }
        Ok(engine
            .catalog()
            .set_description(object, column, text)
            .await?)
    }
    .await;
    let (outcome, detail) = match &result {
        Ok(()) => ("ok", serde_json::json!({"description": text})),
        Err(e @ (SqlError::Denied(_) | SqlError::NotFound { .. })) => {
            ("denied", serde_json::json!({"error": e.to_string()}))
        }
        Err(e) => ("error", serde_json::json!({"error": e.to_string()})),
    };
    engine
        .tables()
        .audit(&engine.actor(), "comment", &target, outcome, detail)
        .await;
    result
}

/// The object (and column) `COMMENT ON … IS …` describes: `DATABASE hub`, `SCHEMA
/// [hub.]dataset`, `TABLE [hub.]dataset.table`, `COLUMN [hub.]dataset.table.column`.
fn comment_target(kind: CommentObject, name: &ObjectName) -> Result<(Securable, Option<String>)> {
    let parts = name_parts(name);
    let bad = |what: &str| {
        SqlError::Invalid(format!(
            "cannot read '{name}' as {what}; write COMMENT ON DATABASE hub, SCHEMA [hub.]dataset, TABLE [hub.]dataset.table or COLUMN [hub.]dataset.table.column"
        ))
    };
    Ok(match kind {
        CommentObject::Database => match parts.as_slice() {
            [hub] => (
                Securable::Hub {
                    hub: Name::parse("hub", hub)?.to_string(),
                },
                None,
            ),
            _ => return Err(bad("a hub")),
        },
        CommentObject::Schema => {
            let d = dataset_of(&parts).ok_or_else(|| bad("a dataset"))??;
            (
                Securable::Dataset {
                    hub: d.hub.to_string(),
                    dataset: d.dataset.to_string(),
                },
                None,
            )
        }
        CommentObject::Table => (Securable::table(&table_ref_of(name)?), None),
        CommentObject::Column => {
            let Some((column, table)) = parts.split_last() else {
                return Err(bad("a column"));
            };
            let table_name = ObjectName::from(
                table
                    .iter()
                    .map(|p| Ident::with_quote('"', p.as_str()))
                    .collect::<Vec<_>>(),
            );
            (
                Securable::table(&table_ref_of(&table_name)?),
                Some(column.clone()),
            )
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "COMMENT ON {other} is not supported: Basin describes hubs (DATABASE), datasets (SCHEMA), tables and columns"
            )));
        }
    })
}

/// `[hub.]dataset` as a dataset (`None`: not one or two parts).
fn dataset_of(parts: &[String]) -> Option<Result<DatasetRef>> {
    match parts {
        [d] => Some(DatasetRef::new(DEFAULT_HUB, d).map_err(Into::into)),
        [h, d] => Some(DatasetRef::new(h, d).map_err(Into::into)),
        _ => None,
    }
}

/// `SHOW HUBS`, `SHOW DATASETS`, `SHOW DATASETS IN|FROM hub` (words the parser keeps as a
/// variable name).
fn listing_of_words(words: &[Ident]) -> Option<Result<Listing>> {
    let words: Vec<String> = words.iter().map(|w| w.value.to_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["hubs"] => Ok(Listing::Hubs),
        ["datasets"] => Ok(Listing::Datasets { hub: None }),
        ["datasets", "in" | "from", hub] => Name::parse("hub", hub)
            .map(|hub| Listing::Datasets { hub: Some(hub) })
            .map_err(Into::into),
        // The parser drops quoted words here, so a pattern would be lost: say so.
        ["hubs" | "datasets", ..] => Err(SqlError::Unsupported(
            "SHOW HUBS and SHOW DATASETS [IN hub] take no other clause; to filter, write SHOW DATABASES LIKE '<pattern>' or SHOW SCHEMAS [IN hub] LIKE '<pattern>'".into(),
        )),
        _ => return None,
    })
}

/// What a SHOW or DESCRIBE statement lists, and its `LIKE` pattern.
fn listing_of(statement: &Statement) -> Result<(Listing, Option<String>)> {
    match statement {
        Statement::ShowVariable { variable } => Ok((
            listing_of_words(variable).expect("checked by `handles`")?,
            None,
        )),
        Statement::ShowDatabases { show_options, .. } => {
            let like = options(show_options, false)?;
            Ok((Listing::Hubs, like))
        }
        Statement::ShowSchemas { show_options, .. } => {
            let like = options(show_options, true)?;
            let hub = match parent(show_options).as_deref() {
                None => None,
                Some([hub]) => Some(Name::parse("hub", hub)?),
                Some(_) => {
                    return Err(SqlError::Invalid(
                        "SHOW DATASETS IN takes a hub name".into(),
                    ));
                }
            };
            Ok((Listing::Datasets { hub }, like))
        }
        Statement::ShowTables { show_options, .. } => {
            let like = options(show_options, true)?;
            let dataset = match parent(show_options) {
                None => None,
                Some(parts) => Some(dataset_of(&parts).ok_or_else(|| {
                    SqlError::Invalid("SHOW TABLES IN takes [hub.]dataset".into())
                })??),
            };
            Ok((Listing::Tables { dataset }, like))
        }
        Statement::ShowColumns { show_options, .. } => {
            let like = options(show_options, true)?;
            let Some(parts) = parent(show_options) else {
                return Err(SqlError::Invalid(
                    "SHOW COLUMNS needs a table: SHOW COLUMNS FROM [hub.]dataset.table".into(),
                ));
            };
            let name = ObjectName::from(
                parts
                    .iter()
                    .map(|p| Ident::with_quote('"', p.as_str()))
                    .collect::<Vec<_>>(),
            );
            Ok((Listing::Columns(table_ref_of(&name)?), like))
        }
        Statement::ExplainTable {
            table_name,
            hive_format: None,
            ..
        } => Ok((Listing::Columns(table_ref_of(table_name)?), None)),
        other => Err(SqlError::Unsupported(format!(
            "statement not supported: {other}"
        ))),
    }
}

/// The `IN|FROM` name of a SHOW statement, in parts.
fn parent(options: &ShowStatementOptions) -> Option<Vec<String>> {
    let name = options.show_in.as_ref()?.parent_name.as_ref()?;
    Some(name_parts(name))
}

/// The `LIKE` pattern of a SHOW statement; every other option is refused rather than ignored.
fn options(options: &ShowStatementOptions, may_have_parent: bool) -> Result<Option<String>> {
    let unsupported = options.starts_with.is_some()
        || options.limit.is_some()
        || options.limit_from.is_some()
        || (!may_have_parent && options.show_in.is_some())
        || options
            .show_in
            .as_ref()
            .is_some_and(|i| i.parent_type.is_some() || i.parent_name.is_none());
    if unsupported {
        return Err(SqlError::Unsupported(
            "SHOW takes only IN <name> and LIKE '<pattern>' here; for anything else, query system.* or information_schema".into(),
        ));
    }
    match &options.filter_position {
        None => Ok(None),
        Some(
            ShowStatementFilterPosition::Infix(ShowStatementFilter::Like(p))
            | ShowStatementFilterPosition::Suffix(ShowStatementFilter::Like(p)),
        ) => Ok(Some(p.clone())),
        Some(_) => Err(SqlError::Unsupported(
            "SHOW filters only with LIKE '<pattern>'; for anything else, query system.* or information_schema".into(),
        )),
    }
}

/// Fails with "not found" when the hub, dataset or table a listing names is missing or hidden.
async fn require_visible(engine: &Engine, listing: &Listing) -> Result<()> {
    let (kind, name, seen) = match listing {
        Listing::Hubs | Listing::Datasets { hub: None } | Listing::Tables { dataset: None } => {
            return Ok(());
        }
        Listing::Columns(t) => {
            access::table_policy(engine, t).await?;
            return Ok(());
        }
        Listing::Datasets { hub: Some(hub) } => (
            "hub",
            hub.to_string(),
            !access::visible(engine, Some(hub.as_str()), None)
                .await?
                .hubs
                .is_empty(),
        ),
        Listing::Tables { dataset: Some(d) } => (
            "dataset",
            d.to_string(),
            !access::visible(engine, Some(d.hub.as_str()), Some(d.dataset.as_str()))
                .await?
                .datasets
                .is_empty(),
        ),
    };
    if seen {
        Ok(())
    } else {
        Err(SqlError::NotFound {
            kind,
            name,
            suggestion: None,
        })
    }
}

/// The query of the `system.*` tables that shows a listing. Names in it were validated
/// (`[a-z][a-z0-9_]*`); the pattern is quoted.
fn listing_sql(listing: &Listing, like: Option<&str>) -> String {
    let like = |column: &str| {
        like.map(|p| format!(" AND {column} LIKE '{}'", p.replace('\'', "''")))
            .unwrap_or_default()
    };
    match listing {
        Listing::Hubs => format!(
            "SELECT name AS hub, description FROM system.hubs WHERE true{} ORDER BY name",
            like("name")
        ),
        Listing::Datasets { hub } => format!(
            "SELECT hub, name AS dataset, layer, description FROM system.datasets WHERE true{}{} ORDER BY hub, name",
            hub.as_ref()
                .map(|h| format!(" AND hub = '{h}'"))
                .unwrap_or_default(),
            like("name")
        ),
        Listing::Tables { dataset } => format!(
            "SELECT hub, dataset, name AS table_name, description FROM system.tables WHERE true{}{} ORDER BY hub, dataset, name",
            dataset
                .as_ref()
                .map(|d| format!(" AND hub = '{}' AND dataset = '{}'", d.hub, d.dataset))
                .unwrap_or_default(),
            like("name")
        ),
        Listing::Columns(t) => format!(
            "SELECT name AS column_name, data_type, nullable, description, tags, pii, masked FROM system.columns WHERE hub = '{}' AND dataset = '{}' AND table_name = '{}'{} ORDER BY ordinal",
            t.hub,
            t.dataset,
            t.table,
            like("name")
        ),
    }
}

/// Runs a query of the virtual tables and collects its rows.
async fn query(engine: &Engine, sql: &str) -> Result<QueryOutput> {
    let statement = parse(sql)?
        .pop()
        .ok_or_else(|| SqlError::Query("empty listing query".into()))?;
    let df = engine.plan(statement).await?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.execute_stream().await?.try_collect().await?;
    Ok(QueryOutput { schema, batches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(sql: &str) -> Result<(Listing, Option<String>)> {
        let s = parse(sql)?.pop().unwrap();
        assert!(handles(&s), "{sql} is a browsing statement");
        listing_of(&s)
    }

    #[test]
    fn show_statements_name_what_they_list() {
        let main = |d: &str| Some(DatasetRef::new("main", d).unwrap());
        for (sql, expected) in [
            ("SHOW HUBS", Listing::Hubs),
            ("show databases", Listing::Hubs),
            ("SHOW DATASETS", Listing::Datasets { hub: None }),
            (
                "SHOW DATASETS IN de",
                Listing::Datasets {
                    hub: Some(Name::parse("hub", "de").unwrap()),
                },
            ),
            (
                "SHOW SCHEMAS FROM de",
                Listing::Datasets {
                    hub: Some(Name::parse("hub", "de").unwrap()),
                },
            ),
            ("SHOW TABLES", Listing::Tables { dataset: None }),
            (
                "SHOW TABLES IN sales",
                Listing::Tables {
                    dataset: main("sales"),
                },
            ),
            (
                "SHOW TABLES FROM main.sales",
                Listing::Tables {
                    dataset: main("sales"),
                },
            ),
            (
                "SHOW COLUMNS FROM sales.orders",
                Listing::Columns(TableRef::new("main", "sales", "orders").unwrap()),
            ),
            (
                "DESCRIBE de.crm.People",
                Listing::Columns(TableRef::new("de", "crm", "people").unwrap()),
            ),
        ] {
            assert_eq!(listing(sql).unwrap().0, expected, "{sql}");
        }
        assert_eq!(
            listing("SHOW TABLES IN sales LIKE 'ord%'")
                .unwrap()
                .1
                .as_deref(),
            Some("ord%")
        );
    }

    #[test]
    fn options_that_would_be_ignored_are_refused() {
        for sql in [
            "SHOW TABLES IN sales LIMIT 3",
            "SHOW TABLES STARTS WITH 'o'",
        ] {
            let e = listing(sql).unwrap_err().to_string();
            assert!(e.contains("SHOW takes only"), "{sql}: {e}");
        }
        let e = listing("SHOW HUBS LIKE 'x'").unwrap_err().to_string();
        assert!(e.contains("SHOW DATABASES LIKE"), "{e}");
        assert!(!handles(&parse("SHOW FUNCTIONS").unwrap().pop().unwrap()));
        assert!(!handles(
            &parse("SHOW something_else").unwrap().pop().unwrap()
        ));
    }

    #[test]
    fn comments_name_their_object() {
        let target = |sql: &str| match parse(sql).unwrap().pop().unwrap() {
            Statement::Comment {
                object_type,
                object_name,
                ..
            } => comment_target(object_type, &object_name),
            other => panic!("{other}"),
        };
        assert_eq!(
            target("COMMENT ON DATABASE de IS 'x'").unwrap(),
            (Securable::Hub { hub: "de".into() }, None)
        );
        assert_eq!(
            target("COMMENT ON SCHEMA sales IS 'x'").unwrap(),
            (
                Securable::Dataset {
                    hub: "main".into(),
                    dataset: "sales".into()
                },
                None
            )
        );
        assert_eq!(
            target("COMMENT ON COLUMN main.sales.orders.Amount IS NULL").unwrap(),
            (
                Securable::table(&TableRef::new("main", "sales", "orders").unwrap()),
                Some("amount".into())
            )
        );
        assert!(target("COMMENT ON COLUMN orders.amount IS 'x'").is_err());
        assert!(target("COMMENT ON DATABASE a.b IS 'x'").is_err());
    }
}
