//! Deterministic authenticated encryption of PII columns under per-hub keys.
//!
//! A [`Keystore`] is a directory (by default `<data-dir>/keys`, never under table data) holding a
//! master key and, per hub, a small JSON file with every version of that hub's data key, each
//! wrapped (AES-SIV encrypted) under the master key. A [`HubKey`] encrypts text into tokens
//! `enc:v<version>:<base64url>` with AES-SIV-256 (RFC 5297) and the hub name as associated data:
//! equal clear texts give equal tokens, so joins and equality filters on encrypted columns work,
//! and any change to a token is detected on decryption.
//!
//! Key rotation adds a version and makes it current; older versions stay in the file so that old
//! data still decrypts, and [`HubKey::encrypt_array`] re-encrypts old-version tokens with the
//! current version, which is how a table is rewritten under a new key.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::{LakeError, Result};

/// Name of the environment variable that may hold the master key.
pub const MASTER_KEY_ENV: &str = "BASIN_MASTER_KEY";
/// Prefix of every encrypted value.
pub const TOKEN_PREFIX: &str = "enc:v";

const MASTER_KEY_FILE: &str = "master.key";
const CHECK_FILE: &str = "keystore.json";
const CHECK_AD: &[u8] = b"basin-keystore-check";
const CHECK_PLAINTEXT: &[u8] = b"basin-keystore-v1";
const WRAP_AD: &[u8] = b"basin-hub-key";
const MASTER_KEY_FORMAT: &str =
    "64 hex characters or standard base64 of 32 bytes (generate one with `openssl rand -hex 32`)";

/// Key bytes that never show up in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
struct Secret<const N: usize>([u8; N]);

impl<const N: usize> std::fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{N}-byte secret>")
    }
}

fn key_error(message: impl Into<String>) -> LakeError {
    LakeError::Key(message.into())
}

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
pub struct Keystore {
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

impl Keystore {
    /// Opens (creating the directory, mode 0700) the keystore. The master key comes from
    /// `master_key` (the value of env `BASIN_MASTER_KEY`: 64 hex chars = 32 bytes, or standard
    /// base64 of 32 bytes; anything else is an error naming `BASIN_MASTER_KEY` and the expected
    /// format) or, when `None`, from `<dir>/master.key`, which is generated (random 32 bytes, hex)
    /// on first use with mode 0600. A master key that differs from the one the keystore was
    /// created with is an error here, before any data is touched.
    pub fn open(dir: &Path, master_key: Option<&str>) -> Result<Keystore> {
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
        let keystore = Keystore {
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

fn io_error(what: &str, path: &Path, e: std::io::Error) -> LakeError {
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

// ---------------------------------------------------------------------------------------------
// HubKey
// ---------------------------------------------------------------------------------------------

/// All key versions of one hub; encrypts with the current one, decrypts with whichever version a
/// token names.
///
/// A `HubKey` is a snapshot: get a fresh one from [`Keystore::hub_key`] before writing, so that a
/// rotation made by another process is used.
#[derive(Clone)]
pub struct HubKey {
    hub: Arc<str>,
    current: u32,
    keys: Arc<BTreeMap<u32, Secret<64>>>,
    /// Identifies the key material without revealing it (used for UDF equality).
    fingerprint: [u8; 16],
}

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubKey")
            .field("hub", &self.hub)
            .field("current", &self.current)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl HubKey {
    fn new(hub: &str, current: u32, keys: BTreeMap<u32, Secret<64>>) -> HubKey {
        let mut hasher = Sha256::new();
        hasher.update(b"basin hub key fingerprint\0");
        hasher.update(hub.as_bytes());
        for (version, key) in &keys {
            hasher.update(version.to_be_bytes());
            hasher.update(key.0);
        }
        let digest = hasher.finalize();
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        HubKey {
            hub: hub.into(),
            current,
            keys: Arc::new(keys),
            fingerprint,
        }
    }

    /// The hub this key belongs to.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The current version (the one new tokens are made with).
    pub fn version(&self) -> u32 {
        self.current
    }

    fn cipher(&self, version: u32) -> Option<Aes256Siv> {
        self.keys
            .get(&version)
            .map(|key| Aes256Siv::new((&key.0).into()))
    }

    fn current_cipher(&self) -> Aes256Siv {
        self.cipher(self.current)
            .expect("a HubKey always holds its current version")
    }

    fn seal(&self, cipher: &mut Aes256Siv, plaintext: &str) -> String {
        let ciphertext = cipher
            .encrypt([self.hub.as_bytes()], plaintext.as_bytes())
            .expect("AES-SIV with one associated-data item cannot fail");
        format!(
            "{TOKEN_PREFIX}{}:{}",
            self.current,
            URL_SAFE_NO_PAD.encode(ciphertext)
        )
    }

    /// Deterministic: equal plaintexts give equal tokens (so joins on encrypted columns work).
    /// Token format: `enc:v<version>:<base64url-no-pad of AES-SIV ciphertext>`; associated data =
    /// the hub name.
    pub fn encrypt(&self, plaintext: &str) -> String {
        self.seal(&mut self.current_cipher(), plaintext)
    }

    /// Decrypts a token made by any version of this hub's key. A value that is not a token, or
    /// fails authentication, gives [`LakeError::Key`] with a message that does not include the
    /// value.
    pub fn decrypt(&self, token: &str) -> Result<String> {
        let mut ciphers = BTreeMap::new();
        self.open_token(&mut ciphers, token)
    }

    /// Decrypts with a per-call cache of ciphers (one per version met).
    fn open_token(&self, ciphers: &mut BTreeMap<u32, Aes256Siv>, token: &str) -> Result<String> {
        let (version, ciphertext) = parse_token(token).ok_or_else(|| {
            key_error(format!(
                "a value is not an encrypted token of hub '{}' (expected enc:v<version>:<base64url>); was the column written without encryption?",
                self.hub
            ))
        })?;
        let plaintext = self.open_parsed(ciphers, version, &ciphertext)?;
        String::from_utf8(plaintext).map_err(|_| {
            key_error(format!(
                "an encrypted value of hub '{}' does not decrypt to UTF-8 text",
                self.hub
            ))
        })
    }

    fn open_parsed(
        &self,
        ciphers: &mut BTreeMap<u32, Aes256Siv>,
        version: u32,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        let cipher = match ciphers.entry(version) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let cipher = self.cipher(version).ok_or_else(|| {
                    key_error(format!(
                        "a value is encrypted with key version {version} of hub '{}', which this key does not have (it has versions {:?}); reload the key from the keystore, or the value comes from another keystore",
                        self.hub,
                        self.keys.keys().collect::<Vec<_>>()
                    ))
                })?;
                e.insert(cipher)
            }
        };
        cipher
            .decrypt([self.hub.as_bytes()], ciphertext)
            .map_err(|_| {
                key_error(format!(
                    "an encrypted value failed authentication under key version {version} of hub '{}': it was changed, or it was encrypted for another hub or with another keystore",
                    self.hub
                ))
            })
    }

    /// Whether `value` has the form of a token (`enc:v<version>:<base64url-no-pad>`, long enough
    /// to hold an AES-SIV tag). Says nothing about which key made it.
    pub fn is_token(value: &str) -> bool {
        parse_token(value).is_some()
    }

    /// Encrypts a Utf8/LargeUtf8/Utf8View array (nulls stay null) into a StringArray of tokens.
    /// Values that are already tokens of this hub's current version are kept as they are
    /// (idempotent); tokens of an older version of this hub are decrypted and re-encrypted with
    /// the current version (key rotation). Any other value, including a token of another hub,
    /// is encrypted as text. Non-string arrays are cast to Utf8 first (numbers become their text).
    pub fn encrypt_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut current = self.current_cipher();
        let mut ciphers = BTreeMap::new();
        map_strings(array, "encrypt", |value| {
            if let Some((version, ciphertext)) = parse_token(value)
                && self.keys.contains_key(&version)
                && let Ok(plaintext) = self.open_parsed(&mut ciphers, version, &ciphertext)
                && let Ok(plaintext) = std::str::from_utf8(&plaintext)
            {
                if version == self.current {
                    return Ok(value.to_string());
                }
                return Ok(self.seal(&mut current, plaintext));
            }
            Ok(self.seal(&mut current, value))
        })
    }

    /// Decrypts an array of tokens back to a StringArray (nulls stay null). A value that is not a
    /// token of this hub is an error naming its row, never its content.
    pub fn decrypt_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut ciphers = BTreeMap::new();
        map_strings(array, "decrypt", |value| {
            self.open_token(&mut ciphers, value)
        })
    }

    /// Returns `batch` with the named columns encrypted (their field becomes Utf8, nullability
    /// kept). Columns not in the batch are ignored.
    pub fn encrypt_batch(&self, batch: &RecordBatch, columns: &[String]) -> Result<RecordBatch> {
        let schema = encrypted_schema(batch.schema_ref(), columns);
        self.encrypt_batch_into(batch, columns, schema)
    }

    fn encrypt_batch_into(
        &self,
        batch: &RecordBatch,
        columns: &[String],
        schema: SchemaRef,
    ) -> Result<RecordBatch> {
        let arrays = batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| {
                if columns.iter().any(|c| c == field.name()) {
                    self.encrypt_array(array).map_err(|e| match e {
                        LakeError::Key(message) => {
                            key_error(format!("column '{}': {message}", field.name()))
                        }
                        other => other,
                    })
                } else {
                    Ok(array.clone())
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(schema, arrays, &options).map_err(|source| {
            LakeError::Arrow {
                action: "encrypting columns".into(),
                source,
            }
        })
    }
}

/// `schema` with the fields named in `columns` turned into Utf8 (name, nullability and metadata
/// kept).
fn encrypted_schema(schema: &SchemaRef, columns: &[String]) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| columns.iter().any(|c| c == f.name()))
    {
        return schema.clone();
    }
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            if columns.iter().any(|c| c == f.name()) {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<FieldRef>>();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Splits a token into its version and ciphertext.
fn parse_token(value: &str) -> Option<(u32, Vec<u8>)> {
    let rest = value.strip_prefix(TOKEN_PREFIX)?;
    let (version, encoded) = rest.split_once(':')?;
    if version.is_empty()
        || version.starts_with('0')
        || !version.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    let ciphertext = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    // Every AES-SIV ciphertext starts with a 16-byte tag.
    (ciphertext.len() >= 16).then_some((version, ciphertext))
}

/// Applies `f` to every non-null value of a string array (other types are cast to Utf8 first)
/// and collects the results into a StringArray.
fn map_strings(
    array: &ArrayRef,
    action: &str,
    mut f: impl FnMut(&str) -> Result<String>,
) -> Result<ArrayRef> {
    let mut builder = StringBuilder::with_capacity(array.len(), 0);
    let mut total = 0usize;
    let mut push = |row: usize, value: Option<&str>| -> Result<()> {
        match value {
            None => builder.append_null(),
            Some(value) => {
                let out = f(value).map_err(|e| match e {
                    LakeError::Key(message) => key_error(format!("row {row}: {message}")),
                    other => other,
                })?;
                total += out.len();
                if total > i32::MAX as usize {
                    return Err(key_error(format!(
                        "cannot {action} a batch of {} rows: the result exceeds 2 GiB; use smaller batches",
                        array.len()
                    )));
                }
                builder.append_value(out);
            }
        }
        Ok(())
    };
    match array.data_type() {
        DataType::Utf8 => {
            for (row, value) in array.as_string::<i32>().iter().enumerate() {
                push(row, value)?;
            }
        }
        DataType::LargeUtf8 => {
            for (row, value) in array.as_string::<i64>().iter().enumerate() {
                push(row, value)?;
            }
        }
        DataType::Utf8View => {
            for (row, value) in array.as_string_view().iter().enumerate() {
                push(row, value)?;
            }
        }
        other => {
            let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|source| {
                LakeError::Arrow {
                    action: format!("casting a {other} column to text to {action} it"),
                    source,
                }
            })?;
            for (row, value) in cast.as_string::<i32>().iter().enumerate() {
                push(row, value)?;
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// Wraps a stream so that every batch has `columns` encrypted under `key` (schema adjusted
/// accordingly: those fields become Utf8). If `columns` is empty, returns the stream unchanged.
pub fn encrypt_stream(
    input: SendableRecordBatchStream,
    key: HubKey,
    columns: Vec<String>,
) -> SendableRecordBatchStream {
    let input_schema = input.schema();
    if columns.is_empty()
        || !input_schema
            .fields()
            .iter()
            .any(|f| columns.iter().any(|c| c == f.name()))
    {
        return input;
    }
    let schema = encrypted_schema(&input_schema, &columns);
    let out_schema = schema.clone();
    let stream = input.map(move |batch| {
        let batch = batch?;
        key.encrypt_batch_into(&batch, &columns, out_schema.clone())
            .map_err(|e| DataFusionError::External(Box::new(e)))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

// ---------------------------------------------------------------------------------------------
// SQL functions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// `basin_encrypt` / `basin_decrypt` bound to one hub key.
#[derive(Debug)]
struct CryptoUdf {
    key: HubKey,
    direction: Direction,
    signature: Signature,
}

impl PartialEq for CryptoUdf {
    fn eq(&self, other: &Self) -> bool {
        self.direction == other.direction
            && self.key.hub == other.key.hub
            && self.key.current == other.key.current
            && self.key.fingerprint == other.key.fingerprint
    }
}

impl Eq for CryptoUdf {}

impl Hash for CryptoUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.direction.hash(state);
        self.key.hub.hash(state);
        self.key.current.hash(state);
    }
}

impl ScalarUDFImpl for CryptoUdf {
    fn name(&self) -> &str {
        match self.direction {
            Direction::Encrypt => "basin_encrypt",
            Direction::Decrypt => "basin_decrypt",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, nullable)))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(format!(
                "{} takes exactly one argument, got {}",
                self.name(),
                args.args.len()
            )));
        };
        let apply = |array: &ArrayRef| -> datafusion::error::Result<ArrayRef> {
            match self.direction {
                Direction::Encrypt => self.key.encrypt_array(array),
                Direction::Decrypt => self.key.decrypt_array(array),
            }
            .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        match arg {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(apply(array)?)),
            ColumnarValue::Scalar(scalar) => {
                let out = apply(&scalar.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

/// `basin_decrypt(token)`: the clear text (Utf8) of a token made by any version of `key`.
/// Immutable; a value that is not a token of the hub is an execution error.
pub fn decrypt_udf(key: HubKey) -> ScalarUDF {
    ScalarUDF::new_from_impl(CryptoUdf {
        key,
        direction: Direction::Decrypt,
        signature: Signature::string(1, Volatility::Immutable),
    })
}

/// `basin_encrypt(value)`: the token of `value` (cast to text) under the current version of
/// `key`, with the same rules as [`HubKey::encrypt_array`]. Immutable.
pub fn encrypt_udf(key: HubKey) -> ScalarUDF {
    ScalarUDF::new_from_impl(CryptoUdf {
        key,
        direction: Direction::Encrypt,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, LargeStringArray, StringArray, StringViewArray};
    use datafusion::prelude::SessionContext;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn store() -> (tempfile::TempDir, Keystore) {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(&dir.path().join("keys"), None).unwrap();
        (dir, ks)
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn round_trip() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        assert_eq!(key.version(), 1);
        for text in ["alice@example.com", "", "ünïcødé ✓", &"x".repeat(10_000)] {
            let token = key.encrypt(text);
            assert!(token.starts_with("enc:v1:"), "{token}");
            assert!(HubKey::is_token(&token));
            assert!(!token.contains(text) || text.is_empty());
            assert_eq!(key.decrypt(&token).unwrap(), text);
        }
        // A reopened keystore gives the same key.
        let again = Keystore::open(ks.dir(), None)
            .unwrap()
            .hub_key("main")
            .unwrap();
        assert_eq!(again.encrypt("a"), key.encrypt("a"));
    }

    #[test]
    fn deterministic() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        assert_eq!(key.encrypt("alice"), key.encrypt("alice"));
        assert_ne!(key.encrypt("alice"), key.encrypt("bob"));
        assert_ne!(key.encrypt("alice"), key.encrypt("alice "));
    }

    #[test]
    fn hubs_have_different_keys() {
        let (_d, ks) = store();
        let a = ks.hub_key("sales").unwrap();
        let b = ks.hub_key("hr").unwrap();
        let token = a.encrypt("alice");
        assert_ne!(token, b.encrypt("alice"));
        let err = b.decrypt(&token).unwrap_err().to_string();
        assert!(err.contains("failed authentication"), "{err}");
        // Invalid hub names never reach the file system.
        assert!(ks.hub_key("../etc").is_err());
        assert!(ks.hub_key("").is_err());
    }

    #[test]
    fn rotation() {
        let (_d, ks) = store();
        let v1 = ks.hub_key("main").unwrap();
        let old = v1.encrypt("alice");
        let v2 = ks.rotate("main").unwrap();
        assert_eq!(v2.version(), 2);
        assert_eq!(ks.hub_key("main").unwrap().version(), 2);
        let new = v2.encrypt("alice");
        assert!(new.starts_with("enc:v2:"), "{new}");
        assert_ne!(new, old);
        assert_eq!(v2.decrypt(&old).unwrap(), "alice");
        assert_eq!(v2.decrypt(&new).unwrap(), "alice");
        // A stale key cannot read the new version, and says what to do.
        let err = v1.decrypt(&new).unwrap_err().to_string();
        assert!(err.contains("version 2") && err.contains("reload"), "{err}");

        // encrypt_array rewrites old tokens, keeps current ones and encrypts clear text.
        let input: ArrayRef = Arc::new(StringArray::from(vec![
            Some(old.as_str()),
            Some(new.as_str()),
            Some("bob"),
            None,
        ]));
        let out = v2.encrypt_array(&input).unwrap();
        let out_values = strings(&out);
        assert_eq!(out_values[0].as_deref(), Some(new.as_str()));
        assert_eq!(out_values[1].as_deref(), Some(new.as_str()));
        assert_eq!(out_values[2], Some(v2.encrypt("bob")));
        assert_eq!(out_values[3], None);
        // Idempotent.
        assert_eq!(strings(&v2.encrypt_array(&out).unwrap()), out_values);
        // Rotating again keeps every version.
        let v3 = ks.rotate("main").unwrap();
        assert_eq!(v3.version(), 3);
        assert_eq!(v3.decrypt(&old).unwrap(), "alice");
        assert_eq!(v3.decrypt(&new).unwrap(), "alice");
        // Rotating a hub without a key creates v1 then v2.
        assert_eq!(ks.rotate("fresh").unwrap().version(), 2);
    }

    #[test]
    fn concurrent_creation_and_rotation_lose_no_version() {
        let (_d, ks) = store();
        let tokens: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| ks.hub_key("main").unwrap().encrypt("alice")))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
        let mut versions: Vec<u32> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| ks.rotate("main").unwrap().version()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        versions.sort();
        assert_eq!(versions, vec![2, 3, 4, 5]);
        let key = ks.hub_key("main").unwrap();
        assert_eq!(key.version(), 5);
        assert_eq!(key.decrypt(&tokens[0]).unwrap(), "alice");
    }

    #[test]
    fn tampered_token_is_rejected_without_the_value() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        let token = key.encrypt("secret-ssn-123");
        let mut chars: Vec<char> = token.chars().collect();
        let i = "enc:v1:".len() + 5;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let err = key.decrypt(&tampered).unwrap_err();
        assert!(matches!(err, LakeError::Key(_)));
        let msg = err.to_string();
        assert!(msg.contains("failed authentication"), "{msg}");
        assert!(
            !msg.contains(&tampered) && !msg.contains("secret-ssn"),
            "{msg}"
        );

        for bad in [
            "secret-ssn-123",
            "enc:v1:",
            "enc:v1:!!!",
            "enc:vx:AAAA",
            "enc:v01:AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!HubKey::is_token(bad), "{bad}");
            let msg = key.decrypt(bad).unwrap_err().to_string();
            assert!(msg.contains("not an encrypted token"), "{msg}");
            assert!(!msg.contains(bad), "{msg}");
        }
        let array: ArrayRef = Arc::new(StringArray::from(vec![token.as_str(), "secret-ssn-123"]));
        let msg = key.decrypt_array(&array).unwrap_err().to_string();
        assert!(
            msg.contains("row 1") && !msg.contains("secret-ssn"),
            "{msg}"
        );
    }

    #[test]
    fn master_key_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let hex_dir = dir.path().join("hex");
        let key = Keystore::open(&hex_dir, Some(HEX_KEY))
            .unwrap()
            .hub_key("main")
            .unwrap();
        assert!(!hex_dir.join(MASTER_KEY_FILE).exists());
        // The same 32 bytes in base64 open the same keystore.
        let bytes = hex::decode(HEX_KEY).unwrap();
        let b64 = STANDARD.encode(&bytes);
        let again = Keystore::open(&hex_dir, Some(&format!(" {b64}\n")))
            .unwrap()
            .hub_key("main")
            .unwrap();
        assert_eq!(again.encrypt("x"), key.encrypt("x"));
        // Uppercase hex works too.
        Keystore::open(&hex_dir, Some(&HEX_KEY.to_uppercase())).unwrap();

        for bad in [
            "",
            "short",
            &HEX_KEY[..62],
            &STANDARD.encode([1u8; 16]),
            &format!("{HEX_KEY}00"),
        ] {
            let err = Keystore::open(&dir.path().join("bad"), Some(bad)).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, LakeError::Key(_)));
            assert!(
                msg.contains("BASIN_MASTER_KEY") && msg.contains("64 hex"),
                "{msg}"
            );
            assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
        }
        // Without the env key, a keystore created with one refuses to invent a new master key.
        let msg = Keystore::open(&hex_dir, None).unwrap_err().to_string();
        assert!(msg.contains("BASIN_MASTER_KEY"), "{msg}");
        assert!(!hex_dir.join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn wrong_master_key_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        Keystore::open(&path, Some(HEX_KEY))
            .unwrap()
            .hub_key("main")
            .unwrap();
        let other = "ff".repeat(32);
        let msg = Keystore::open(&path, Some(&other)).unwrap_err().to_string();
        assert!(
            msg.contains("BASIN_MASTER_KEY") && msg.contains("not the master key"),
            "{msg}"
        );

        // Generated master key file replaced by another key.
        let (_d, ks) = store();
        ks.hub_key("main").unwrap();
        fs::write(ks.dir().join(MASTER_KEY_FILE), format!("{other}\n")).unwrap();
        let msg = Keystore::open(ks.dir(), None).unwrap_err().to_string();
        assert!(
            msg.contains("master.key") && msg.contains("not the master key"),
            "{msg}"
        );
        // Even without the check file, unwrapping hub keys fails clearly.
        fs::remove_file(ks.dir().join(CHECK_FILE)).unwrap();
        let reopened = Keystore::open(ks.dir(), None).unwrap();
        let msg = reopened.hub_key("main").unwrap_err().to_string();
        assert!(
            msg.contains("cannot unwrap") && msg.contains("master key"),
            "{msg}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, ks) = store();
        ks.hub_key("main").unwrap();
        ks.rotate("main").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(ks.dir()), 0o700);
        for name in [
            MASTER_KEY_FILE,
            CHECK_FILE,
            "hub-main.json",
            "hub-main.lock",
        ] {
            assert_eq!(mode(&ks.dir().join(name)), 0o600, "{name}");
        }
        // No temporary files are left behind.
        let names: Vec<String> = fs::read_dir(ks.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        let text = fs::read_to_string(ks.dir().join("hub-main.json")).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(file["current"], 2);
        assert!(file["keys"]["1"].is_string() && file["keys"]["2"].is_string());
    }

    #[test]
    fn debug_hides_key_bytes() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        let text = format!("{key:?} {ks:?}");
        assert!(text.contains("main"));
        let raw = &key.keys[&1].0;
        assert!(!text.contains(&hex::encode(raw)));
        assert!(
            !text.contains(&format!("{:?}", raw[..4].to_vec())),
            "{text}"
        );
    }

    #[test]
    fn arrays_of_all_string_types_and_numbers() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        let inputs: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None, Some("42")])),
            Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("42")])),
            Arc::new(StringViewArray::from(vec![Some("a"), None, Some("42")])),
        ];
        let expected = vec![Some(key.encrypt("a")), None, Some(key.encrypt("42"))];
        for input in &inputs {
            let out = key.encrypt_array(input).unwrap();
            assert_eq!(out.data_type(), &DataType::Utf8);
            assert_eq!(strings(&out), expected);
            let back = key.decrypt_array(&out).unwrap();
            assert_eq!(
                strings(&back),
                vec![Some("a".to_string()), None, Some("42".to_string())]
            );
        }
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
        let out = key.encrypt_array(&numbers).unwrap();
        assert_eq!(strings(&out), vec![Some(key.encrypt("42")), None]);
    }

    fn people() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("email", DataType::Utf8View, true),
            Field::new("ssn", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringViewArray::from(vec![Some("a@x"), None])),
                Arc::new(Int64Array::from(vec![111, 222])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn batches_and_streams() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        let columns = vec![
            "email".to_string(),
            "ssn".to_string(),
            "missing".to_string(),
        ];
        let out = key.encrypt_batch(&people(), &columns).unwrap();
        let schema = out.schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert!(schema.field(1).is_nullable());
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
        assert!(!schema.field(2).is_nullable());
        assert_eq!(strings(out.column(1)), vec![Some(key.encrypt("a@x")), None]);
        assert_eq!(
            strings(&key.decrypt_array(out.column(2)).unwrap()),
            vec![Some("111".to_string()), Some("222".to_string())]
        );

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let batch = people();
            let input: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
                batch.schema(),
                futures::stream::iter(vec![Ok(batch.clone()), Ok(batch)]),
            ));
            let stream = encrypt_stream(input, key.clone(), columns.clone());
            assert_eq!(stream.schema(), out.schema());
            let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
            assert_eq!(batches.len(), 2);
            assert_eq!(batches[1], out);

            // No columns: the very same stream comes back.
            let batch = people();
            let input: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
                batch.schema(),
                futures::stream::iter(vec![Ok(batch.clone())]),
            ));
            let same = encrypt_stream(input, key.clone(), vec![]);
            assert_eq!(same.schema(), batch.schema());
        });
    }

    #[test]
    fn sql_functions() {
        let (_d, ks) = store();
        let key = ks.hub_key("main").unwrap();
        let ctx = SessionContext::new();
        ctx.register_udf(encrypt_udf(key.clone()));
        ctx.register_udf(decrypt_udf(key.clone()));
        ctx.register_batch("people", people()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Scalars.
            let batches = ctx
                .sql("SELECT basin_encrypt('alice') AS t, basin_decrypt(basin_encrypt('alice')) AS c, basin_decrypt(NULL) AS n")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let row = &batches[0];
            let t = arrow::compute::cast(row.column(0), &DataType::Utf8).unwrap();
            let c = arrow::compute::cast(row.column(1), &DataType::Utf8).unwrap();
            assert_eq!(strings(&t), vec![Some(key.encrypt("alice"))]);
            assert_eq!(strings(&c), vec![Some("alice".to_string())]);
            assert!(row.column(2).is_null(0));

            // Arrays, numbers, and a filter on the encrypted value.
            let batches = ctx
                .sql("SELECT id, basin_decrypt(basin_encrypt(email)) AS e, basin_decrypt(basin_encrypt(ssn)) AS s FROM people WHERE basin_encrypt(email) = basin_encrypt('a@x')")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
            let b = &batches[0];
            let e = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let s = arrow::compute::cast(b.column(2), &DataType::Utf8).unwrap();
            assert_eq!(strings(&e), vec![Some("a@x".to_string())]);
            assert_eq!(strings(&s), vec![Some("111".to_string())]);

            // Decrypting clear text is an execution error that does not show the value.
            let err = ctx
                .sql("SELECT basin_decrypt('top-secret')")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("not an encrypted token") && !err.contains("top-secret"), "{err}");
        });

        // Equality of the UDFs follows the key.
        assert_eq!(decrypt_udf(key.clone()), decrypt_udf(key.clone()));
        assert_ne!(decrypt_udf(key.clone()), encrypt_udf(key.clone()));
        let other = ks.hub_key("other").unwrap();
        assert_ne!(decrypt_udf(key), decrypt_udf(other));
    }
}
