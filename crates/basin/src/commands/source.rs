//! `basin source add|list|show|run|pause|resume|remove`.

use basin_core::TableRef;
use basin_service::{NewFilesSource, NewKafkaSource, NewPostgresSource, Schedule, Session};

use crate::cli::{Global, OutputFormat, SourceCommand};
use crate::output::print_records;

pub async fn run(g: &Global, session: &Session, cmd: SourceCommand) -> anyhow::Result<()> {
    match cmd {
        SourceCommand::Add {
            name,
            table,
            path,
            kafka,
            topic,
            postgres,
            password_env,
            password_file,
            query,
            from_table,
            key,
            watermark,
            pattern,
            format,
            every,
            cron,
            continuous,
            max_attempts,
            max_bad_rows,
        } => {
            let table = TableRef::parse(&table)?;
            let schedule = match cron {
                Some(expr) => Schedule::Cron(expr),
                None if continuous => Schedule::Continuous,
                None => Schedule::Every(every),
            };
            let source = match (path, postgres) {
                (None, None) if kafka.is_some() => {
                    session
                        .add_kafka_source(NewKafkaSource {
                            name,
                            table,
                            brokers: kafka.unwrap_or_default(),
                            topic: topic.unwrap_or_default(),
                            schedule,
                        })
                        .await?
                }
                (Some(path), _) => {
                    session
                        .add_files_source(NewFilesSource {
                            name,
                            table,
                            location: path,
                            pattern,
                            format,
                            schedule,
                            max_attempts,
                            max_bad_rows,
                        })
                        .await?
                }
                (None, Some(url)) => {
                    let query = match (query, from_table) {
                        (Some(q), _) => q,
                        (None, Some(t)) => format!("SELECT * FROM {t}"),
                        (None, None) => String::new(),
                    };
                    session
                        .add_postgres_source(NewPostgresSource {
                            name,
                            table,
                            url,
                            password_env,
                            password_file,
                            query,
                            key,
                            watermark,
                            schedule,
                        })
                        .await?
                }
                (None, None) => {
                    anyhow::bail!("give --path (files), --postgres URL or --kafka BROKERS")
                }
            };
            let message = format!(
                "Created source '{}': {} into {}, {}, as {}.",
                source.name,
                reads(&source),
                source.table,
                when(&source),
                source.owner
            );
            super::done(g, &message, &source)
        }
        SourceCommand::List => {
            let sources = session.sources().await?;
            print_records(
                g.output,
                &["name", "kind", "table", "every_secs", "owner", "paused"],
                &sources,
            )
        }
        SourceCommand::Show { name } => {
            let status = session.source(&name).await?;
            if g.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            let s = &status.source;
            println!(
                "source:   {} ({}){}",
                s.name,
                s.kind,
                if s.paused { ", paused" } else { "" }
            );
            println!("table:    {}", s.table);
            println!("reads:    {}", reads(s));
            println!("runs:     {} as {}", when(s), s.owner);
            if s.kind == "files" {
                println!(
                    "files:    {} loaded, {} failed",
                    status.files_loaded, status.files_failed
                );
            }
            if let Some(offsets) = s.state.get("offsets").and_then(|o| o.as_object()) {
                let list: Vec<String> = offsets
                    .iter()
                    .map(|(p, o)| format!("partition {p} at {o}"))
                    .collect();
                println!("read up:  {}", list.join(", "));
            }
            if let Some(w) = s.state.get("watermark").and_then(|w| w.as_str()) {
                let column = s.setting("watermark").unwrap_or_default();
                println!("read up:  {column} = {w}");
            }
            for f in &status.failures {
                println!("  failed: {} ({} tries): {}", f.path, f.attempts, f.error);
            }
            match status.last_runs.first() {
                Some(r) => println!(
                    "last run: {} ({}) {}: {} files, {} rows, {} failed, lag {} ms{}",
                    r.started_at,
                    r.trigger,
                    r.outcome,
                    r.files,
                    r.rows,
                    r.failed_files,
                    r.lag_ms,
                    if r.error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.error)
                    }
                ),
                None => println!("last run: none yet"),
            }
            Ok(())
        }
        SourceCommand::Run { name } => {
            let hub = super::open(g).await?;
            let run = session.run_source(&hub, &name).await?;
            let message = format!(
                "Source '{name}' ran ({}): {} files loaded ({} rows), {} failed{}.",
                run.outcome,
                run.files,
                run.rows,
                run.failed_files,
                if run.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", run.error)
                }
            );
            super::done(g, &message, &run)?;
            if run.outcome == "error" {
                anyhow::bail!("source '{name}' failed: {}", run.error);
            }
            Ok(())
        }
        SourceCommand::Pause { name } => {
            session.pause_source(&name, true).await?;
            super::done(
                g,
                &format!("Paused source '{name}'."),
                serde_json::json!({"paused": name}),
            )
        }
        SourceCommand::Resume { name } => {
            session.pause_source(&name, false).await?;
            super::done(
                g,
                &format!("Resumed source '{name}'."),
                serde_json::json!({"resumed": name}),
            )
        }
        SourceCommand::Remove { name } => {
            session.remove_source(&name).await?;
            super::done(
                g,
                &format!("Removed source '{name}'."),
                serde_json::json!({"removed": name}),
            )
        }
    }
}

/// What a source reads, in words.
fn reads(s: &basin_catalog::Source) -> String {
    let text = |k: &str| s.setting(k).unwrap_or_default().to_string();
    match s.kind.as_str() {
        "postgres" => match s.setting("watermark") {
            Some(w) => format!(
                "{} from {} (rows past the last {w}, upserted)",
                text("query"),
                text("url")
            ),
            None => format!(
                "{} from {} (a snapshot each run)",
                text("query"),
                text("url")
            ),
        },
        "kafka" => format!(
            "the JSON records of topic {} at {}",
            text("topic"),
            s.config["brokers"]
                .as_array()
                .map(|b| b
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default()
        ),
        _ => format!(
            "files under {} matching {}",
            text("location"),
            text("pattern")
        ),
    }
}

/// When a source runs, in words.
fn when(s: &basin_catalog::Source) -> String {
    match &s.cron {
        Some(expr) => format!("at '{expr}' (cron, UTC)"),
        None if s.every_secs == 0 => "continuously".into(),
        None => format!("every {} s", s.every_secs),
    }
}
