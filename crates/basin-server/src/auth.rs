//! Authentication: password checks on the blocking pool, Basin tokens (see
//! [`basin_service::credentials`]), OIDC bearer JWTs, and the rate limit on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use basin_catalog::Catalog;
use basin_service::credentials::{token_hash, verify_password};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

use crate::error::ApiError;

/// Checks a login's password against the user's hash (`None`: no such user) on the blocking
/// pool, at most as many at once as `slots` allows: argon2 holds a core for tens of
/// milliseconds, and on the async workers parallel logins would stall every other request.
pub(crate) async fn verify_login(
    slots: &crate::limits::Slots,
    password: String,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    let _permit = slots.acquire().await?;
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            // Same work for unknown users, so that timing does not tell which users exist.
            let _ = verify_password(
                &password,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3s6mMUyTvMCvXeyPZxX5S6tSbKj/1sR0LJjfWP4Fx9M",
            );
            false
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("the password check failed: {e}")))
}

/// Who a request is from, once authenticated.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    /// Roles granted by the identity provider (OIDC), on top of the catalog's memberships.
    pub extra_roles: Vec<String>,
}

/// Checks a Basin token; the error never says more than "invalid or expired".
pub async fn check_token(catalog: &Catalog, secret: &str) -> Result<Identity, ApiError> {
    let invalid = || {
        ApiError::unauthorized(
            "the bearer token is invalid, expired or revoked; sign in again or create a new token",
        )
    };
    match catalog.token_user(&token_hash(secret)).await? {
        Some(name) => Ok(Identity {
            name,
            extra_roles: Vec::new(),
        }),
        None => Err(invalid()),
    }
}

/// Admits an identity from the OIDC provider. Its name may not be a local (password) user's or
/// a role's, as a user acts in the role named after itself: an IdP account called `admin`
/// would otherwise be an administrator. A disabled catalog user stays locked out.
pub async fn admit_federated(catalog: &Catalog, identity: Identity) -> Result<Identity, ApiError> {
    let refuse = |why: &str| {
        ApiError::unauthorized(format!(
            "the bearer JWT is not accepted: its user name '{}' {why}",
            identity.name
        ))
    };
    if identity.name == basin_catalog::access::PUBLIC_ROLE
        || catalog.role(&identity.name).await?.is_some()
    {
        return Err(refuse(
            "is a Basin role; map another claim with --oidc-user-claim",
        ));
    }
    match catalog.user(&identity.name).await? {
        Some(u) if u.has_password => Err(refuse(
            "belongs to a local Basin user; map another claim with --oidc-user-claim",
        )),
        Some(u) if u.disabled => Err(refuse("is disabled")),
        _ => Ok(Identity {
            extra_roles: claimed_roles(catalog, &identity.extra_roles).await?,
            ..identity
        }),
    }
}

/// Most role names taken from one token's roles claim.
const MAX_CLAIMED_ROLES: usize = 64;

/// The names of a roles claim that are Basin roles. Anything else is ignored, a user's name in
/// particular: a user's personal grants belong to the role named after it, and a federated
/// identity claiming it would borrow them. The one exception is the administrators' role
/// `admin`, which is a role first (the first user shares its name).
async fn claimed_roles(catalog: &Catalog, claimed: &[String]) -> Result<Vec<String>, ApiError> {
    let mut roles: Vec<String> = Vec::new();
    for name in claimed.iter().take(MAX_CLAIMED_ROLES) {
        if roles.contains(name) || basin_core::Name::parse("role", name).is_err() {
            continue;
        }
        let is_role = catalog.role(name).await?.is_some();
        let is_user =
            name != basin_catalog::access::ADMIN_ROLE && catalog.user(name).await?.is_some();
        if is_role && !is_user {
            roles.push(name.clone());
        } else {
            tracing::debug!(role = %name, is_user, "ignoring a roles-claim value that is not a Basin role");
        }
    }
    if claimed.len() > MAX_CLAIMED_ROLES {
        tracing::warn!(
            claimed = claimed.len(),
            "a token's roles claim has more than {MAX_CLAIMED_ROLES} values; the rest are ignored"
        );
    }
    Ok(roles)
}

/// Where the identity provider's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

/// OIDC bearer tokens: validated against issuer, audience and the provider's keys.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    /// The claim whose values (a string or a list) are Basin role names.
    pub roles_claim: String,
    /// The claim that names the user.
    pub user_claim: String,
    /// How long a fetched key set is trusted before it is fetched again, so that a key the
    /// provider has withdrawn stops being accepted.
    pub jwks_refresh: Duration,
    /// The portal's client at the provider ("Sign in with SSO"); `None`: bearer JWTs only.
    pub client: Option<OidcClient>,
}

/// The portal's registration at the OIDC provider (authorization-code flow with PKCE).
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub id: String,
    /// Confidential clients' secret; `None` for a public client (PKCE alone).
    pub secret: Option<String>,
    /// The callback URL registered at the provider (`https://host/auth/callback`); `None`:
    /// derived from each request's `Host` (and `X-Forwarded-Proto`).
    pub redirect_url: Option<String>,
}

/// Clock difference tolerated on `exp` and `nbf`.
const CLOCK_LEEWAY_SECS: u64 = 30;

/// Longest the server waits for the provider's key set at start-up.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest time between two fetches of the key set prompted by a token that names an unknown
/// key: forged tokens cannot make the server hammer the provider.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// A validator for OIDC JWTs with the provider's key set loaded. The key set is fetched again
/// when it is older than [`OidcConfig::jwks_refresh`] and when a token names a key it lacks, as
/// providers rotate their keys.
pub struct Oidc {
    config: OidcConfig,
    /// The key set and when it was fetched.
    keys: RwLock<(Arc<JwkSet>, Instant)>,
    /// When a fetch was last tried; held while fetching, so one fetch runs at a time.
    fetched: tokio::sync::Mutex<Instant>,
    /// The discovery document, once read (for the portal's sign-in).
    discovery: tokio::sync::OnceCell<Discovery>,
}

/// Reads the key set from the file or URL.
async fn fetch_keys(config: &OidcConfig) -> Result<JwkSet, String> {
    let text = match &config.jwks {
        JwksSource::File(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the JWKS file {}: {e}", p.display()))?,
        JwksSource::Url(u) => {
            // Without a timeout, a provider that accepts the connection but never answers
            // would hold the server's start-up forever, silently.
            let failed = |what: &str, e: reqwest::Error| {
                if e.is_timeout() {
                    return format!(
                        "cannot {what} the JWKS from {u}: no answer within {} s",
                        JWKS_TIMEOUT.as_secs()
                    );
                }
                // reqwest's message omits the cause ("connection refused", …): add it.
                let mut cause = std::error::Error::source(&e);
                while let Some(deeper) = cause.and_then(|c| c.source()) {
                    cause = Some(deeper);
                }
                match cause {
                    Some(cause) => format!("cannot {what} the JWKS from {u}: {e} ({cause})"),
                    None => format!("cannot {what} the JWKS from {u}: {e}"),
                }
            };
            reqwest::Client::builder()
                .timeout(JWKS_TIMEOUT)
                .build()
                .map_err(|e| failed("fetch", e))?
                .get(u)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| failed("fetch", e))?
                .text()
                .await
                .map_err(|e| failed("read", e))?
        }
    };
    serde_json::from_str(&text).map_err(|e| format!("the JWKS is not a valid key set: {e}"))
}

impl Oidc {
    /// Loads the key set (from the file or URL).
    pub async fn load(config: OidcConfig) -> Result<Oidc, String> {
        let keys = fetch_keys(&config).await?;
        Ok(Oidc {
            config,
            keys: RwLock::new((Arc::new(keys), Instant::now())),
            fetched: tokio::sync::Mutex::new(Instant::now()),
            discovery: tokio::sync::OnceCell::new(),
        })
    }

    /// The key set, fetched again first when it is older than the refresh interval or lacks
    /// `kid` (either at most every [`JWKS_REFRESH_INTERVAL`]); on a failed fetch the keys held
    /// are kept (the provider being down must not lock everyone out).
    async fn keys_for(&self, kid: Option<&str>) -> Arc<JwkSet> {
        let current = || self.keys.read().expect("keys lock").clone();
        let stale = || current().1.elapsed() >= self.config.jwks_refresh;
        let lacks = || kid.is_some_and(|k| current().0.find(k).is_none());
        if !stale() && !lacks() {
            return current().0;
        }
        let mut fetched = if lacks() {
            self.fetched.lock().await
        } else {
            // Merely stale: while another request fetches, go on with the keys held.
            match self.fetched.try_lock() {
                Ok(f) => f,
                Err(_) => return current().0,
            }
        };
        if (!stale() && !lacks()) || fetched.elapsed() < JWKS_REFRESH_INTERVAL {
            return current().0;
        }
        *fetched = Instant::now();
        match fetch_keys(&self.config).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.keys.write().expect("keys lock") = (keys.clone(), Instant::now());
                keys
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh the OIDC key set; keeping the old one");
                current().0
            }
        }
    }

    /// Whether the portal offers "Sign in with SSO" (a client is configured).
    pub fn signs_in(&self) -> bool {
        self.config.client.is_some()
    }

    /// Validates a bearer JWT (signature, `iss`, `aud`, `exp`, `nbf`) and maps its claims to an
    /// identity.
    pub async fn check(&self, jwt: &str) -> Result<Identity, ApiError> {
        let claims = self
            .decode(jwt, &self.config.audience, "bearer JWT")
            .await?;
        self.identity(&claims, "bearer JWT")
    }

    /// Validates an ID token of the portal's sign-in (as [`Oidc::check`], for the portal's
    /// client id as audience, and with the sign-in's `nonce`).
    pub async fn check_id_token(&self, jwt: &str, nonce: &str) -> Result<Identity, ApiError> {
        let client = self
            .config
            .client
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("no OIDC client is configured"))?;
        let claims = self.decode(jwt, &client.id, "ID token").await?;
        let sent = claims.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
        if nonce.is_empty() || !crate::portal::constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
            return Err(ApiError::unauthorized(
                "the ID token is not accepted: its nonce is not this sign-in's",
            ));
        }
        self.identity(&claims, "ID token")
    }

    /// The claims of a JWT whose signature, issuer, audience and times are valid.
    async fn decode(
        &self,
        jwt: &str,
        audience: &str,
        what: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let invalid =
            |why: &str| ApiError::unauthorized(format!("the {what} is not accepted: {why}"));
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid("it is malformed"))?;
        let keys = self.keys_for(header.kid.as_deref()).await;
        let key = match &header.kid {
            Some(kid) => keys.find(kid),
            None => keys.keys.first(),
        }
        .ok_or_else(|| invalid("it is signed with an unknown key"))?;
        let decoding =
            DecodingKey::from_jwk(key).map_err(|_| invalid("the provider's key is unusable"))?;
        let key_alg = key
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<jsonwebtoken::Algorithm>().ok());
        if key_alg.is_some_and(|a| a != header.alg) {
            return Err(invalid("its algorithm does not match the provider's key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &decoding, &validation).map_err(
            |e| {
                use jsonwebtoken::errors::ErrorKind;
                invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "it has expired",
                    ErrorKind::ImmatureSignature => {
                        "it is not valid yet (its 'nbf' is in the future)"
                    }
                    ErrorKind::InvalidAudience => "it is for another audience",
                    ErrorKind::InvalidIssuer => "it is from another issuer",
                    ErrorKind::InvalidSignature => "its signature is invalid",
                    _ => "it is invalid",
                })
            },
        )?;
        Ok(data.claims)
    }

    /// The user (named by the user claim) and the claimed roles of valid claims.
    fn identity(&self, claims: &serde_json::Value, what: &str) -> Result<Identity, ApiError> {
        let invalid =
            |why: &str| ApiError::unauthorized(format!("the {what} is not accepted: {why}"));
        let name = claims
            .get(&self.config.user_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid(&format!("it has no '{}' claim", self.config.user_claim)))?;
        let name =
            basin_core::Name::parse("user", &name.to_lowercase().replace(['.', '-', '@'], "_"))
                .map_err(|_| invalid("its user name is not a valid Basin name"))?
                .to_string();
        let extra_roles = match claims.get(&self.config.roles_claim) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity { name, extra_roles })
    }

    /// The portal's client (when "Sign in with SSO" is configured).
    pub fn client(&self) -> Option<&OidcClient> {
        self.config.client.as_ref()
    }

    /// The provider's endpoints, from its discovery document (fetched once, on first use).
    pub async fn discovery(&self) -> Result<&Discovery, ApiError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let unavailable = |e: String| {
                    tracing::warn!(%url, error = %e, "cannot read the OIDC discovery document");
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "oidc_unavailable",
                        format!(
                            "the identity provider's discovery document ({url}) cannot be read: {e}"
                        ),
                    )
                };
                let doc: Discovery = reqwest::Client::builder()
                    .timeout(JWKS_TIMEOUT)
                    .build()
                    .map_err(|e| unavailable(e.to_string()))?
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| unavailable(e.to_string()))?
                    .json()
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                // OpenID Connect Discovery §4.3: the document must name the issuer asked.
                if doc.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
                    return Err(unavailable(format!(
                        "it names the issuer '{}', not '{}'",
                        doc.issuer, self.config.issuer
                    )));
                }
                Ok(doc)
            })
            .await
    }
}

/// The parts of a provider's `/.well-known/openid-configuration` the portal uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

/// Failed logins per (user, address): after [`MAX_FAILURES`] within [`WINDOW`], further
/// attempts are refused until the window has passed.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, IpAddr), (u32, Instant)>>,
}

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(300);

impl LoginLimiter {
    /// Seconds to wait when the user/address pair is locked out.
    pub fn locked(&self, user: &str, ip: IpAddr) -> Option<u64> {
        let map = self.failures.lock().expect("limiter lock");
        match map.get(&(user.to_string(), ip)) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Some((WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => None,
        }
    }

    pub fn failed(&self, user: &str, ip: IpAddr) {
        let mut map = self.failures.lock().expect("limiter lock");
        let entry = map
            .entry((user.to_string(), ip))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
    }

    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        self.failures
            .lock()
            .expect("limiter lock")
            .remove(&(user.to_string(), ip));
    }
}
