//! `basin table show|comment|history|restore`.

use basin_catalog::access::Securable;
use basin_core::TableRef;
use basin_service::Session;

use super::print_sql;
use crate::cli::{Global, OutputFormat, TableCommand};
use crate::output;

pub async fn run(g: &Global, session: &Session, cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Show { table } => {
            let info = session.table(&TableRef::parse(&table)?).await?;
            let t = info.table;
            let columns = format!(
                "SELECT ordinal, name, data_type, nullable, description, tags, pii, masked FROM system.columns WHERE hub = '{}' AND dataset = '{}' AND table_name = '{}' ORDER BY ordinal",
                t.hub, t.dataset, t.name
            );
            if g.output == OutputFormat::Json {
                // One document: the table with its columns (no location unless it may be seen).
                let shown = serde_json::json!({
                    "table": format!("{}.{}.{}", t.hub, t.dataset, t.name),
                    "kind": t.kind,
                    "definition": t.is_view().then_some(&t.definition),
                    "location": (!t.location.is_empty()).then_some(&t.location),
                    "description": t.description,
                    "version": info.stats.version,
                    "files": info.stats.files,
                    "primary_key": t.primary_key,
                    "partition_columns": t.partition_columns,
                    "tags": t.tags,
                    "columns": output::json_rows(&session.query(&columns).await?.batches)?,
                });
                println!("{}", serde_json::to_string_pretty(&shown)?);
                return Ok(());
            }
            println!("table:       {}.{}.{}", t.hub, t.dataset, t.name);
            if !t.description.is_empty() {
                println!("description: {}", t.description);
            }
            if t.is_view() {
                println!("kind:        view");
                println!("definition:  {}", t.definition);
                return print_sql(g, session, &columns).await;
            }
            if !t.location.is_empty() {
                println!("location:    {}", t.location);
            }
            println!("version:     {}", info.stats.version);
            println!("files:       {}", info.stats.files);
            let list = |l: &[String]| {
                if l.is_empty() {
                    "-".to_string()
                } else {
                    l.join(", ")
                }
            };
            println!("primary key: {}", list(&t.primary_key));
            println!("partitions:  {}", list(&t.partition_columns));
            print_sql(g, session, &columns).await
        }
        TableCommand::Comment {
            table,
            description,
            column,
        } => {
            let t = TableRef::parse(&table)?;
            session
                .set_description(&Securable::table(&t), column.as_deref(), &description)
                .await?;
            match column {
                Some(c) => eprintln!("Described column '{t}.{c}'."),
                None => eprintln!("Described table '{t}'."),
            }
            Ok(())
        }
        TableCommand::History { table, limit } => {
            let t = TableRef::parse(&table)?;
            // Through the session first: a missing or hidden table is an error, not no rows.
            session.table(&t).await?;
            let limit = limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
            print_sql(g, session, &format!(
                "SELECT version, timestamp, operation, parameters FROM system.history WHERE hub = '{}' AND dataset = '{}' AND table_name = '{}' ORDER BY version DESC{limit}",
                t.hub, t.dataset, t.table
            ))
            .await
        }
        TableCommand::Restore { table, version } => {
            let done = session.restore(&TableRef::parse(&table)?, version).await?;
            let message = format!(
                "Restored {table} to version {version} (new version {}).",
                done.version
            );
            let restored = serde_json::json!({"table": table, "restored_version": version, "version": done.version});
            super::done(g, &message, restored)
        }
    }
}
