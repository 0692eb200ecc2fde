//! The latest loaded state of the tables this process has opened, so that opening a table again
//! reads only the commits made since (by this process or any other), not its whole log.
//!
//! - A state that is behind is brought up to date by one task at a time per table; the others
//!   wait for it and take its result. Bringing a state up to date replays the table's file list
//!   (delta-rs keeps every file), so a burst of requests after a commit would otherwise each
//!   replay it.
//! - A table dropped and created again at the same location starts a new log whose commit files
//!   have the old names. So a cached state is only brought up to date when the commit file of
//!   its version is still the one it was read from (same size, modification time and entity
//!   tag); otherwise the table is loaded afresh.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use deltalake::DeltaTable;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

/// Tables kept; beyond it the cache starts over (a table's state holds its file list).
const CAPACITY: usize = 256;

#[derive(Clone)]
struct Loaded {
    delta: DeltaTable,
    /// The commit file of `delta`'s version, as it was when read.
    commit: ObjectMeta,
    /// Held while one task brings this table's state up to date.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

static LATEST: LazyLock<Mutex<HashMap<String, Loaded>>> = LazyLock::new(Default::default);

fn cached(location: &str) -> Option<Loaded> {
    let cache = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    cache.get(location).cloned()
}

fn commit_path(version: u64) -> Path {
    Path::from(format!("_delta_log/{version:020}.json"))
}

async fn commit_of(delta: &DeltaTable) -> Option<ObjectMeta> {
    let version = delta.version()?;
    let store = delta.log_store().object_store(None);
    store.head(&commit_path(version)).await.ok()
}

enum State {
    Latest,
    Behind,
    /// The log was replaced (the table dropped and created again), or cannot be read.
    Replaced,
}

async fn state_of(loaded: &Loaded) -> State {
    let same = commit_of(&loaded.delta).await.is_some_and(|now| {
        (now.size, now.last_modified, &now.e_tag)
            == (
                loaded.commit.size,
                loaded.commit.last_modified,
                &loaded.commit.e_tag,
            )
    });
    if !same {
        return State::Replaced;
    }
    // Versions follow one another and a commit file appears whole: when the next one is not
    // there, the state is the latest, and the log need not be listed (nor the files replayed).
    let store = loaded.delta.log_store().object_store(None);
    let next = loaded.delta.version().map_or(0, |v| v + 1);
    match store.head(&commit_path(next)).await {
        Err(object_store::Error::NotFound { .. }) => State::Latest,
        Ok(_) => State::Behind,
        Err(_) => State::Replaced,
    }
}

/// The table at `location` brought up to its latest version, if this process has loaded it
/// before and it is still the same table.
pub(crate) async fn refreshed(location: &str) -> Option<DeltaTable> {
    let mut loaded = cached(location)?;
    let mut checked = loaded.delta.version();
    let _turn = loop {
        match state_of(&loaded).await {
            State::Latest => return Some(loaded.delta),
            State::Replaced => {
                forget(location);
                return None;
            }
            State::Behind => {}
        }
        let turn = loaded.refresh.clone().lock_owned().await;
        // Whoever held the turn may have brought the state up to date meanwhile.
        loaded = cached(location)?;
        if loaded.delta.version() == checked {
            break turn;
        }
        checked = loaded.delta.version();
    };
    let mut delta = loaded.delta;
    if delta.update_incremental(None).await.is_err() {
        forget(location);
        return None;
    }
    remember(location, &delta).await;
    Some(delta)
}

/// Keeps `delta` (just loaded at its latest version) for the next open of `location`, unless
/// a later state is kept already.
pub(crate) async fn remember(location: &str, delta: &DeltaTable) {
    let Some(commit) = commit_of(delta).await else {
        return;
    };
    let mut cache = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CAPACITY && !cache.contains_key(location) {
        cache.clear();
    }
    let refresh = match cache.get(location) {
        Some(kept) if kept.delta.version() > delta.version() => return,
        Some(kept) => kept.refresh.clone(),
        None => Arc::default(),
    };
    cache.insert(
        location.to_string(),
        Loaded {
            delta: delta.clone(),
            commit,
            refresh,
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
