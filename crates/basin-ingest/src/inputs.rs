//! Which files a load reads: paths, globs and directories, with their format, compression and
//! hive-style partition values (`…/year=2024/month=01/file.csv`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::infer::normalize_column_name;
use crate::{Format, IngestError, Result};

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One file to read.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: Format,
    pub compression: Compression,
    /// `(column, value)` pairs from `name=value` folders between the input root and the file.
    pub partition_values: Vec<(String, String)>,
}

impl InputFile {
    /// The path as shown in messages and the quarantine table.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// Opens the file, decompressing as needed; every byte read from disk is added to `bytes`.
    pub(crate) fn open(&self, bytes: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
        let file = File::open(&self.path).map_err(|source| IngestError::Io {
            path: self.display(),
            source,
        })?;
        let counted = BufReader::with_capacity(1 << 20, Counted { inner: file, bytes });
        Ok(match self.compression {
            Compression::None => Box::new(counted),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
            Compression::Zstd => Box::new(zstd::Decoder::with_buffer(counted).map_err(
                |source| IngestError::Io {
                    path: self.display(),
                    source,
                },
            )?),
        })
    }
}

struct Counted<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Expands paths, globs and directories (recursively, skipping hidden files and `_`-prefixed
/// ones such as `_SUCCESS`) into the files to read, in a stable order.
pub fn resolve_inputs(inputs: &[String], format: Option<Format>) -> Result<Vec<InputFile>> {
    if inputs.is_empty() {
        return Err(IngestError::Input("no input files given".into()));
    }
    let mut files = Vec::new();
    for input in inputs {
        let before = files.len();
        if input.contains(['*', '?', '[']) {
            let root = glob_root(input);
            let paths = glob::glob(input)
                .map_err(|e| IngestError::Input(format!("invalid glob '{input}': {e}")))?;
            for path in paths {
                let path = path.map_err(|e| {
                    IngestError::Input(format!("cannot read a match of '{input}': {e}"))
                })?;
                if path.is_file() {
                    files.push(input_file(&root, path, format)?);
                }
            }
        } else {
            let path = PathBuf::from(input);
            if path.is_dir() {
                let mut found = Vec::new();
                walk(&path, &mut found).map_err(|source| IngestError::Io {
                    path: input.clone(),
                    source,
                })?;
                found.sort();
                for f in found {
                    files.push(input_file(&path, f, format)?);
                }
            } else if path.is_file() {
                let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
                files.push(input_file(&root, path, format)?);
            } else {
                return Err(IngestError::Input(format!(
                    "input '{input}' does not exist"
                )));
            }
        }
        if files.len() == before {
            return Err(IngestError::Input(format!(
                "input '{input}' matches no files"
            )));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The folder of a glob before its first wildcard, from which partition folders are read.
fn glob_root(pattern: &str) -> PathBuf {
    let mut root = PathBuf::new();
    for part in Path::new(pattern).components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        root.push(part);
    }
    root
}

fn input_file(root: &Path, path: PathBuf, format: Option<Format>) -> Result<InputFile> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let format = match format {
        Some(f) => f,
        None => {
            let ext = Path::new(stem)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            ext.parse::<Format>().map_err(|_| {
                IngestError::Input(format!(
                    "cannot tell the format of '{}' from its extension: name it .csv, .json, .ndjson, .jsonl or .parquet (optionally .gz or .zst), or pass --format",
                    path.display()
                ))
            })?
        }
    };
    if format == Format::Parquet && compression != Compression::None {
        return Err(IngestError::Input(format!(
            "'{}': Parquet files are compressed inside; load the file without the outer .gz/.zst",
            path.display()
        )));
    }
    Ok(InputFile {
        partition_values: partition_values(root, &path),
        path,
        format,
        compression,
    })
}

/// The `key=value` folders of `path` below `root`, as (column, value).
pub(crate) fn partition_values(root: &Path, path: &Path) -> Vec<(String, String)> {
    let mut values = Vec::new();
    if let Ok(relative) = path.strip_prefix(root)
        && let Some(parent) = relative.parent()
    {
        for dir in parent.components() {
            if let Some((k, v)) = dir.as_os_str().to_str().and_then(|d| d.split_once('=')) {
                values.push((normalize_column_name(k), v.to_string()));
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_formats_and_hive_values() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("year=2024/Month=01");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(leaf.join("a.csv.gz"), b"").unwrap();
        std::fs::write(leaf.join("_SUCCESS"), b"").unwrap();
        let files = resolve_inputs(&[dir.path().display().to_string()], None).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].format, Format::Csv);
        assert_eq!(files[0].compression, Compression::Gzip);
        assert_eq!(
            files[0].partition_values,
            vec![
                ("year".into(), "2024".into()),
                ("month".into(), "01".into())
            ]
        );
        let glob = format!("{}/*/*/*.csv.gz", dir.path().display());
        assert_eq!(
            resolve_inputs(&[glob], None).unwrap()[0]
                .partition_values
                .len(),
            2
        );
        let missing = resolve_inputs(&["/nope/x.csv".into()], None)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }
}
