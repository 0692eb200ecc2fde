//! `basin ingest`: files into a table, in one commit, with a progress bar.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use basin_core::TableRef;
use basin_ingest::{CsvOptions, LoadMode, LoadReport, LoadRequest, Progress, ReadOptions};
use basin_service::Session;

use crate::cli::{IngestArgs, IngestMode};

pub async fn run(
    session: &Session,
    args: IngestArgs,
    show_progress: bool,
) -> anyhow::Result<LoadReport> {
    let table = TableRef::parse(&args.table)?;
    let delimiter = one_byte("--delimiter", &args.delimiter.replace("\\t", "\t"))?;
    let quote = one_byte("--quote", &args.quote)?;
    let read = ReadOptions {
        format: args.format.as_deref().map(str::parse).transpose()?,
        csv: CsvOptions {
            delimiter,
            quote,
            has_header: !args.no_header,
            null_marker: args.null,
        },
        schema: args
            .schema
            .as_deref()
            .map(basin_ingest::parse_schema)
            .transpose()?,
        infer_rows: args.infer_rows.max(1),
        ..ReadOptions::default()
    };
    let mode = match (args.mode, args.predicate) {
        (IngestMode::Append, None) => LoadMode::Append,
        (IngestMode::Overwrite, p) => LoadMode::Overwrite(p),
        (IngestMode::Upsert, None) => LoadMode::Upsert,
        (_, Some(_)) => bail!("--where only applies to --mode overwrite"),
    };
    let request = LoadRequest {
        table: Some(table),
        inputs: args.inputs,
        read,
        mode,
        key: args.key,
        partition_by: args.partition_by,
        max_bad_rows: args.max_bad_rows,
        load_id: args.load_id.clone(),
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let bar = show_progress.then(|| tokio::spawn(progress_bar(progress.clone())));
    let result = session.load(request, progress).await;
    if let Some(bar) = bar {
        bar.abort();
        let _ = bar.await;
    }
    let report = result?;
    if report.skipped {
        eprintln!(
            "Load '{}' was committed before; nothing to do ({} is at version {}).",
            args.load_id.as_deref().unwrap_or_default(),
            report.table,
            report.version
        );
    } else {
        eprintln!(
            "Loaded {} row(s) from {} file(s) ({}) into {} (version {}{}).",
            report.rows,
            report.files,
            basin_core::human_bytes(report.bytes),
            report.table,
            report.version,
            if report.created { ", new table" } else { "" }
        );
        if let Some(q) = &report.quarantine {
            eprintln!("{} bad row(s) went to {q}.", report.bad_rows);
        }
        if !report.added_columns.is_empty() {
            eprintln!("New column(s): {}.", report.added_columns.join(", "));
        }
        if !report.widened_columns.is_empty() {
            eprintln!("Widened column(s): {}.", report.widened_columns.join(", "));
        }
    }
    Ok(report)
}

fn one_byte(flag: &str, s: &str) -> anyhow::Result<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("{flag} must be a single ASCII character, not '{s}'"),
    }
}
async fn progress_bar(progress: Arc<Progress>) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let total = progress.total_bytes.load(Ordering::Relaxed);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    loop {
        let rows = progress.rows.load(Ordering::Relaxed);
        let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_position(progress.bytes.load(Ordering::Relaxed));
        bar.set_message(format!("{rows} rows ({rate:.0} rows/s)"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
