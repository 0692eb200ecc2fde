//! Keys for PII encryption: a keystore behind a trait (files now, a KMS later), per-hub keys
//! with versions, and the Arrow kernels that turn text into AES-SIV tokens and back.
//!
//! A [`HubKey`] encrypts text into tokens `enc:v<version>:<base64url>` with AES-SIV-256 (RFC 5297)
//! and the hub name as associated data: equal clear texts give equal tokens, so joins and
//! equality filters on encrypted columns work, and any change to a token is detected on
//! decryption. Key rotation adds a version and makes it current; older versions stay so that
//! old data still decrypts, and [`HubKey::reencrypt_array`] moves tokens to the current version.

mod error;
mod keystore;
#[cfg(test)]
mod tests;
mod token;

pub use error::KeyError;
pub use keystore::{FileKeystore, KeyBackend, Keystore, MASTER_KEY_ENV};
pub use token::{HubKey, TOKEN_PREFIX, encrypted_schema};

/// Result type of this crate.
pub type Result<T, E = KeyError> = std::result::Result<T, E>;
