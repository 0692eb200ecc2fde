//! `basin plan DIR`, `basin apply DIR` and `basin model list|run|status`.

use std::path::Path;

use basin_catalog::ModelRun;
use basin_core::TableRef;
use basin_service::{Project, Session};

use crate::cli::{Global, ModelCommand, OutputFormat};
use crate::output::print_records;

pub async fn plan(
    _g: &Global,
    session: &Session,
    dir: &Path,
    hub: Option<String>,
) -> anyhow::Result<()> {
    let plan = session
        .plan_project(&Project::read(dir)?, hub.as_deref())
        .await?;
    print!("{plan}");
    Ok(())
}

pub async fn apply(
    g: &Global,
    session: &Session,
    dir: &Path,
    hub: Option<String>,
) -> anyhow::Result<()> {
    let applied = session
        .apply_project(&Project::read(dir)?, hub.as_deref())
        .await?;
    if g.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&applied.runs)?);
    } else {
        print!("{}", applied.plan);
        for r in &applied.runs {
            println!("{}", describe(r));
        }
    }
    if let Some(failed) = applied.runs.iter().find(|r| r.status == "failed") {
        anyhow::bail!("model {} failed: {}", failed.model, failed.error);
    }
    Ok(())
}

pub async fn run(g: &Global, session: &Session, cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::List => {
            let models = session.models().await?;
            let rows: Vec<serde_json::Value> = models
                .iter()
                .map(|(m, runs)| {
                    let last = runs.first();
                    serde_json::json!({
                        "model": m.table.to_string(),
                        "materialized": m.spec["materialized"],
                        "project": m.project,
                        "owner": m.owner,
                        "last_run": last.map(|r| r.status.as_str()).unwrap_or("never"),
                        "version": last.map(|r| r.version),
                    })
                })
                .collect();
            print_records(
                g.output,
                &[
                    "model",
                    "materialized",
                    "project",
                    "owner",
                    "last_run",
                    "version",
                ],
                &rows,
            )
        }
        ModelCommand::Run {
            name,
            downstream,
            full,
        } => {
            let hub = super::open(g).await?;
            let runs = session
                .run_model(&hub, &TableRef::parse(&name)?, downstream, full)
                .await?;
            if g.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                for r in &runs {
                    println!("{}", describe(r));
                }
            }
            if let Some(failed) = runs.iter().find(|r| r.status == "failed") {
                anyhow::bail!("model {} failed: {}", failed.model, failed.error);
            }
            Ok(())
        }
        ModelCommand::Status { name } => {
            let wanted = name.map(|n| TableRef::parse(&n)).transpose()?;
            let models = session.models().await?;
            if let Some(w) = &wanted
                && !models.iter().any(|(m, _)| &m.table == w)
            {
                anyhow::bail!("model {w} not found; see `basin model list`");
            }
            let runs: Vec<ModelRun> = models
                .into_iter()
                .filter(|(m, _)| wanted.as_ref().is_none_or(|w| w == &m.table))
                .flat_map(|(_, last)| last)
                .collect();
            if g.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            for r in &runs {
                println!("{}  {}", r.started_at, describe(r));
                for c in r.checks.as_array().into_iter().flatten() {
                    let passed = c["passed"].as_bool().unwrap_or(false);
                    let mut line = format!(
                        "    {} {}",
                        if passed { "pass" } else { "FAIL" },
                        c["check"].as_str().unwrap_or_default()
                    );
                    if let Some(e) = c["error"].as_str() {
                        line.push_str(&format!(" (could not run: {e})"));
                    } else if !passed {
                        line.push_str(&format!(
                            " — {} failing, e.g. {}",
                            c["failing"], c["sample"]
                        ));
                    }
                    println!("{line}");
                }
            }
            Ok(())
        }
    }
}

/// One run in words.
fn describe(r: &ModelRun) -> String {
    let mut s = format!(
        "{} {} ({}): {} rows",
        r.model, r.status, r.trigger, r.rows_out
    );
    if r.version >= 0 {
        s.push_str(&format!(", version {}", r.version));
    }
    if !r.refresh.is_empty() {
        s.push_str(&format!("; {}", r.refresh));
    }
    if !r.error.is_empty() {
        s.push_str(&format!(" — {}", r.error));
    }
    s
}
