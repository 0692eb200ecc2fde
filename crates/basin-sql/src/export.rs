//! Export (the "unload" step): `COPY (query) TO 'path' [(FORMAT parquet|csv, PARTITION_BY (a,
//! b))]` writes a query's rows — read as the principal reads them, so masked data stays masked —
//! as files under the principal's own folder of the server's export location
//! (`<data-dir>/exports/<principal>/` by default, or `s3://bucket/prefix/<principal>/`), so that
//! no principal replaces another's exports.
//!
//! An export replaces the whole target, or with `PARTITION_BY` each partition folder it writes
//! (`year=2026/month=11/`), whose other partitions stay as they were; each folder gets one file.
//! Readers never see half an export. In a local folder the files are written to a hidden
//! staging folder beside the target and moved into place by renames. In an object store, where
//! nothing renames, each folder's file is uploaded whole under a fixed name (`data.parquet`),
//! replacing the old one in one step, and only then are the folder's other objects deleted.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::dialect::{BasinDialect, bounded_parser};
use crate::engine::{Engine, QueryOutput};
use crate::{Result, SqlError};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_lowercase().as_str() {
            "parquet" => Ok(ExportFormat::Parquet),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(SqlError::Invalid(format!(
                "export format '{other}' is not known: use parquet or csv"
            ))),
        }
    }
}

/// Where and how an export writes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportTarget {
    /// A folder relative to the export folder, e.g. `products` or `sales/daily`.
    pub path: String,
    pub format: ExportFormat,
    /// Columns whose values name the partition folders (`year=2026/month=11/`).
    pub partition_by: Vec<String>,
}

/// Where a server's exports go.
#[derive(Clone)]
pub enum ExportRoot {
    Folder(PathBuf),
    /// An object-store prefix, reached with the server's `AWS_*` environment.
    Store {
        /// `s3://bucket/prefix`, as shown.
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

impl ExportRoot {
    /// A local folder, or an `s3://bucket[/prefix]` URL.
    pub fn parse(location: &str) -> Result<ExportRoot> {
        if !location.contains("://") {
            return Ok(ExportRoot::Folder(PathBuf::from(location)));
        }
        let invalid = |why: &dyn std::fmt::Display| {
            SqlError::Invalid(format!(
                "export location '{location}': {why} (give a folder or an s3://bucket/prefix URL)"
            ))
        };
        let basin_lake::S3Prefix { store, prefix, url } =
            basin_lake::S3Prefix::parse(location).map_err(|e| invalid(&e))?;
        let url = url.trim_end_matches('/').to_string();
        Ok(ExportRoot::Store { url, store, prefix })
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub rows: u64,
    pub files: u64,
    /// Where: relative to a local export folder (`<principal>/<path>`), or a URL.
    pub location: String,
}

/// Whether the statement is a `COPY`.
pub(crate) fn is_copy(sql: &str) -> bool {
    let dialect = BasinDialect::default();
    let Ok(tokens) =
        datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&dialect, sql).tokenize()
    else {
        return false;
    };
    tokens
        .iter()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| matches!(t, Token::Word(w) if w.keyword == Keyword::COPY))
}

const USAGE: &str =
    "write COPY (SELECT …) TO 'folder' [(FORMAT parquet|csv, PARTITION_BY (column, …))]";

/// `COPY (query) TO 'path' [(FORMAT …, PARTITION_BY (…))]`.
fn parse(sql: &str) -> Result<(Statement, ExportTarget)> {
    let dialect = BasinDialect::default();
    let bad = |e: &dyn std::fmt::Display| SqlError::Parse(format!("{e}; {USAGE}"));
    let mut p = bounded_parser(&dialect, sql).map_err(|e| bad(&e))?;
    p.expect_keyword(Keyword::COPY).map_err(|e| bad(&e))?;
    if !p.consume_token(&Token::LParen) {
        return Err(SqlError::Unsupported(format!(
            "COPY exports a query's rows: {USAGE} (COPY FROM is not supported: load files with `basin ingest`)"
        )));
    }
    let query = p.parse_query().map_err(|e| bad(&dialect.explain(e)))?;
    p.expect_token(&Token::RParen).map_err(|e| bad(&e))?;
    p.expect_keyword(Keyword::TO).map_err(|e| bad(&e))?;
    let path = p.parse_literal_string().map_err(|e| bad(&e))?;
    let mut target = ExportTarget {
        path,
        format: ExportFormat::Parquet,
        partition_by: Vec::new(),
    };
    if p.consume_token(&Token::LParen) {
        loop {
            let option = p
                .parse_identifier()
                .map_err(|e| bad(&e))?
                .value
                .to_uppercase();
            match option.as_str() {
                "FORMAT" => {
                    let f = p.parse_identifier().map_err(|e| bad(&e))?;
                    target.format = ExportFormat::parse(&f.value)?;
                }
                "PARTITION_BY" => {
                    p.expect_token(&Token::LParen).map_err(|e| bad(&e))?;
                    let columns = p
                        .parse_comma_separated(|p| p.parse_identifier())
                        .map_err(|e| bad(&e))?;
                    p.expect_token(&Token::RParen).map_err(|e| bad(&e))?;
                    target.partition_by = columns.into_iter().map(|c| c.value).collect();
                }
                other => {
                    return Err(SqlError::Invalid(format!(
                        "COPY option '{other}' is not known: use FORMAT and PARTITION_BY; {USAGE}"
                    )));
                }
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(|e| bad(&e))?;
    }
    let _ = p.consume_token(&Token::SemiColon);
    if p.peek_token().token != Token::EOF {
        return Err(bad(&format!(
            "unexpected '{}' after the COPY",
            p.peek_token()
        )));
    }
    Ok((Statement::Query(query), target))
}

/// Runs a `COPY … TO` statement as the engine's principal.
pub(crate) async fn run(engine: &Engine, sql: &str) -> Result<QueryOutput> {
    let (mut statement, target) = parse(sql)?;
    crate::principal_sql::bind_statement(&mut statement, engine.principal())?;
    let rows = engine.plan(statement).await?;
    let done = export(engine, rows, &target).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("operation", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("location", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["export"])),
            Arc::new(Int64Array::from(vec![done.rows as i64])),
            Arc::new(Int64Array::from(vec![done.files as i64])),
            Arc::new(StringArray::from(vec![done.location])),
        ],
    )
    .map_err(|e| SqlError::Query(e.to_string()))?;
    Ok(QueryOutput {
        schema,
        batches: vec![batch],
    })
}

/// The folder `path` names inside the export folder: relative, without `..`, hidden names or
/// the characters of a file pattern.
fn resolve(path: &str) -> Result<PathBuf> {
    let relative = Path::new(path.trim_end_matches('/'));
    let plain = relative.components().all(|c| {
        matches!(c, Component::Normal(s) if {
            let s = s.to_string_lossy();
            !s.starts_with('.') && !s.contains(['*', '?', '[', ']', '{', '}', '\\'])
        })
    });
    if path.trim().is_empty() || !plain {
        return Err(SqlError::Invalid(format!(
            "export target '{path}': name a folder inside the export folder, such as 'products' or 'sales/daily' (no absolute path, no '..', no hidden names, no * ? [ ] {{ }})"
        )));
    }
    Ok(relative.to_path_buf())
}

/// Writes `rows` to `target` under the engine's export location, atomically (see the module).
pub async fn export(engine: &Engine, rows: DataFrame, target: &ExportTarget) -> Result<Exported> {
    let root = engine.export_root().ok_or_else(|| {
        SqlError::Unsupported("this engine has no export folder (exports run in a hub)".into())
    })?;
    // Each principal exports into a folder of its own (names are plain identifiers).
    let owner = engine
        .principal()
        .map_or(crate::OPERATOR.to_string(), |p| p.name.clone());
    let relative = Path::new(&owner).join(resolve(&target.path)?);
    let schema = rows.schema().clone();
    if let Some(c) = target
        .partition_by
        .iter()
        .find(|c| schema.field_with_unqualified_name(c).is_err())
    {
        return Err(SqlError::Invalid(format!(
            "PARTITION_BY column '{c}' is not a column of the exported query"
        )));
    }
    let rows = one_file_per_folder(rows);
    let partitioned = !target.partition_by.is_empty();
    match root {
        ExportRoot::Folder(root) => {
            if root
                .to_string_lossy()
                .contains(['*', '?', '[', ']', '{', '}'])
            {
                return Err(SqlError::Unsupported(format!(
                    "the export folder {} has a file-pattern character in its path; move the data directory",
                    root.display()
                )));
            }
            let location = root.join(&relative);
            let parent = location.parent().unwrap_or(root);
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            // Removed when dropped, whether the export lands or fails.
            let staging = hidden_folder(parent, ".basin-export-")?;
            let rows = write(rows, staging.path(), target).await?;
            let files = publish(staging.path(), &location, partitioned)?;
            Ok(Exported {
                rows,
                files,
                location: relative.display().to_string(),
            })
        }
        ExportRoot::Store { url, store, prefix } => {
            let staging = tempfile::Builder::new()
                .prefix("basin-export-")
                .tempdir()
                .map_err(|e| io(&std::env::temp_dir(), e))?;
            let rows = write(rows, staging.path(), target).await?;
            let to = object_path(prefix, &relative).map_err(SqlError::Invalid)?;
            let files = upload(store, staging.path(), &to, partitioned)
                .await
                .map_err(|e| {
                    SqlError::Query(format!("export to {url}/{}: {e}", to_url(&relative)))
                })?;
            Ok(Exported {
                rows,
                files,
                location: format!("{url}/{}", to_url(&relative)),
            })
        }
    }
}

/// The same rows, written as one file per folder, so that a folder's file can replace the old
/// one in one step.
fn one_file_per_folder(rows: DataFrame) -> DataFrame {
    use datafusion::config::ConfigNonZeroUsize;
    let (state, plan) = rows.into_parts();
    let mut config = state.config().clone();
    let execution = &mut config.options_mut().execution;
    execution.minimum_parallel_output_files = ConfigNonZeroUsize::try_new(1).expect("not zero");
    execution.soft_max_rows_per_output_file =
        ConfigNonZeroUsize::try_new(usize::MAX).expect("not zero");
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    DataFrame::new(state, plan)
}

/// A relative folder as `/`-separated text.
fn to_url(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `relative` under `prefix` in an object store, its names as they are (partition folders are
/// already encoded by the writer, as on a local disk).
fn object_path(prefix: &ObjectPath, relative: &Path) -> std::result::Result<ObjectPath, String> {
    let under = to_url(relative);
    let key = match prefix.as_ref() {
        "" => under,
        p => format!("{p}/{under}"),
    };
    ObjectPath::parse(&key).map_err(|e| format!("export target '{key}': {e}"))
}

/// Why the object store refused or failed, without its answer's body (which can repeat the
/// request, access key id included).
fn store_failure(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let denied = [
        "403",
        "Forbidden",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    ];
    if denied.iter().any(|s| text.contains(s)) {
        "access denied: check the server's AWS_* keys and the bucket's permissions".into()
    } else if text.contains("NoSuchBucket") || text.contains("404") {
        "the bucket or prefix does not exist".into()
    } else if text.contains("connect") || text.contains("timed out") {
        "the object store cannot be reached: check AWS_ENDPOINT_URL and the network".into()
    } else {
        "the object store failed the request; the export did not land".into()
    }
}

/// Uploads the staged files under `to`: each folder written (the whole target, or each
/// partition folder) gets its file under a fixed name, replacing the old object in one step;
/// then the folder's other objects (an older export's) are deleted. Returns the number of files.
async fn upload(
    store: &Arc<dyn ObjectStore>,
    staging: &Path,
    to: &ObjectPath,
    partitioned: bool,
) -> std::result::Result<u64, String> {
    let mut leaves = Vec::new();
    leaf_folders(staging, &mut leaves).map_err(|e| e.to_string())?;
    if leaves.is_empty() && !partitioned {
        // No rows: the target is replaced by nothing.
        leaves.push((staging.to_path_buf(), 0));
    }
    let mut total = 0;
    for (leaf, _) in leaves {
        let folder = object_path(to, leaf.strip_prefix(staging).unwrap_or(Path::new("")))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&leaf)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut written = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let ext = file.extension().unwrap_or_default().to_string_lossy();
            let name = match files.len() {
                1 => format!("data.{ext}"),
                _ => format!("part-{i:05}.{ext}"),
            };
            let object = folder.clone().join(name.as_str());
            // Streamed in parts; the object appears when the upload completes.
            let mut from = tokio::fs::File::open(file)
                .await
                .map_err(|e| e.to_string())?;
            let mut writer = BufWriter::new(store.clone(), object.clone());
            if let Err(e) = tokio::io::copy(&mut from, &mut writer).await {
                // No part upload is left behind.
                let _ = writer.abort().await;
                return Err(store_failure(&e));
            }
            writer.shutdown().await.map_err(|e| store_failure(&e))?;
            written.push(object);
        }
        let stale: Vec<ObjectPath> = store
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .try_filter(|path| futures::future::ready(!written.contains(path)))
            .try_collect()
            .await
            .map_err(|e| store_failure(&e))?;
        for path in stale {
            store.delete(&path).await.map_err(|e| store_failure(&e))?;
        }
        total += files.len() as u64;
    }
    Ok(total)
}

/// A new hidden folder in `parent`, removed with what it holds when dropped.
fn hidden_folder(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))
}

async fn write(rows: DataFrame, staging: &Path, target: &ExportTarget) -> Result<u64> {
    let options = DataFrameWriteOptions::new().with_partition_by(target.partition_by.clone());
    let path = format!("{}/", staging.display());
    let counts = match target.format {
        ExportFormat::Parquet => rows.write_parquet(&path, options, None).await?,
        ExportFormat::Csv => rows.write_csv(&path, options, None).await?,
    };
    let mut total = 0;
    for batch in &counts {
        if let Some(c) = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
        {
            total += c.iter().flatten().sum::<u64>();
        }
    }
    Ok(total)
}

/// Moves the staged files into place: the whole target, or each partition folder written.
/// Returns the number of files.
fn publish(staging: &Path, location: &Path, partitioned: bool) -> Result<u64> {
    let mut leaves = Vec::new();
    leaf_folders(staging, &mut leaves).map_err(|e| io(staging, e))?;
    let files: u64 = leaves.iter().map(|(_, n)| n).sum();
    if !partitioned {
        let beside = location.parent().unwrap_or(location);
        swap(staging, location, beside)?;
        return Ok(files);
    }
    // A replaced partition goes into the staging folder (removed with it), not into the
    // target, where readers of `target/**` would see it.
    for (leaf, _) in leaves {
        let relative = leaf
            .strip_prefix(staging)
            .expect("a leaf lies in the staging folder");
        let to = location.join(relative);
        let parent = to.parent().unwrap_or(location);
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        swap(&leaf, &to, staging)?;
    }
    Ok(files)
}

/// Replaces folder `to` by folder `from` with renames (the old one moved into `graveyard`
/// first): a reader sees the old folder or the new one, never a mix.
fn swap(from: &Path, to: &Path, graveyard: &Path) -> Result<()> {
    let grave = hidden_folder(graveyard, ".basin-replaced-")?;
    let old = grave.path().join("old");
    let had = to.exists();
    if had {
        std::fs::rename(to, &old).map_err(|e| io(to, e))?;
    }
    if let Err(e) = std::fs::rename(from, to) {
        if had {
            let _ = std::fs::rename(&old, to);
        }
        return Err(io(to, e));
    }
    Ok(())
}

/// The folders under `dir` that hold files, with their number of files.
fn leaf_folders(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    let mut files = 0;
    let mut entries = Vec::new();
    if dir.exists() {
        for entry in std::fs::read_dir(dir)? {
            entries.push(entry?);
        }
    }
    for entry in entries {
        if entry.file_type()?.is_dir() {
            leaf_folders(&entry.path(), out)?;
        } else {
            files += 1;
        }
    }
    if files > 0 {
        out.push((dir.to_path_buf(), files));
    }
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> SqlError {
    SqlError::Query(format!("export to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements_parse_and_bad_ones_say_how() {
        let (q, t) =
            parse("COPY (SELECT 1 AS a) TO 'out/x' (FORMAT csv, PARTITION_BY (a, b))").unwrap();
        assert!(matches!(q, Statement::Query(_)));
        assert_eq!(t.format, ExportFormat::Csv);
        assert_eq!(t.partition_by, ["a", "b"]);
        let (_, t) = parse("copy (select 1) to 'p';").unwrap();
        assert_eq!((t.path.as_str(), t.format), ("p", ExportFormat::Parquet));
        for (sql, want) in [
            ("COPY t FROM 'x'", "COPY FROM is not supported"),
            (
                "COPY (SELECT 1) TO 'x' (FORMAT json)",
                "not known: use parquet or csv",
            ),
            (
                "COPY (SELECT 1) TO 'x' (COMPRESSION zstd)",
                "COPY option 'COMPRESSION'",
            ),
            ("COPY (SELECT 1) 'x'", "Expected"),
        ] {
            let e = parse(sql).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
        assert!(is_copy("  copy (select 1) to 'x'"));
        assert!(!is_copy("SELECT 'copy'"));
    }

    #[test]
    fn targets_stay_inside_the_export_folder() {
        assert_eq!(resolve("sales/daily/").unwrap(), Path::new("sales/daily"));
        for bad in [
            "/etc",
            "../x",
            "a/../../b",
            ".hidden",
            "",
            "a/./b/..",
            "a[1]/b",
            "x*",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
    }
}
