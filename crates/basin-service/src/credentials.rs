//! Credentials: argon2 password hashes and Basin tokens (stored only as SHA-256 hashes).

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use basin_catalog::Catalog;
use basin_catalog::access::{Token, TokenKind};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Result, ServiceError};

/// Prefix of Basin tokens, so that they are recognisable (and found by secret scanners).
pub const TOKEN_PREFIX: &str = "bsn_";

/// Longest password accepted: argon2 hashes the whole input, so an unbounded one is work an
/// attacker chooses.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes a password with argon2id and a random salt. CPU-heavy: call it off async workers.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < 8 {
        return Err(ServiceError::Invalid(
            "a password needs at least 8 characters".into(),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::Invalid(format!(
            "a password may have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ServiceError::Invalid(format!("cannot salt the password: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches an argon2 hash. CPU-heavy: call it off async workers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
}

/// A random password (for the first `admin`).
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a token's secret: tokens are random, so a fast hash is enough.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Issues a token: stores its hash, returns the secret (shown once) and the stored record.
pub async fn issue_token(
    catalog: &Catalog,
    owner: &str,
    name: &str,
    kind: TokenKind,
    ttl: Duration,
) -> Result<(String, Token)> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let mut id = [0u8; 8];
    rand::rng().fill_bytes(&mut id);
    let now = chrono::Utc::now();
    let expires = now
        + chrono::Duration::from_std(ttl)
            .map_err(|_| ServiceError::Invalid("token lifetime is too long".into()))?;
    let token = Token {
        id: hex::encode(id),
        name: name.to_string(),
        owner: owner.to_string(),
        kind,
        secret_hash: token_hash(&secret),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        revoked_at: None,
    };
    catalog.create_token(&token).await?;
    Ok((secret, token))
}
