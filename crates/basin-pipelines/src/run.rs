//! One run of a model, as its owner: the query's rows are staged in a local Arrow file, the
//! checks run on them, and only when no `error` check fails do they reach the target through the
//! one write path (write–audit–publish). A failed run leaves the target at its version.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use basin_core::TableRef;
use basin_sql::Engine;
use basin_tables::{NewTableSpec, Write};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::checks::{CheckKind, CheckOutcome, SAMPLE_ROWS, Severity};
use crate::incremental::{self, Refresh};
use crate::project::{Materialized, ModelSpec};
use crate::{PipelineError, Result};

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// `ok`, `warned` (a `warn` check failed; committed) or `failed` (nothing committed).
    pub status: String,
    pub rows_out: u64,
    /// The target's new version (-1: none, e.g. a view or a failed run).
    pub version: i64,
    pub checks: Vec<CheckOutcome>,
    pub error: String,
    /// How the table was built: `full: <why>`, `incremental: …`, `up to date` (empty for
    /// views, appends and tables, which always run in full).
    pub refresh: String,
}

fn failed(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Run(e.to_string())
}

/// Runs the model `spec` building `target` as `engine`'s principal; `full` rebuilds an
/// incremental model in full.
pub async fn run_model(
    engine: &Engine,
    target: &TableRef,
    spec: &ModelSpec,
    full: bool,
) -> RunOutcome {
    match run(engine, target, spec, full).await {
        Ok(outcome) => outcome,
        Err(e) => RunOutcome {
            status: "failed".into(),
            version: -1,
            error: e.to_string(),
            ..Default::default()
        },
    }
}

async fn run(
    engine: &Engine,
    target: &TableRef,
    spec: &ModelSpec,
    full: bool,
) -> Result<RunOutcome> {
    let view = format!("CREATE OR REPLACE VIEW {target} AS {}", spec.query);
    if spec.materialized == Materialized::View && spec.checks.is_empty() {
        engine.execute(&view).await?;
        return Ok(ok(0, -1, Vec::new(), String::new()));
    }
    let refresh = match spec.materialized {
        Materialized::Incremental => incremental::refresh(engine, target, spec, full).await?,
        _ => Refresh::Plain,
    };
    if let Refresh::UpToDate = refresh {
        return Ok(ok(0, -1, Vec::new(), refresh.describe()));
    }
    let scratch = tempfile::tempdir().map_err(failed)?;
    let staged = scratch.path().join("staged.arrow");
    let rows = stage(engine.stream(&refresh.query(spec)?).await?, &staged).await?;
    // The checks read `staged`, the table as it will be: the rows the run writes and, for an
    // incremental run, the rows it keeps.
    let ctx = SessionContext::new();
    register(&ctx, "basin_rows", &staged).await?;
    let staged_sql = match &refresh {
        Refresh::Keys { predicate, .. } if !spec.checks.is_empty() => {
            let kept = scratch.path().join("kept.arrow");
            let sql = format!("SELECT * FROM {target} WHERE ({predicate}) IS NOT TRUE");
            stage(engine.stream(&sql).await?, &kept).await?;
            register(&ctx, "basin_kept", &kept).await?;
            "SELECT * FROM basin_kept UNION ALL SELECT * FROM basin_rows"
        }
        _ => "SELECT * FROM basin_rows",
    };
    ctx.sql(&format!("CREATE VIEW staged AS {staged_sql}"))
        .await
        .map_err(failed)?;
    let staged_rows = || async { ctx.table("basin_rows").await?.execute_stream().await };
    let mut checks = Vec::new();
    for check in &spec.checks {
        checks.push(run_check(engine, &ctx, target, check).await);
    }
    let blocking: Vec<&CheckOutcome> = checks
        .iter()
        .filter(|c| !c.passed && c.severity == Severity::Error)
        .collect();
    if !blocking.is_empty() {
        let why = blocking
            .iter()
            .map(|c| match &c.error {
                Some(e) => format!("'{}' could not run: {e}", c.check),
                None => format!("'{}' failed ({} failing)", c.check, c.failing),
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(RunOutcome {
            status: "failed".into(),
            rows_out: rows,
            version: -1,
            error: match spec.materialized {
                Materialized::Audit => format!("the checks failed: {why}"),
                _ => format!("not committed: {why}; {target} keeps its version"),
            },
            checks,
            refresh: refresh.describe(),
        });
    }
    let version = match (spec.materialized, &spec.export) {
        (Materialized::View, _) => {
            engine.execute(&view).await?;
            -1
        }
        (Materialized::Audit, _) => {
            return Ok(ok(rows, -1, checks, format!("audited {rows} rows")));
        }
        (Materialized::Export, Some(target)) => {
            let rows = ctx.table("basin_rows").await.map_err(failed)?;
            let done = basin_sql::export::export(engine, rows, target).await?;
            let refresh = format!(
                "exported {} rows in {} files to {}",
                done.rows, done.files, done.location
            );
            return Ok(ok(done.rows, -1, checks, refresh));
        }
        _ => {
            let rows = staged_rows().await.map_err(failed)?;
            commit(engine, target, spec, &refresh, rows).await?
        }
    };
    Ok(ok(rows, version, checks, refresh.describe()))
}

fn ok(rows: u64, version: i64, checks: Vec<CheckOutcome>, refresh: String) -> RunOutcome {
    let warned = checks.iter().any(|c| !c.passed);
    RunOutcome {
        status: if warned { "warned" } else { "ok" }.into(),
        rows_out: rows,
        version,
        checks,
        error: String::new(),
        refresh,
    }
}

/// Makes the Arrow file at `path` the table `name` of `ctx`.
async fn register(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    ctx.register_arrow(
        name,
        &path.display().to_string(),
        ArrowReadOptions::default(),
    )
    .await
    .map_err(failed)
}

/// Writes the query's rows to an Arrow file (bounded memory: batch by batch); their count.
async fn stage(mut rows: SendableRecordBatchStream, path: &Path) -> Result<u64> {
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(file, &rows.schema()).map_err(failed)?;
    let mut count = 0;
    while let Some(batch) = rows.try_next().await.map_err(failed)? {
        count += batch.num_rows() as u64;
        writer.write(&batch).map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    Ok(count)
}

/// The staged rows into the target: replacing it (table, incremental in full), replacing the
/// rows of the recomputed keys (incremental), added (append), or a new table.
async fn commit(
    engine: &Engine,
    target: &TableRef,
    spec: &ModelSpec,
    refresh: &Refresh,
    rows: SendableRecordBatchStream,
) -> Result<i64> {
    let actor = engine.actor();
    let tables = engine.tables();
    let transactions = refresh.transactions();
    let done = match (engine.catalog().table(target).await?, refresh) {
        (Some(_), Refresh::Keys { predicate, .. }) => {
            let write = Write::Overwrite {
                rows,
                predicate: Some(predicate.clone()),
                load_id: None,
                operation: "model incremental",
                transactions,
            };
            tables.commit(&actor, target, write).await?
        }
        (Some(entry), _) if spec.materialized != Materialized::Append => {
            let write = Write::Replace {
                rows,
                primary_key: entry.primary_key,
                partition_columns: entry.partition_columns,
                transactions,
                operation: "model",
            };
            tables.commit(&actor, target, write).await?
        }
        (Some(_), _) => {
            let write = Write::Append {
                rows,
                load_id: None,
                operation: "model append",
                within_row_filter: false,
                transaction: None,
            };
            tables.commit(&actor, target, write).await?
        }
        (None, _) => {
            let new = NewTableSpec {
                table: target.clone(),
                schema: None,
                primary_key: Vec::new(),
                partition_columns: Vec::new(),
                description: spec.description.clone(),
                load_id: None,
                operation: "model",
                transactions,
            };
            tables.create(&actor, new, Some(rows)).await?
        }
    };
    Ok(done.version)
}

async fn run_check(
    engine: &Engine,
    ctx: &SessionContext,
    target: &TableRef,
    check: &crate::Check,
) -> CheckOutcome {
    let mut outcome = CheckOutcome {
        check: check.describe(),
        severity: check.severity,
        passed: false,
        failing: 0,
        sample: Vec::new(),
        error: None,
    };
    match failing_rows(engine, ctx, target, check).await {
        Ok((failing, sample)) => {
            outcome.passed = failing == 0;
            outcome.failing = failing;
            outcome.sample = sample;
        }
        Err(e) => outcome.error = Some(e.to_string()),
    }
    outcome
}

/// How many rows fail the check, and a sample of them.
async fn failing_rows(
    engine: &Engine,
    ctx: &SessionContext,
    target: &TableRef,
    check: &crate::Check,
) -> Result<(u64, Vec<serde_json::Value>)> {
    if let CheckKind::Relationships { to, to_column, .. } = &check.kind {
        // The referenced keys, read as the model's owner (under its grants).
        let table = match to.split('.').count() {
            2 => TableRef::parse(&format!("{}.{to}", target.hub))?,
            _ => TableRef::parse(to)?,
        };
        let keys = engine
            .stream(&format!("SELECT DISTINCT \"{to_column}\" FROM {table}"))
            .await?;
        let schema = keys.schema();
        let batches: Vec<RecordBatch> = keys.try_collect().await.map_err(failed)?;
        let reference = MemTable::try_new(schema, vec![batches]).map_err(failed)?;
        ctx.deregister_table("reference").map_err(failed)?;
        ctx.register_table("reference", std::sync::Arc::new(reference))
            .map_err(failed)?;
    }
    let query = check.failing_query();
    let count = read_only(ctx, &format!("SELECT count(*) AS n FROM ({query}) AS f")).await?;
    let failing = count
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
        .max(0) as u64;
    if failing == 0 {
        return Ok((0, Vec::new()));
    }
    let sample = read_only(
        ctx,
        &format!("SELECT * FROM ({query}) AS f LIMIT {SAMPLE_ROWS}"),
    )
    .await?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = sample.iter().collect();
    writer.write_batches(&refs).map_err(failed)?;
    writer.finish().map_err(failed)?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&writer.into_inner()).unwrap_or_default();
    // row_count and freshness answer one row with the offending figure.
    let failing = match check.kind {
        CheckKind::RowCount { .. } | CheckKind::Freshness { .. } => 1,
        _ => failing,
    };
    Ok((failing, rows))
}

/// The rows of a check's query: it only reads (no DDL — an external table over a server
/// file —, no DML, no statements).
async fn read_only(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    basin_sql::check_syntax(sql).map_err(failed)?;
    ctx.sql_with_options(sql, options)
        .await
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)
}
