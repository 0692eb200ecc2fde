//! `basin table show|comment|history|restore|optimize|vacuum|maintenance|stream`.

use basin_catalog::access::Securable;
use basin_core::TableRef;
use std::time::Duration;

use basin_service::{OptimizeOptions, Session};

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
        TableCommand::Optimize {
            table,
            target_file_mib,
            zorder,
        } => {
            let options = OptimizeOptions {
                target_file_bytes: target_file_mib.map(|m| m.saturating_mul(1 << 20)),
                zorder,
            };
            let run = session
                .optimize_table(&TableRef::parse(&table)?, &options)
                .await?;
            let message = format!(
                "Optimized {}: {} files -> {} ({} rewritten; version {}).",
                run.table,
                run.files_before,
                run.files_after,
                basin_core::human_bytes(run.bytes_rewritten),
                run.version
            );
            super::done(g, &message, run_json(&run))
        }
        TableCommand::Vacuum {
            table,
            retain_hours,
        } => {
            let retention = retain_hours.map(|h| Duration::from_secs(h.saturating_mul(3600)));
            let run = session
                .vacuum_table(&TableRef::parse(&table)?, retention)
                .await?;
            let message = format!(
                "Vacuumed {}: {} files removed (version {}).",
                run.table, run.files_deleted, run.version
            );
            super::done(g, &message, run_json(&run))
        }
        TableCommand::Stream {
            table,
            max_age_ms,
            max_mib,
            unknown_fields,
            partition_time_field,
        } => {
            stream_settings(
                g,
                session,
                &table,
                max_age_ms,
                max_mib,
                unknown_fields,
                partition_time_field,
            )
            .await
        }
        TableCommand::Maintenance {
            table,
            auto,
            min_files,
            target_file_mib,
            retain_hours,
            zorder,
        } => {
            let t = TableRef::parse(&table)?;
            let mut policy = session.maintenance_policy(&t).await?;
            let changed = auto.is_some()
                || min_files.is_some()
                || target_file_mib.is_some()
                || retain_hours.is_some()
                || zorder.is_some();
            policy.auto = auto.unwrap_or(policy.auto);
            policy.min_files = min_files.unwrap_or(policy.min_files);
            policy.target_file_bytes =
                target_file_mib.map_or(policy.target_file_bytes, |m| m.saturating_mul(1 << 20));
            policy.retention_hours = retain_hours.unwrap_or(policy.retention_hours);
            if let Some(z) = zorder {
                policy.zorder = z.into_iter().filter(|c| !c.is_empty()).collect();
            }
            if changed {
                session.set_maintenance_policy(&t, &policy).await?;
            }
            let message = format!(
                "{t}: auto {}, compact at {} small files into {}, keep {} hours of versions{}.",
                if policy.auto { "on" } else { "off" },
                policy.min_files,
                basin_core::human_bytes(policy.target_file_bytes),
                policy.retention_hours,
                if policy.zorder.is_empty() {
                    String::new()
                } else {
                    format!(", Z-order by {}", policy.zorder.join(", "))
                }
            );
            super::done(g, &message, serde_json::to_value(&policy)?)
        }
    }
}

/// `basin table stream`: shows, or sets, a table's stream settings.
async fn stream_settings(
    g: &Global,
    session: &Session,
    table: &str,
    max_age_ms: Option<u64>,
    max_mib: Option<u64>,
    unknown_fields: Option<String>,
    partition_time_field: Option<String>,
) -> anyhow::Result<()> {
    let t = TableRef::parse(table)?;
    let mut s = session.stream_settings(&t).await?;
    let changed = max_age_ms.is_some()
        || max_mib.is_some()
        || unknown_fields.is_some()
        || partition_time_field.is_some();
    s.max_age_ms = max_age_ms.unwrap_or(s.max_age_ms);
    s.max_bytes = max_mib.map_or(s.max_bytes, |m| m.saturating_mul(1 << 20));
    if let Some(u) = unknown_fields {
        s.unknown_fields = basin_catalog::UnknownFields::parse(&u)?;
    }
    if let Some(f) = partition_time_field {
        s.partition_time_field = Some(f).filter(|f| !f.is_empty());
    }
    if changed {
        session.set_stream_settings(&t, &s).await?;
    }
    let message = format!(
        "{t}: commit buffered records within {} ms or at {}, unknown fields: {}{}.",
        s.max_age_ms,
        basin_core::human_bytes(s.max_bytes),
        s.unknown_fields.as_str(),
        s.partition_time_field
            .as_deref()
            .map(|f| format!(", time partitions from '{f}'"))
            .unwrap_or_default()
    );
    super::done(g, &message, serde_json::to_value(&s)?)
}

fn run_json(r: &basin_catalog::MaintenanceRun) -> serde_json::Value {
    serde_json::json!({
        "table": r.table.to_string(),
        "operation": r.operation,
        "version": r.version,
        "files_before": r.files_before,
        "files_after": r.files_after,
        "bytes_rewritten": r.bytes_rewritten,
        "files_deleted": r.files_deleted,
        "duration_ms": r.duration_ms,
    })
}
