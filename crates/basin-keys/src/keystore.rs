//! The keystore: where hub keys live. [`Keystore`] is the handle the rest of Basin holds; a
//! [`KeyBackend`] keeps the keys: [`FileKeystore`] (a directory, never under table data) now, a
//! KMS later.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::error::key_error;
use crate::token::{HubKey, Secret};
use crate::{KeyError, Result};

/// Where hub keys are kept and rotated.
pub trait KeyBackend: Send + Sync + std::fmt::Debug {
    /// The hub's key with every version, created on first use.
    fn hub_key(&self, hub: &str) -> Result<HubKey>;
    /// Adds a key version to the hub and makes it current.
    fn rotate(&self, hub: &str) -> Result<HubKey>;
}

/// The keystore Basin holds: a [`KeyBackend`] behind a cheap, clonable handle.
#[derive(Clone, Debug)]
pub struct Keystore(Arc<dyn KeyBackend>);

impl Keystore {
    /// Opens the file keystore in `dir` (see [`FileKeystore::open`]).
    pub fn open(dir: &Path, master_key: Option<&str>) -> Result<Keystore> {
        Ok(Keystore::new(FileKeystore::open(dir, master_key)?))
    }

    /// A keystore over any backend.
    pub fn new(backend: impl KeyBackend + 'static) -> Keystore {
        Keystore(Arc::new(backend))
    }

    /// The hub's current key (with its older versions, for decryption).
    pub fn hub_key(&self, hub: &str) -> Result<HubKey> {
        self.0.hub_key(hub)
    }

    /// Adds a key version to the hub and makes it current.
    pub fn rotate(&self, hub: &str) -> Result<HubKey> {
        self.0.rotate(hub)
    }
}

impl KeyBackend for FileKeystore {
    fn hub_key(&self, hub: &str) -> Result<HubKey> {
        FileKeystore::hub_key(self, hub)
    }
    fn rotate(&self, hub: &str) -> Result<HubKey> {
        FileKeystore::rotate(self, hub)
    }
}

/// Name of the environment variable that may hold the master key.
pub const MASTER_KEY_ENV: &str = "BASIN_MASTER_KEY";

pub(crate) const MASTER_KEY_FILE: &str = "master.key";
pub(crate) const CHECK_FILE: &str = "keystore.json";
const CHECK_AD: &[u8] = b"basin-keystore-check";
const CHECK_PLAINTEXT: &[u8] = b"basin-keystore-v1";
const WRAP_AD: &[u8] = b"basin-hub-key";
const MASTER_KEY_FORMAT: &str =
    "64 hex characters or standard base64 of 32 bytes (generate one with `openssl rand -hex 32`)";

fn random_bytes<const N: usize>(what: &str) -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        key_error(format!(
            "cannot generate {what}: the operating system's random number generator failed: {e}"
        ))
    })?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// Keystore
// ---------------------------------------------------------------------------------------------

/// Keys for PII encryption: a directory (default `<data-dir>/keys`, NOT under table data), files
/// mode 0600.
///
/// Layout: `master.key` (only when the master key is not given by `BASIN_MASTER_KEY`),
/// `keystore.json` (a check value that detects a wrong master key), `hub-<hub>.json` (the hub's
/// wrapped key versions) and `hub-<hub>.lock` (serialises key creation and rotation, also across
/// processes).
#[derive(Clone, Debug)]
pub struct FileKeystore {
    dir: PathBuf,
    /// The AES-SIV-256 key that wraps hub keys, derived from the 32-byte master key.
    wrap_key: Arc<Secret<64>>,
}

#[derive(Serialize, Deserialize)]
struct CheckFile {
    format: u32,
    check: String,
}

#[derive(Serialize, Deserialize)]
struct HubFile {
    current: u32,
    keys: BTreeMap<u32, String>,
}

/// Where the master key came from, for error messages.
enum MasterSource {
    Env,
    File(PathBuf),
}

impl MasterSource {
    fn describe(&self) -> String {
        match self {
            MasterSource::Env => format!("the master key from {MASTER_KEY_ENV}"),
            MasterSource::File(path) => format!("the master key in {}", path.display()),
        }
    }
}

impl FileKeystore {
    /// Opens (creating the directory, mode 0700) the keystore. The master key comes from
    /// `master_key` (the value of env `BASIN_MASTER_KEY`: 64 hex chars = 32 bytes, or standard
    /// base64 of 32 bytes; anything else is an error naming `BASIN_MASTER_KEY` and the expected
    /// format) or, when `None`, from `<dir>/master.key`, which is generated (random 32 bytes, hex)
    /// on first use with mode 0600. A master key that differs from the one the keystore was
    /// created with is an error here, before any data is touched.
    pub fn open(dir: &Path, master_key: Option<&str>) -> Result<FileKeystore> {
        create_private_dir(dir)?;
        let check_path = dir.join(CHECK_FILE);
        let (master, source) = match master_key {
            Some(value) => {
                let master = parse_master_key(value).ok_or_else(|| {
                    key_error(format!(
                        "{MASTER_KEY_ENV} is not a valid master key ({} characters): expected {MASTER_KEY_FORMAT}",
                        value.trim().len()
                    ))
                })?;
                (master, MasterSource::Env)
            }
            None => {
                let path = dir.join(MASTER_KEY_FILE);
                let master = match read_optional(&path)? {
                    Some(text) => parse_master_key(&text).ok_or_else(|| {
                        key_error(format!(
                            "{} does not hold a valid master key: expected {MASTER_KEY_FORMAT}; restore the file from a backup, or set {MASTER_KEY_ENV}",
                            path.display()
                        ))
                    })?,
                    None => {
                        if check_path.exists() {
                            return Err(key_error(format!(
                                "the keystore {} was created with a master key from {MASTER_KEY_ENV} and has no {MASTER_KEY_FILE}: set {MASTER_KEY_ENV} to that key",
                                dir.display()
                            )));
                        }
                        generate_master_key_file(&path)?
                    }
                };
                (master, MasterSource::File(path))
            }
        };
        let keystore = FileKeystore {
            dir: dir.to_path_buf(),
            wrap_key: Arc::new(Secret(derive_wrap_key(&master))),
        };
        keystore.verify_or_init_check(&check_path, &source)?;
        Ok(keystore)
    }

    /// The keystore's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current key of `hub`, created (random 64-byte AES-SIV-256 key, version 1) on first use.
    /// Stored in `<dir>/hub-<hub>.json` as `{"current": n, "keys": {"1": "<wrapped key, base64>"}}`,
    /// written atomically (temp file + rename), mode 0600. Reads the file on every call, so a
    /// rotation by another process is seen by the next call.
    pub fn hub_key(&self, hub: &str) -> Result<HubKey> {
        validate_hub(hub)?;
        if let Some(file) = self.read_hub_file(hub)? {
            return self.unwrap_hub_file(hub, &file);
        }
        let _lock = self.lock_hub(hub)?;
        // Another caller may have created the key while this one waited for the lock.
        if let Some(file) = self.read_hub_file(hub)? {
            return self.unwrap_hub_file(hub, &file);
        }
        let key = random_bytes::<64>("a hub key")?;
        let file = HubFile {
            current: 1,
            keys: BTreeMap::from([(1, self.wrap(hub, 1, &key))]),
        };
        self.write_hub_file(hub, &file)?;
        Ok(HubKey::new(hub, 1, BTreeMap::from([(1, Secret(key))])))
    }

    /// Adds a new key version for `hub` and makes it current; old versions stay so that old data
    /// can still be decrypted. Returns the new current key. (Creates version 1 first if the hub
    /// has no key yet, so the result is then version 2.)
    pub fn rotate(&self, hub: &str) -> Result<HubKey> {
        validate_hub(hub)?;
        // Make sure version 1 exists (takes and releases the lock itself).
        self.hub_key(hub)?;
        let _lock = self.lock_hub(hub)?;
        let mut file = self.read_hub_file(hub)?.ok_or_else(|| {
            key_error(format!(
                "the key file of hub '{hub}' disappeared from {} during rotation; restore it from a backup",
                self.dir.display()
            ))
        })?;
        // Unwrapping everything first checks the master key and the file before writing anything.
        let existing = self.unwrap_hub_file(hub, &file)?;
        let next = existing
            .keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| key_error(format!("hub '{hub}' has no key version numbers left")))?;
        let key = random_bytes::<64>("a hub key")?;
        file.keys.insert(next, self.wrap(hub, next, &key));
        file.current = next;
        self.write_hub_file(hub, &file)?;
        let mut keys = (*existing.keys).clone();
        keys.insert(next, Secret(key));
        Ok(HubKey::new(hub, next, keys))
    }

    fn hub_path(&self, hub: &str) -> PathBuf {
        self.dir.join(format!("hub-{hub}.json"))
    }

    fn lock_hub(&self, hub: &str) -> Result<File> {
        let path = self.dir.join(format!("hub-{hub}.lock"));
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open the lock file", &path, e))?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(file)
    }

    fn read_hub_file(&self, hub: &str) -> Result<Option<HubFile>> {
        let path = self.hub_path(hub);
        let Some(text) = read_optional(&path)? else {
            return Ok(None);
        };
        let file: HubFile = serde_json::from_str(&text).map_err(|e| {
            key_error(format!(
                "the key file {} is damaged ({e}); restore it from a backup: without it, data encrypted for hub '{hub}' cannot be decrypted",
                path.display()
            ))
        })?;
        if !file.keys.contains_key(&file.current) || file.keys.contains_key(&0) {
            return Err(key_error(format!(
                "the key file {} is damaged (current version {} has no key, or a version is 0); restore it from a backup",
                path.display(),
                file.current
            )));
        }
        Ok(Some(file))
    }

    fn unwrap_hub_file(&self, hub: &str, file: &HubFile) -> Result<HubKey> {
        let path = self.hub_path(hub);
        let mut keys = BTreeMap::new();
        for (&version, wrapped) in &file.keys {
            let bytes = STANDARD.decode(wrapped.trim()).map_err(|_| {
                key_error(format!(
                    "the key file {} is damaged (version {version} is not base64); restore it from a backup",
                    path.display()
                ))
            })?;
            let key = self.siv().decrypt(wrap_ad(hub, version), &bytes).map_err(|_| {
                key_error(format!(
                    "cannot unwrap version {version} of the key of hub '{hub}' in {}: the master key is not the one the key was made with, or the file was changed",
                    path.display()
                ))
            })?;
            let key: [u8; 64] = key.try_into().map_err(|_| {
                key_error(format!(
                    "the key file {} is damaged (version {version} is not a 64-byte key); restore it from a backup",
                    path.display()
                ))
            })?;
            keys.insert(version, Secret(key));
        }
        Ok(HubKey::new(hub, file.current, keys))
    }

    fn write_hub_file(&self, hub: &str, file: &HubFile) -> Result<()> {
        let path = self.hub_path(hub);
        let text = serde_json::to_string_pretty(file)
            .map_err(|e| key_error(format!("cannot serialise the key file of hub '{hub}': {e}")))?;
        write_atomically(&path, text.as_bytes(), true)
    }

    fn siv(&self) -> Aes256Siv {
        Aes256Siv::new((&self.wrap_key.0).into())
    }

    fn wrap(&self, hub: &str, version: u32, key: &[u8; 64]) -> String {
        let wrapped = self
            .siv()
            .encrypt(wrap_ad(hub, version), key)
            .expect("AES-SIV with three associated-data items cannot fail");
        STANDARD.encode(wrapped)
    }

    fn verify_or_init_check(&self, path: &Path, source: &MasterSource) -> Result<()> {
        let mismatch = || {
            key_error(format!(
                "{} is not the master key the keystore {} was created with; {}",
                source.describe(),
                self.dir.display(),
                match source {
                    MasterSource::Env => format!(
                        "set {MASTER_KEY_ENV} to the original key (or unset it if the keystore uses its {MASTER_KEY_FILE})"
                    ),
                    MasterSource::File(_) => format!(
                        "restore {MASTER_KEY_FILE} from a backup, or set {MASTER_KEY_ENV} to the original key"
                    ),
                }
            ))
        };
        let verify = |text: &str| -> Result<()> {
            let check: CheckFile = serde_json::from_str(text).map_err(|e| {
                key_error(format!(
                    "{} is damaged ({e}); restore it from a backup",
                    path.display()
                ))
            })?;
            let bytes = STANDARD.decode(check.check.trim()).map_err(|_| {
                key_error(format!(
                    "{} is damaged (the check value is not base64); restore it from a backup",
                    path.display()
                ))
            })?;
            match self.siv().decrypt([CHECK_AD], &bytes) {
                Ok(plain) if plain == CHECK_PLAINTEXT => Ok(()),
                _ => Err(mismatch()),
            }
        };
        if let Some(text) = read_optional(path)? {
            return verify(&text);
        }
        let check = self
            .siv()
            .encrypt([CHECK_AD], CHECK_PLAINTEXT)
            .expect("AES-SIV with one associated-data item cannot fail");
        let text = serde_json::to_string_pretty(&CheckFile {
            format: 1,
            check: STANDARD.encode(check),
        })
        .map_err(|e| key_error(format!("cannot serialise {}: {e}", path.display())))?;
        // Never replace a check file that a concurrent `open` has just written: if one appeared,
        // verify against it instead.
        match write_atomically(path, text.as_bytes(), false) {
            Ok(()) => Ok(()),
            Err(_) if path.exists() => match read_optional(path)? {
                Some(text) => verify(&text),
                None => Err(mismatch()),
            },
            Err(e) => Err(e),
        }
    }
}

fn wrap_ad(hub: &str, version: u32) -> [Vec<u8>; 3] {
    [
        WRAP_AD.to_vec(),
        hub.as_bytes().to_vec(),
        version.to_string().into_bytes(),
    ]
}

/// The AES-SIV-256 wrapping key: SHA-512 over a domain label and the 32-byte master key.
fn derive_wrap_key(master: &[u8; 32]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    hasher.update(b"basin keystore wrap key v1\0");
    hasher.update(master);
    hasher.finalize().into()
}

fn parse_master_key(value: &str) -> Option<[u8; 32]> {
    let value = value.trim();
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        hex::decode_to_slice(value, &mut key).ok()?;
        return Some(key);
    }
    STANDARD.decode(value).ok()?.try_into().ok()
}

fn generate_master_key_file(path: &Path) -> Result<[u8; 32]> {
    let key = random_bytes::<32>("a master key")?;
    let text = format!("{}\n", hex::encode(key));
    match write_atomically(path, text.as_bytes(), false) {
        Ok(()) => Ok(key),
        // A concurrent `open` generated it first: use that one.
        Err(_) if path.exists() => {
            let text = read_optional(path)?.unwrap_or_default();
            parse_master_key(&text).ok_or_else(|| {
                key_error(format!(
                    "{} does not hold a valid master key: expected {MASTER_KEY_FORMAT}",
                    path.display()
                ))
            })
        }
        Err(e) => Err(e),
    }
}

fn validate_hub(hub: &str) -> Result<()> {
    basin_core::Name::parse("hub", hub)
        .map(|_| ())
        .map_err(|e| key_error(e.to_string()))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> KeyError {
    key_error(format!("{what} {}: {e}", path.display()))
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read", path, e)),
    }
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(|e| io_error("cannot create the directory", parent, e))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io_error("cannot create the keystore directory", dir, e)),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, mode 0600.
/// With `replace`, an existing file is replaced atomically (rename); without, an existing file
/// is left alone and the call fails (hard link, which never overwrites).
fn write_atomically(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = hex::encode(random_bytes::<8>("a temporary file name")?);
    let tmp = dir.join(format!(".{name}.tmp-{suffix}"));
    let result = (|| {
        let mut file = private_options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_error("cannot create", &tmp, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error("cannot set permissions of", &tmp, e))?;
        }
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("cannot write", &tmp, e))?;
        drop(file);
        if replace {
            fs::rename(&tmp, path).map_err(|e| io_error("cannot replace", path, e))
        } else {
            fs::hard_link(&tmp, path).map_err(|e| io_error("cannot create", path, e))
        }
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    // Make the new directory entry durable; not all platforms can sync a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
