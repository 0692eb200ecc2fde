//! Hub keys and the Arrow kernels that encrypt and decrypt columns with them.

use std::collections::BTreeMap;
use std::sync::Arc;

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringBuilder};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::key_error;
use crate::{KeyError, Result};

/// Prefix of every encrypted value.
pub const TOKEN_PREFIX: &str = "enc:v";

/// Key bytes that never show up in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> std::fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{N}-byte secret>")
    }
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
    pub(crate) keys: Arc<BTreeMap<u32, Secret<64>>>,
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
    pub(crate) fn new(hub: &str, current: u32, keys: BTreeMap<u32, Secret<64>>) -> HubKey {
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

    /// Identifies the key material without revealing it.
    pub fn fingerprint(&self) -> [u8; 16] {
        self.fingerprint
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
    /// fails authentication, gives [`KeyError::Key`] with a message that does not include the
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

    /// Encrypts a Utf8/LargeUtf8/Utf8View array (nulls stay null) into a StringArray of tokens
    /// of the current version. Every value is encrypted, tokens included: a value that merely
    /// looks like a token (copied from a column one may not read in clear) must never be stored
    /// as if Basin had encrypted it, or decrypting it would reveal someone else's value.
    /// Non-string arrays are cast to Utf8 first (numbers become their text).
    pub fn encrypt_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut current = self.current_cipher();
        map_strings(array, "encrypt", |value| Ok(self.seal(&mut current, value)))
    }

    /// Moves the tokens of an encrypted column to the current key version (key rotation):
    /// tokens of an older version are decrypted and encrypted again, current ones are kept. A
    /// value that is not a token of this hub (clear text written before encryption) is
    /// encrypted.
    pub fn reencrypt_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut current = self.current_cipher();
        let mut ciphers = BTreeMap::new();
        map_strings(array, "re-encrypt", |value| {
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

    /// How a reader without the right to see clear values reads an encrypted column of an
    /// older version: tokens as they are, and values stored before the column was encrypted
    /// (clear text) as their tokens, never in clear. Only the form of a token is checked: this
    /// runs on every value of a scan.
    pub fn shield_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut current = self.current_cipher();
        map_strings(array, "protect", |value| {
            Ok(if parse_token(value).is_some() {
                value.to_string()
            } else {
                self.seal(&mut current, value)
            })
        })
    }

    /// How a reader who may see clear values reads an encrypted column of an older version:
    /// tokens decrypted, values stored before the column was encrypted as they are.
    pub fn reveal_array(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let mut ciphers = BTreeMap::new();
        map_strings(array, "decrypt", |value| {
            if parse_token(value).is_some() {
                self.open_token(&mut ciphers, value)
            } else {
                Ok(value.to_string())
            }
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

    /// [`HubKey::encrypt_batch`] into a schema computed once with [`encrypted_schema`].
    pub fn encrypt_batch_into(
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
                        KeyError::Key(message) => {
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
            KeyError::Arrow {
                action: "encrypting columns".into(),
                source,
            }
        })
    }
}

/// `schema` with the fields named in `columns` turned into Utf8 (name, nullability and metadata
/// kept).
pub fn encrypted_schema(schema: &SchemaRef, columns: &[String]) -> SchemaRef {
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
                    KeyError::Key(message) => key_error(format!("row {row}: {message}")),
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
            let cast =
                arrow::compute::cast(array, &DataType::Utf8).map_err(|source| KeyError::Arrow {
                    action: format!("casting a {other} column to text to {action} it"),
                    source,
                })?;
            for (row, value) in cast.as_string::<i32>().iter().enumerate() {
                push(row, value)?;
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}
