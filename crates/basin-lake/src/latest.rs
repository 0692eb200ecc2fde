//! The latest loaded state of the tables this process has opened, so that opening a table again
//! reads only the commits made since (by this process or any other), not its whole log.
//!
//! A table dropped and created again at the same location starts a new log whose commit files
//! have the old names. So a cached state is only brought up to date when the commit file of its
//! version is still the one it was read from (same size, modification time and entity tag);
//! otherwise the table is loaded afresh.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use deltalake::DeltaTable;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

/// Tables kept; beyond it the cache starts over (a table's state holds its file list).
const CAPACITY: usize = 256;

struct Loaded {
    delta: DeltaTable,
    /// The commit file of `delta`'s version, as it was when read.
    commit: ObjectMeta,
}

static LATEST: LazyLock<Mutex<HashMap<String, Loaded>>> = LazyLock::new(Default::default);

fn commit_path(version: u64) -> Path {
    Path::from(format!("_delta_log/{version:020}.json"))
}

async fn commit_of(delta: &DeltaTable) -> Option<ObjectMeta> {
    let version = delta.version()?;
    let store = delta.log_store().object_store(None);
    store.head(&commit_path(version)).await.ok()
}

/// The table at `location` brought up to its latest version, if this process has loaded it
/// before and it is still the same table.
pub(crate) async fn refreshed(location: &str) -> Option<DeltaTable> {
    let (mut delta, commit) = {
        let cache = LATEST.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = cache.get(location)?;
        (loaded.delta.clone(), loaded.commit.clone())
    };
    let before = delta.version();
    let same = commit_of(&delta).await.is_some_and(|now| {
        (now.size, now.last_modified, &now.e_tag)
            == (commit.size, commit.last_modified, &commit.e_tag)
    });
    if !same {
        forget(location);
        return None;
    }
    // Versions follow one another and a commit file appears whole: when the next one is not
    // there, the state is the latest, and the log need not be listed (nor the files replayed).
    let store = delta.log_store().object_store(None);
    let next = before.map_or(0, |v| v + 1);
    match store.head(&commit_path(next)).await {
        Err(object_store::Error::NotFound { .. }) => return Some(delta),
        Ok(_) if delta.update_incremental(None).await.is_ok() => {}
        _ => {
            forget(location);
            return None;
        }
    }
    if delta.version() != before {
        remember(location, &delta).await;
    }
    Some(delta)
}

/// Keeps `delta` (just loaded at its latest version) for the next open of `location`.
pub(crate) async fn remember(location: &str, delta: &DeltaTable) {
    let Some(commit) = commit_of(delta).await else {
        return;
    };
    let mut cache = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CAPACITY && !cache.contains_key(location) {
        cache.clear();
    }
    cache.insert(
        location.to_string(),
        Loaded {
            delta: delta.clone(),
            commit,
        },
    );
}

/// Drops what is kept of `location` (its table was dropped, or could not be brought up to date).
pub(crate) fn forget(location: &str) {
    LATEST
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(location);
}
