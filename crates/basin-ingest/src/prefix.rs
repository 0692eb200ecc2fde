//! The prefix a files source watches: a local folder, or an object-store URL
//! (`s3://bucket/drops/`) read with the server's `AWS_*` environment (keys, region, endpoint for
//! an S3-compatible store). Listed for the files whose relative path matches a glob; an object
//! is fetched to a scratch folder before its load, keeping its relative path so that `key=value`
//! folders still become columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::{IngestError, Result};

/// A folder or an object-store prefix.
pub struct Prefix {
    location: String,
    place: Place,
}

enum Place {
    Folder(PathBuf),
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

/// A file under a prefix.
#[derive(Debug, Clone)]
pub struct PrefixFile {
    /// Relative to the prefix, `/`-separated.
    pub path: String,
    pub size: u64,
    pub modified_ms: i64,
}

fn invalid(location: &str, why: impl std::fmt::Display) -> IngestError {
    IngestError::Input(format!("source location '{location}': {why}"))
}

impl Prefix {
    /// Opens `location`: an existing local folder, or an `s3://bucket[/prefix]` URL.
    pub fn open(location: &str) -> Result<Prefix> {
        if location.contains("://") {
            let basin_lake::S3Prefix { store, prefix, url } =
                basin_lake::S3Prefix::parse(location).map_err(|e| invalid(location, e))?;
            let location = url;
            return Ok(Prefix {
                location,
                place: Place::Store { store, prefix },
            });
        }
        let folder = std::path::absolute(location).map_err(|e| invalid(location, e))?;
        if !folder.is_dir() {
            return Err(invalid(
                location,
                "it is not a folder this server can read (give a folder or an s3://bucket/prefix URL)",
            ));
        }
        Ok(Prefix {
            location: folder.display().to_string(),
            place: Place::Folder(folder),
        })
    }

    /// The location as recorded: an absolute folder or the normalised URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the prefix can be listed (an object store's keys, bucket and endpoint work).
    pub async fn check(&self) -> Result<()> {
        if let Place::Store { store, prefix } = &self.place {
            store
                .list_with_delimiter(Some(prefix))
                .await
                .map_err(|e| invalid(&self.location, format!("cannot list it: {e}")))?;
        }
        Ok(())
    }

    /// The files whose relative path matches `pattern` (`*` stays within one folder level), in
    /// path order.
    pub async fn list(&self, pattern: &glob::Pattern) -> Result<Vec<PrefixFile>> {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut found = match &self.place {
            Place::Folder(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_folder(&root))
                    .await
                    .map_err(|e| IngestError::Input(e.to_string()))??
            }
            Place::Store { store, prefix } => {
                let mut files = Vec::new();
                let mut listing = store.list(Some(prefix));
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(|e| invalid(&self.location, e))?;
                    let Some(parts) = meta.location.prefix_match(prefix) else {
                        continue;
                    };
                    files.push(PrefixFile {
                        path: parts
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/"),
                        size: meta.size,
                        modified_ms: meta.last_modified.timestamp_millis(),
                    });
                }
                files
            }
        };
        found.retain(|f| pattern.matches_with(&f.path, options));
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// A local path of `file` and the folder its `key=value` folders are relative to: the file
    /// itself in a folder, or a copy fetched (streamed) under `scratch`.
    pub async fn local(&self, file: &PrefixFile, scratch: &Path) -> Result<(PathBuf, PathBuf)> {
        let (store, prefix) = match &self.place {
            Place::Folder(root) => return Ok((root.join(&file.path), root.clone())),
            Place::Store { store, prefix } => (store, prefix),
        };
        let key = ObjectPath::from_iter(
            prefix
                .parts()
                .chain(ObjectPath::from(file.path.as_str()).parts()),
        );
        let copy = scratch.join(&file.path);
        let io = |source| IngestError::Io {
            path: copy.display().to_string(),
            source,
        };
        if let Some(parent) = copy.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let mut out = tokio::fs::File::create(&copy).await.map_err(io)?;
        let mut body = store
            .get(&key)
            .await
            .map_err(|e| invalid(&self.location, format!("fetching {}: {e}", file.path)))?
            .into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| invalid(&self.location, format!("fetching {}: {e}", file.path)))?;
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        Ok((copy, scratch.to_path_buf()))
    }
}

/// Every file under `root`, with paths relative to it.
fn list_folder(root: &Path) -> Result<Vec<PrefixFile>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| IngestError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let full = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(full);
                continue;
            }
            let Ok(relative) = full.strip_prefix(root) else {
                continue;
            };
            let path = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            found.push(PrefixFile {
                path,
                size: meta.len(),
                modified_ms,
            });
        }
    }
    Ok(found)
}
