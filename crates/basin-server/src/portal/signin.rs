//! Sign-in (local users; OIDC when configured) and sign-out.
//!
//! A sign-in creates a web session: a random id in an `HttpOnly`, `SameSite=Lax` cookie (also
//! `Secure` behind HTTPS), stored in the catalog only as its hash, with its own CSRF token and
//! an expiry (`--session-hours`). Sign-out deletes it, so a copied cookie is useless afterwards.
//! The sign-in form itself is protected by a double-submit token (cookie [`SIGNIN_COOKIE`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{
    CSRF_FIELD, PortalError, PortalResult, SESSION_COOKIE, Viewer, constant_time_eq, cookie,
    public_page, random_secret, verify_csrf,
};
use crate::{State, auth};

/// The double-submit cookie of the sign-in form (it has no session to carry a token yet).
const SIGNIN_COOKIE: &str = "basin_signin";

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after signing in: only a path on this server (never `//host` or a scheme).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/signin")
                && !n.starts_with("/signout") =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so).
pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with the portal's flags.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    same_site: &str,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .expect("cookie values are URL-safe")
}

/// `GET /signin`: the form (and the SSO button when an OIDC provider is configured).
pub(crate) async fn form(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    render_form(&state, &headers, q.next.as_deref(), None, StatusCode::OK)
}

fn render_form(
    state: &State,
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = cookie(headers, SIGNIN_COOKIE).unwrap_or_else(random_secret);
    let next = safe_next(next);
    let sso = state.oidc.as_ref().is_some_and(|o| o.signs_in());
    let body: Markup = html! {
        section.signin {
            h1 { "Sign in to Basin" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/signin" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                input type="hidden" name="next" value=(next);
                p {
                    label for="user" { "User name" }
                    input #user name="user" type="text" autocomplete="username" required autofocus;
                }
                p {
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                }
                p { button type="submit" { "Sign in" } }
            }
            @if sso {
                p { a.button href={ "/auth/sso?next=" (super::url_encode(&next)) } { "Sign in with SSO" } }
            }
        }
    };
    let mut response = (status, public_page("Sign in", body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SIGNIN_COOKIE,
            &token,
            "/",
            3600,
            "Strict",
            over_https(headers),
        ),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct SigninForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /signin`: a local user's name and password; the REST login's rate limit applies.
pub(crate) async fn submit(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SigninForm>,
) -> Response {
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return PortalError::new(
            StatusCode::FORBIDDEN,
            "This sign-in form has expired. Open the sign-in page again.",
        )
        .into_response();
    }
    let next = f.next.as_deref();
    if f.user.is_empty() || f.user.len() > crate::limits::MAX_USER_NAME_BYTES {
        return render_form(
            &state,
            &headers,
            next,
            Some("Enter your user name (at most 128 bytes)."),
            StatusCode::BAD_REQUEST,
        );
    }
    let ip = addr.ip();
    let source = ip.to_string();
    let hub = &state.hub;
    if let Some(wait) = state.limiter.locked(&f.user, ip) {
        hub.audit(
            &f.user,
            &source,
            "login",
            &f.user,
            "denied",
            json!({"reason": "rate limited", "via": "portal"}),
        )
        .await;
        return render_form(
            &state,
            &headers,
            next,
            Some(&format!(
                "Too many failed sign-ins for this user from this address; try again in {wait} s."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    // Disabled users have no password hash to check against: they cannot sign in.
    let hash = match hub.catalog().password_hash(&f.user).await {
        Ok(h) => h,
        Err(e) => return PortalError::from(crate::ApiError::from(e)).into_response(),
    };
    let ok = match auth::verify_login(&state.hash_slots, f.password.clone(), hash).await {
        Ok(ok) => ok,
        Err(e) => return PortalError::from(e).into_response(),
    };
    if !ok {
        state.limiter.failed(&f.user, ip);
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hub.audit(
            &f.user,
            &source,
            "login",
            &f.user,
            "denied",
            json!({"via": "portal"}),
        )
        .await;
        return render_form(
            &state,
            &headers,
            next,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    state.limiter.succeeded(&f.user, ip);
    match start_session(&state, &headers, &f.user, &[], &source, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Creates a web session for `user` and answers with its cookie and a redirect to `next`.
pub(crate) async fn start_session(
    state: &State,
    headers: &HeaderMap,
    user: &str,
    roles: &[String],
    source: &str,
    next: Option<&str>,
) -> PortalResult<Response> {
    let id = random_secret();
    let ttl = state.config.session_ttl;
    state
        .hub
        .catalog()
        .create_web_session(
            &basin_service::credentials::token_hash(&id),
            user,
            roles,
            &random_secret(),
            ttl,
        )
        .await
        .map_err(|e| PortalError::from(crate::ApiError::from(e)))?;
    state
        .hub
        .audit(user, source, "login", user, "ok", json!({"via": "portal"}))
        .await;
    let mut response = Redirect::to(&safe_next(next)).into_response();
    let h = response.headers_mut();
    let secure = over_https(headers);
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, "/", ttl.as_secs(), "Lax", secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", "/", 0, "Strict", secure),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /signout`: deletes the web session (its cookie stops working everywhere) and the cookie.
pub(crate) async fn signout(
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    viewer
        .session
        .engine()
        .catalog()
        .delete_web_session(&viewer.id_hash)
        .await
        .map_err(|e| PortalError::from(crate::ApiError::from(e)))?;
    viewer
        .session
        .audit("logout", &viewer.name, "ok", json!({"via": "portal"}))
        .await;
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, "Lax", over_https(&headers)),
    );
    Ok(response)
}

// ---- OIDC: authorization code with PKCE ----------------------------------------------------------

/// The cookie holding a sign-in in progress at the provider: state, nonce, PKCE verifier and
/// where to go afterwards. It is HttpOnly and lives ten minutes; `state` ties the provider's
/// answer to this browser.
const OIDC_COOKIE: &str = "basin_oidc";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// The provider, when "Sign in with SSO" is configured.
fn sso_provider(state: &State) -> PortalResult<&auth::Oidc> {
    state
        .oidc
        .as_ref()
        .filter(|o| o.signs_in())
        .ok_or_else(|| PortalError::not_found("single sign-on is not configured on this server"))
}

/// The callback URL: configured, or this server's own as the browser reached it.
fn redirect_uri(client: &auth::OidcClient, headers: &HeaderMap) -> PortalResult<String> {
    if let Some(url) = &client.redirect_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .ok_or_else(|| PortalError::bad_request("the request has no valid Host header"))?;
    let scheme = if over_https(headers) { "https" } else { "http" };
    Ok(format!("{scheme}://{host}/auth/callback"))
}

/// `GET /auth/sso`: sends the browser to the provider's authorization endpoint (code flow with
/// PKCE S256, a fresh state and nonce).
pub(crate) async fn sso(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> PortalResult<Response> {
    use sha2::Digest as _;
    let oidc = sso_provider(&state)?;
    let client = oidc.client().expect("signs_in means a client");
    let endpoints = oidc.discovery().await?;
    let (st, nonce, verifier) = (random_secret(), random_secret(), random_secret());
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let redirect = redirect_uri(client, &headers)?;
    let enc = super::url_encode;
    let separator = if endpoints.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}{separator}response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20email&state={st}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        endpoints.authorization_endpoint,
        enc(&client.id),
        enc(&redirect),
    );
    let next = safe_next(q.next.as_deref());
    let pending = format!("{st}.{nonce}.{verifier}.{}", b64(next.as_bytes()));
    let mut response = Redirect::to(&url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            OIDC_COOKIE,
            &pending,
            "/auth",
            600,
            "Lax",
            over_https(&headers),
        ),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: checks the state, redeems the code (with the PKCE verifier), checks
/// the ID token (signature with the provider's keys, issuer, audience, expiry, nonce), admits
/// the user like a bearer JWT's, and signs it in.
pub(crate) async fn callback(
    AxState(state): AxState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(cb): Query<CallbackQuery>,
) -> PortalResult<Response> {
    let oidc = sso_provider(&state)?;
    let client = oidc.client().expect("signs_in means a client");
    let expired = || {
        PortalError::new(
            StatusCode::FORBIDDEN,
            "This sign-in did not start here or has expired. Start again from the sign-in page.",
        )
    };
    let pending = cookie(&headers, OIDC_COOKIE).ok_or_else(expired)?;
    let parts: Vec<&str> = pending.split('.').collect();
    let &[st, nonce, verifier, next] = parts.as_slice() else {
        return Err(expired());
    };
    let next = unb64(next);
    if let Some(error) = cb.error {
        return Err(PortalError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "The identity provider did not sign you in: {error}{}",
                cb.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let returned = cb.state.unwrap_or_default();
    if !constant_time_eq(returned.as_bytes(), st.as_bytes()) {
        return Err(expired());
    }
    let code = cb
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PortalError::bad_request("the identity provider sent no code"))?;
    let endpoints = oidc.discovery().await?;
    let redirect = redirect_uri(client, &headers)?;
    let unavailable = |e: String| {
        PortalError::new(
            StatusCode::BAD_GATEWAY,
            format!("The identity provider's token endpoint failed: {e}"),
        )
    };
    let mut request = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| unavailable(e.to_string()))?
        .post(&endpoints.token_endpoint)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", client.id.as_str()),
            ("code_verifier", verifier),
        ]);
    if let Some(secret) = &client.secret {
        request = request.basic_auth(&client.id, Some(secret));
    }
    let answer: TokenAnswer = request
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let id_token = match (answer.id_token, answer.error) {
        (Some(t), _) => t,
        (None, e) => {
            return Err(PortalError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "The identity provider refused the sign-in: {}{}",
                    e.unwrap_or_else(|| "no ID token".into()),
                    answer
                        .error_description
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            ));
        }
    };
    let source = addr.ip().to_string();
    let catalog = state.hub.catalog();
    let identity = match oidc.check_id_token(&id_token, nonce).await {
        Ok(i) => auth::admit_federated(catalog, i).await,
        Err(e) => Err(e),
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            state
                .hub
                .audit(
                    "anonymous",
                    &source,
                    "login",
                    "sso",
                    "denied",
                    json!({"via": "portal", "error": e.detail.clone()}),
                )
                .await;
            return Err(e.into());
        }
    };
    let mut response = start_session(
        &state,
        &headers,
        &identity.name,
        &identity.extra_roles,
        &source,
        next.as_deref(),
    )
    .await?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(OIDC_COOKIE, "", "/auth", 0, "Lax", over_https(&headers)),
    );
    Ok(response)
}
