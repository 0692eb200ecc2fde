//! Backup and restore of a whole data directory: the catalog, every table and the keystore,
//! copied at one point in time while the hub keeps running, with a manifest (versions, sizes,
//! SHA-256 sums) that restore verifies before it writes anything.
//!
//! Layout of a backup directory: `manifest.json`; `catalog.db` (SQLite's `VACUUM INTO`: one
//! read transaction, so the catalog at one point) or `catalog.dump` (`pg_dump` of a snapshot); `data/<path in the data dir>/…` (each
//! table's Delta log up to its version at the backup point and every data file those versions
//! reference); `keys/` (the keystore, mode 0700, its files 0600: they decrypt PII columns).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use basin_catalog::Catalog;
use basin_catalog::access::Action;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Hub, HubConfig, Result, ServiceError, Session};

const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
const SQLITE_FILE: &str = "catalog.db";
const POSTGRES_FILE: &str = "catalog.dump";

/// What a backup holds; `manifest.json` of the backup directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    /// Version of the manifest's format.
    pub format: u32,
    /// The Basin version that took the backup.
    pub basin_version: String,
    /// The backup point (RFC 3339): the catalog as of then, each table at its last commit
    /// made before it.
    pub taken_at: String,
    /// `sqlite` (`catalog.db`) or `postgres` (`catalog.dump`, of `pg_dump`).
    pub catalog: String,
    /// Whether the keystore's master key (`master.key`) is in the backup; when not, the hub
    /// used `BASIN_MASTER_KEY`, which restore needs too.
    pub master_key_included: bool,
    pub tables: Vec<TableCopy>,
    /// Every file of the backup but the manifest.
    pub files: Vec<FileSum>,
}

/// One table in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableCopy {
    /// `hub.dataset.table`.
    pub table: String,
    /// Where it lives, relative to the data directory.
    pub path: String,
    /// Its version at the backup point.
    pub version: i64,
    /// The oldest version it can be read at (time travel) after a restore.
    pub oldest_version: i64,
    /// Data files copied.
    pub data_files: usize,
}

/// A file of a backup, relative to its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSum {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Session {
    /// Writes a backup of the whole data directory into `dir` (new or empty) while the hub
    /// runs (administrators; audited as `hub.backup`). A hub whose tables live outside the data
    /// directory (another directory, an object store) is refused before any table is copied;
    /// any failure leaves `dir` as it was.
    pub async fn backup(&self, dir: &Path) -> Result<BackupReport> {
        let target = dir.display().to_string();
        let result = async {
            self.require(Action::Administer).await?;
            let created = claim_empty_dir(dir, "backup directory")?;
            // It holds the keys and the catalog's password hashes.
            create_private_dir(dir)?;
            let result = Box::pin(self.backup_into(dir)).await;
            if result.is_err() {
                release(dir, created);
            }
            result
        }
        .await;
        let (outcome, detail) = match &result {
            Ok(r) => (
                "ok",
                json!({"taken_at": r.taken_at, "tables": r.tables.len(), "files": r.files.len()}),
            ),
            Err(e) if crate::session::is_denial(e) => ("denied", json!({"error": e.to_string()})),
            Err(e) => ("error", json!({"error": e.to_string()})),
        };
        self.audit("hub.backup", &target, outcome, detail).await;
        result
    }

    async fn backup_into(&self, dir: &Path) -> Result<BackupReport> {
        let data_dir = absolute(&self.data_dir)?;
        let catalog = self.engine().catalog();
        let (kind, catalog_file) = if catalog.is_sqlite() {
            ("sqlite", SQLITE_FILE)
        } else {
            ("postgres", POSTGRES_FILE)
        };
        let entries = catalog.backup_into(&dir.join(catalog_file)).await?;
        // Each table is copied at its last commit before this point, after the catalog's.
        let point = chrono::Utc::now();
        let mut tables = Vec::new();
        for t in entries.into_iter().filter(|t| t.kind != "view") {
            let name = t.table_ref().to_string();
            let path = basin_lake::location_url(&t.location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .filter(|p| p.starts_with(&data_dir))
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "table '{name}' is stored at {}, outside the data directory {}: basin backup copies tables inside the data directory only; move its hub there (basin hub move) or back up that storage with its own tools",
                        t.location,
                        data_dir.display()
                    ))
                })?;
            tables.push((name, path));
        }
        let mut files = vec![sum_of(dir, catalog_file)?];
        let mut copies = Vec::new();
        for (name, path) in tables {
            let relative = relative_path(&path, &data_dir);
            let into = dir.join("data").join(&relative);
            let (copy, sums) = copy_table(&name, &path, &into, point.timestamp_millis())?;
            copies.push(TableCopy {
                path: relative.clone(),
                ..copy
            });
            files.extend(sums.into_iter().map(|s| FileSum {
                path: format!("data/{relative}/{}", s.path),
                ..s
            }));
        }
        // Last, so that every key that encrypted a copied row is in it (keys are only added).
        let keys_dir = dir.join("keys");
        let mut master_key_included = false;
        if self.keys_dir.is_dir() {
            create_private_dir(&keys_dir)?;
            for entry in read_dir(&self.keys_dir)? {
                let name = entry.file_name().to_string_lossy().to_string();
                let key_file = name == "master.key" || name.ends_with(".json");
                if !key_file || name.starts_with('.') || !entry.path().is_file() {
                    continue;
                }
                master_key_included |= name == "master.key";
                let mut sum = copy_file(&entry.path(), &keys_dir.join(&name), true)?;
                sum.path = format!("keys/{name}");
                files.push(sum);
            }
        }
        let report = BackupReport {
            format: FORMAT,
            basin_version: env!("CARGO_PKG_VERSION").to_string(),
            taken_at: point.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            catalog: kind.into(),
            master_key_included,
            tables: copies,
            files,
        };
        // Written last: a directory without a manifest is not a backup, and restore says so.
        let text = serde_json::to_vec_pretty(&report).expect("a manifest serializes");
        let tmp = dir.join(".manifest.json.tmp");
        write_synced(&tmp, &text)?;
        fs::rename(&tmp, dir.join(MANIFEST)).map_err(|e| io("writing", &dir.join(MANIFEST), e))?;
        Ok(report)
    }
}

/// Restores the backup in `backup` into the new or empty data directory (and keystore
/// directory) of `config`, as `user` with `origin`: every file is checked against the manifest
/// before anything is written; then the catalog, tables and keys are copied, the hub is opened,
/// `user` must administer it, and every table must open at its backed-up version. On any failure
/// the target directories are left as they were. Audited as `hub.restore` in the restored hub.
pub async fn restore(
    config: &HubConfig,
    backup: &Path,
    user: &str,
    origin: &str,
) -> Result<BackupReport> {
    let manifest = read_manifest(backup)?;
    match (manifest.catalog.as_str(), &config.catalog_url) {
        ("sqlite", Some(_)) => {
            return Err(ServiceError::Invalid(
                "the backup holds a SQLite catalog: restore without --catalog (it becomes <data-dir>/catalog.db)".into(),
            ));
        }
        ("postgres", None) => {
            return Err(ServiceError::Invalid(
                "the backup holds a PostgreSQL catalog: give --catalog postgres://… of a new, empty database to restore it into".into(),
            ));
        }
        _ => {}
    }
    if !manifest.master_key_included && config.master_key.is_none() {
        return Err(ServiceError::Invalid(format!(
            "the backed-up keystore was used with {}, which is not in the backup: set it to the same key",
            basin_keys::MASTER_KEY_ENV
        )));
    }
    for f in &manifest.files {
        let sum = sum_of(backup, &f.path)?;
        if sum.bytes != f.bytes || sum.sha256 != f.sha256 {
            return Err(ServiceError::Invalid(format!(
                "backup {}: {} does not match the manifest ({} bytes, sha256 {}; expected {} bytes, {}): the backup is damaged, use another copy",
                backup.display(),
                f.path,
                sum.bytes,
                sum.sha256,
                f.bytes,
                f.sha256
            )));
        }
    }
    let data_dir = config.data_dir.clone();
    let keys_dir = config
        .keystore_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("keys"));
    let data_created = claim_empty_dir(&data_dir, "data directory")?;
    let keys_created = match claim_empty_dir(&keys_dir, "keystore directory") {
        Ok(c) => c,
        Err(e) => {
            release(&data_dir, data_created);
            return Err(e);
        }
    };
    let mut database_restored = false;
    let result = Box::pin(restore_into(
        config,
        backup,
        &manifest,
        &keys_dir,
        user,
        origin,
        &mut database_restored,
    ))
    .await;
    if let (Err(_), Some(url), true) = (&result, &config.catalog_url, database_restored) {
        // It was empty before the dump was restored into it.
        let _ = Catalog::clear_restored_postgres(url).await;
    }
    if result.is_err() {
        release(&keys_dir, keys_created);
        release(&data_dir, data_created);
    }
    result.map(|()| manifest)
}

async fn restore_into(
    config: &HubConfig,
    backup: &Path,
    manifest: &BackupReport,
    keys_dir: &Path,
    user: &str,
    origin: &str,
    database_restored: &mut bool,
) -> Result<()> {
    create_private_dir(keys_dir)?;
    for f in &manifest.files {
        let (to, private) = if f.path == POSTGRES_FILE {
            continue; // restored into the database below, not copied
        } else if f.path == SQLITE_FILE {
            (config.data_dir.join(SQLITE_FILE), false)
        } else if let Some(rest) = f.path.strip_prefix("data/") {
            (config.data_dir.join(rest), false)
        } else if let Some(rest) = f.path.strip_prefix("keys/") {
            (keys_dir.join(rest), true)
        } else {
            return Err(ServiceError::Invalid(format!(
                "backup {}: unexpected file {} in the manifest",
                backup.display(),
                f.path
            )));
        };
        let copied = copy_file(&backup.join(&f.path), &to, private)?;
        if copied.sha256 != f.sha256 {
            return Err(ServiceError::Invalid(format!(
                "backup {}: {} changed while it was restored; restore again",
                backup.display(),
                f.path
            )));
        }
    }
    if let Some(url) = &config.catalog_url {
        Catalog::restore_postgres(url, &backup.join(POSTGRES_FILE)).await?;
        *database_restored = true;
    }
    let hub = Hub::open(config).await?;
    let checked = async {
        let session = hub.user_session(user, &[], origin).await?;
        session.require(Action::Administer).await?;
        for t in &manifest.tables {
            let table = basin_core::TableRef::parse(&t.table)?;
            let entry = hub.catalog().require_table(&table).await?;
            let version = basin_lake::LakeTable::open(&entry.location)
                .await?
                .version();
            if version != t.version {
                return Err(ServiceError::Invalid(format!(
                    "restored table '{}' opens at version {version}, not {} as backed up",
                    t.table, t.version
                )));
            }
        }
        session
            .audit(
                "hub.restore",
                &backup.display().to_string(),
                "ok",
                json!({"taken_at": manifest.taken_at, "tables": manifest.tables.len()}),
            )
            .await;
        Ok(())
    }
    .await;
    hub.catalog().close().await;
    checked
}

fn read_manifest(backup: &Path) -> Result<BackupReport> {
    let path = backup.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| {
        ServiceError::Invalid(format!(
            "{} is not a Basin backup (cannot read {}: {e}); give the directory basin backup wrote",
            backup.display(),
            path.display()
        ))
    })?;
    let manifest: BackupReport = serde_json::from_slice(&text).map_err(|e| {
        ServiceError::Invalid(format!(
            "{}: not a Basin backup manifest ({e})",
            path.display()
        ))
    })?;
    for f in &manifest.files {
        let inside = ["catalog.db", "catalog.dump"].contains(&f.path.as_str())
            || ["data/", "keys/"].iter().any(|p| f.path.starts_with(p));
        if !inside
            || f.path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(ServiceError::Invalid(format!(
                "{}: file '{}' is not a file of a Basin backup",
                path.display(),
                f.path
            )));
        }
    }
    if manifest.format != FORMAT || !["sqlite", "postgres"].contains(&manifest.catalog.as_str()) {
        return Err(ServiceError::Invalid(format!(
            "{}: backup format {} with a {} catalog; this Basin restores format {FORMAT} with a sqlite or postgres catalog",
            path.display(),
            manifest.format,
            manifest.catalog
        )));
    }
    Ok(manifest)
}

/// Copies the Delta table at `from` into `to`: its log up to the last version committed at or
/// before `point_ms`, and every data file those versions reference (the time-travel window is
/// every version still in the log). A file that the backed-up version reads must be there; one
/// only older versions read may have been vacuumed (time travel to them failed before, too).
fn copy_table(
    name: &str,
    from: &Path,
    to: &Path,
    point_ms: i64,
) -> Result<(TableCopy, Vec<FileSum>)> {
    let log = from.join("_delta_log");
    if !log.is_dir() {
        return Err(ServiceError::Invalid(format!(
            "table '{name}' has no Delta log at {} (dropped while the backup ran?): run the backup again",
            log.display()
        )));
    }
    let mut commits = BTreeMap::new();
    let mut checkpoints: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
    let mut others = Vec::new(); // .crc files
    for entry in read_dir(&log)? {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(version) = file.get(..20).and_then(|v| v.parse::<i64>().ok()) else {
            continue; // _last_checkpoint (a hint that may point past the backup), temp files
        };
        match &file[20..] {
            ".json" => {
                commits.insert(version, entry.path());
            }
            ".crc" => others.push((version, entry.path())),
            rest if rest.starts_with(".checkpoint.") && rest.ends_with(".parquet") => {
                checkpoints.entry(version).or_default().push(entry.path())
            }
            _ => {}
        }
    }
    // Where replay starts: version 0, or (once old commits were cleaned up) the oldest
    // checkpoint that the remaining commits continue from.
    let start = match commits.keys().next() {
        Some(0) | None => 0,
        Some(first) => *checkpoints
            .keys()
            .find(|c| **c + 1 >= *first)
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "table '{name}' at {}: its Delta log starts at version {first} without a checkpoint to start from",
                    from.display()
                ))
            })?,
    };
    let checkpoint = if start > 0 {
        checkpoints.get(&start)
    } else {
        None
    };
    // The newest commit at or before the point, in an unbroken run of commits.
    let mut actions = BTreeMap::new();
    let mut version = checkpoint.map(|_| start);
    let mut expected = if checkpoint.is_some() { start + 1 } else { 0 };
    for (v, path) in commits.range(expected..) {
        if *v != expected {
            break;
        }
        let text = fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                ServiceError::Invalid(format!(
                    "table '{name}': corrupt commit {}: {e}",
                    path.display()
                ))
            })?;
        let stamp = parsed
            .iter()
            .find_map(|a| a["commitInfo"]["timestamp"].as_i64());
        if stamp.is_some_and(|ts| ts > point_ms) {
            break;
        }
        actions.insert(*v, parsed);
        version = Some(*v);
        expected += 1;
    }
    let Some(version) = version else {
        return Err(ServiceError::Invalid(format!(
            "table '{name}' at {} has no commit before the backup point",
            from.display()
        )));
    };
    // Replay the log: `live` is what the backed-up version reads; `all` what any version does.
    let mut live = BTreeSet::new();
    let mut all = BTreeSet::new();
    if let Some(parts) = checkpoint {
        for part in parts {
            live.extend(checkpoint_adds(part)?);
        }
        all.extend(live.iter().cloned());
    }
    for parsed in actions.values() {
        for a in parsed {
            if let Some(p) = a["add"]["path"].as_str() {
                live.insert(p.to_string());
                all.insert(p.to_string());
            }
            if let Some(p) = a["cdc"]["path"].as_str() {
                all.insert(p.to_string());
            }
            if let Some(p) = a["remove"]["path"].as_str() {
                live.remove(p);
            }
        }
    }
    let table_url = basin_lake::location_url(&from.display().to_string())?;
    let mut sums = Vec::new();
    let mut data_files = 0;
    for p in &all {
        let source = url_join(&table_url, p).filter(|s| s.starts_with(from));
        let Some(source) = source else {
            return Err(ServiceError::Invalid(format!(
                "table '{name}' references a data file outside its directory ({p}): basin backup copies tables whose files are all inside them"
            )));
        };
        if !source.exists() && !live.contains(p) {
            continue; // vacuumed: only older versions read it
        }
        let relative = relative_path(&source, from);
        let mut sum = copy_file(&source, &to.join(&relative), false).map_err(|e| {
            ServiceError::Invalid(format!("table '{name}' cannot be backed up: {e}"))
        })?;
        sum.path = relative;
        sums.push(sum);
        data_files += 1;
    }
    let log_files = commits
        .range(start..=version)
        .map(|(v, p)| (*v, p.clone()))
        .chain(
            checkpoints
                .iter()
                .flat_map(|(v, ps)| ps.iter().map(move |p| (*v, p.clone()))),
        )
        .chain(others)
        .filter(|(v, _)| *v <= version && *v >= start);
    for (_, path) in log_files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let mut sum = copy_file(&path, &to.join("_delta_log").join(&file), false)?;
        sum.path = format!("_delta_log/{file}");
        sums.push(sum);
    }
    let copy = TableCopy {
        table: name.to_string(),
        path: String::new(),
        version,
        oldest_version: start,
        data_files,
    };
    Ok((copy, sums))
}

/// The data files a checkpoint lists (`add.path`).
fn checkpoint_adds(path: &Path) -> Result<Vec<String>> {
    use arrow::array::{Array, AsArray};
    let fail = |e: String| {
        ServiceError::Invalid(format!("cannot read checkpoint {}: {e}", path.display()))
    };
    let file = File::open(path).map_err(|e| io("reading", path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| fail(e.to_string()))?;
    let mut paths = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let Some(add) = batch.column_by_name("add") else {
            continue;
        };
        let add = add.as_struct();
        let Some(col) = add.column_by_name("path") else {
            continue;
        };
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
            .map_err(|e| fail(e.to_string()))?;
        let col = col.as_string::<i32>();
        for i in 0..col.len() {
            if add.is_valid(i) && col.is_valid(i) {
                paths.push(col.value(i).to_string());
            }
        }
    }
    Ok(paths)
}

/// A Delta `add` path (relative and URL-encoded, or an absolute URL) as a local file.
fn url_join(table: &url::Url, path: &str) -> Option<PathBuf> {
    let base = url::Url::parse(&format!("{}/", table.as_str().trim_end_matches('/'))).ok()?;
    base.join(path).ok()?.to_file_path().ok()
}

/// Makes sure `dir` is a new or empty directory; whether it was created.
fn claim_empty_dir(dir: &Path, what: &str) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ServiceError::Invalid(format!(
                    "{what} {} is not empty: give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
            Ok(true)
        }
        Err(e) => Err(io("reading", dir, e)),
    }
}

/// Undoes [`claim_empty_dir`] after a failure: removes the directory, or empties it.
fn release(dir: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(dir);
    } else if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| io("resolving", path, e))
}

/// `path` relative to `base` (which it is inside), with `/` separators.
fn relative_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    fs::read_dir(dir)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| io("reading", dir, e))
}

fn io(action: &str, path: &Path, e: std::io::Error) -> ServiceError {
    ServiceError::Invalid(format!("{action} {}: {e}", path.display()))
}

/// Size and SHA-256 of `<dir>/<path>`.
fn sum_of(dir: &Path, path: &str) -> Result<FileSum> {
    let full = dir.join(path);
    let mut file = File::open(&full).map_err(|e| io("reading", &full, e))?;
    let (bytes, sha256) = hash(&mut file, |_| Ok(())).map_err(|e| io("reading", &full, e))?;
    Ok(FileSum {
        path: path.to_string(),
        bytes,
        sha256,
    })
}

fn hash(
    from: &mut impl Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok((bytes, hex::encode(hasher.finalize())));
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        bytes += n as u64;
    }
}

/// Copies `from` to the new file `to` (creating its directory), synced to disk, hashing on the
/// way; `private` files get mode 0600. The sum's path is `to`'s; callers set the one they keep.
fn copy_file(from: &Path, to: &Path, private: bool) -> Result<FileSum> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    }
    let mut source = File::open(from).map_err(|e| io("reading", from, e))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut target = options.open(to).map_err(|e| io("writing", to, e))?;
    let (bytes, sha256) =
        hash(&mut source, |chunk| target.write_all(chunk)).map_err(|e| io("copying", from, e))?;
    target.sync_all().map_err(|e| io("writing", to, e))?;
    Ok(FileSum {
        path: to.display().to_string(),
        bytes,
        sha256,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| io("writing", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing", path, e))
}

/// A directory only its owner may read (mode 0700): the keystore's copy.
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io("creating", dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("securing", dir, e))?;
    }
    Ok(())
}
