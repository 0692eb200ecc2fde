//! The data portal: server-rendered HTML pages at `/`, beside the REST API under `/api/v1`.
//! Like the REST API it is an adapter over [`basin_service::Session`]: every page asks the
//! viewer's session, so what a page shows is what the catalog's decisions allow.
//!
//! The building blocks every page module uses (keep these names stable):
//!
//! - [`router`]: every portal route, mounted by `api::router` beside `/api/v1`; every response
//!   gets the strict security headers of [`security_headers`] (CSP without inline scripts or
//!   styles, no framing, no sniffing, no caching of pages).
//! - [`Viewer`]: an extractor for the signed-in browser: its web session (cookie
//!   [`SESSION_COOKIE`], stored server-side as a hash, see `signin`) turned into a
//!   [`basin_service::Session`]. Without one, a request is redirected to `/signin?next=<path>`.
//! - [`page`]`(title, &viewer, body)`: the layout (skip link, header with the search box, nav
//!   Search · SQL · Requests · Admin (administrators and holders of a MANAGE grant) and the user
//!   menu with sign-out).
//! - [`csrf_field`]`(&viewer)` in every POST form and [`verify_csrf`]`(&viewer, token)` in
//!   every POST handler (field [`CSRF_FIELD`]): a request without the session's token is refused
//!   with 403 before anything happens.
//! - [`PortalError`]: an error as an HTML page; `From<ServiceError>` keeps the service layer's
//!   status (a hidden object is "not found", exactly like a missing one).
//! - Static assets (`/static/…`), embedded with `include_bytes!`: `portal.css`, `htmx.min.js`.

mod admin;
mod browse;
mod requests;
mod search;
mod signin;
mod sql;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use basin_catalog::access::Action;
use basin_service::Session;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::State;
use crate::error::ApiError;

/// The cookie holding a browser's web session id.
pub(crate) const SESSION_COOKIE: &str = "basin_session";
/// The form field carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "_csrf";

/// The portal's routes (merged into the server's router beside `/api/v1`).
pub(crate) fn router() -> Router<State> {
    Router::new()
        .route("/", get(browse::home))
        .route("/hubs/{hub}", get(browse::hub))
        .route(
            "/hubs/{hub}/{dataset}",
            get(browse::dataset).post(browse::edit_dataset),
        )
        .route("/hubs/{hub}/{dataset}/{table}", get(browse::table))
        .route("/search", get(search::search))
        .route("/requests", get(requests::list).post(requests::create))
        .route("/requests/{id}/decide", post(requests::decide))
        .route("/requests/{id}/cancel", post(requests::cancel))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/auth/sso", get(signin::sso))
        .route("/auth/callback", get(signin::callback))
        .route("/sql", get(sql::editor))
        .route("/sql/run", post(sql::run))
        .route("/sql/cancel", post(sql::cancel))
        .route("/sql/download", post(sql::download))
        .route("/sql/complete", get(sql::complete))
        .route("/admin", get(admin::index))
        .route("/admin/{section}", get(admin::show).post(admin::act))
        .route("/static/{file}", get(asset))
        .layer(middleware::from_fn(security_headers))
}

// ---- security headers ---------------------------------------------------------------------------

/// No inline script or style, nothing from elsewhere, no framing, forms only to this server.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the portal's security headers to every response (pages, redirects, errors, assets).
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        // Pages show governed data: never kept in a shared or back-button cache.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

// ---- static assets ------------------------------------------------------------------------------

const PORTAL_CSS: &[u8] = include_bytes!("../../assets/portal.css");
const HTMX_JS: &[u8] = include_bytes!("../../assets/htmx.min.js");
const SQL_JS: &[u8] = include_bytes!("../../assets/sql.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "portal.css" => (PORTAL_CSS, "text/css; charset=utf-8"),
        "htmx.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        "sql.js" => (SQL_JS, "text/javascript; charset=utf-8"),
        _ => return PortalError::not_found("no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

// ---- the viewer ---------------------------------------------------------------------------------

/// The signed-in browser: its principal's session and its web session's CSRF token.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub session: Session,
    /// The user's name.
    pub name: String,
    /// Whether the user is an administrator.
    pub is_admin: bool,
    /// Whether the Admin pages are offered (administrators and holders of a MANAGE grant).
    pub sees_admin: bool,
    csrf: String,
    /// The hash of the web session id (sign-out deletes it).
    pub(crate) id_hash: String,
}

impl FromRequestParts<State> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Viewer, Response> {
        let to_signin = || {
            let wanted = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            Redirect::to(&format!("/signin?next={}", url_encode(&wanted))).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_signin());
        };
        let id_hash = basin_service::credentials::token_hash(&id);
        let catalog = state.hub.catalog();
        let web = match catalog.web_session(&id_hash).await {
            Ok(Some(w)) => w,
            Ok(None) => return Err(to_signin()),
            Err(e) => return Err(PortalError::from(ApiError::from(e)).into_response()),
        };
        let origin = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "portal".to_string(), |c| c.0.ip().to_string());
        // A user disabled since signing in is refused here, on its next request. Federated
        // users need not exist in the catalog (as with their bearer JWTs).
        let session = match catalog.user(&web.user).await {
            Ok(Some(u)) if u.disabled => return Err(to_signin()),
            Ok(_) => match catalog.access_snapshot().await {
                Ok(snapshot) => state
                    .hub
                    .session(snapshot.principal(&web.user, &web.roles), &origin),
                Err(e) => return Err(PortalError::from(ApiError::from(e)).into_response()),
            },
            Err(e) => return Err(PortalError::from(ApiError::from(e)).into_response()),
        };
        let is_admin = session
            .may(Action::Administer)
            .await
            .map_err(|e| PortalError::from(e).into_response())?;
        let sees_admin = is_admin
            || catalog
                .access_snapshot()
                .await
                .map_err(|e| PortalError::from(ApiError::from(e)).into_response())?
                .manages_anything(session.principal());
        Ok(Viewer {
            name: web.user,
            session,
            is_admin,
            sees_admin,
            csrf: web.csrf_token,
            id_hash,
        })
    }
}

/// The value of a request cookie.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Percent-encodes a query-string value.
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- CSRF ---------------------------------------------------------------------------------------

/// The hidden field every POST form of a signed-in page carries.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// Refuses (403) a POST whose token is not the viewer's session's.
pub(crate) fn verify_csrf(viewer: &Viewer, token: &str) -> Result<(), PortalError> {
    if constant_time_eq(viewer.csrf.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(PortalError::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this page. Reload the page and try again.",
        ))
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random secret (session ids, CSRF tokens, OIDC state), URL-safe.
pub(crate) fn random_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---- layout -------------------------------------------------------------------------------------

/// htmx without `eval` or injected `<style>`/`<script>` (the CSP would refuse them anyway).
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · Basin" }
            link rel="stylesheet" href="/static/portal.css";
            script src="/static/htmx.min.js" defer {}
        }
    }
}

/// A page of a signed-in viewer: header (search box, nav, user menu) and `body` in `<main>`.
pub(crate) fn page(title: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Basin" }
                    form.search role="search" action="/search" method="get" {
                        label.sr-only for="header-q" { "Search data" }
                        input #header-q type="search" name="q" placeholder="Search hubs, datasets, tables, columns…";
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Main" {
                        ul {
                            li { a href="/search" { "Search" } }
                            li { a href="/sql" { "SQL" } }
                            li { a href="/requests" { "Requests" } }
                            @if viewer.sees_admin { li { a href="/admin" { "Admin" } } }
                        }
                    }
                    details.user {
                        summary { span.sr-only { "Signed in as " } (viewer.name) @if viewer.is_admin { " (admin)" } }
                        form method="post" action="/signout" {
                            (csrf_field(viewer))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
            }
        }
    }
}

/// A page without a signed-in viewer (sign-in, errors before sign-in).
pub(crate) fn public_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top { a.brand href="/" { "Basin" } }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// Markdown as HTML with raw HTML escaped (never passed through) and only safe link schemes.
pub(crate) fn markdown(text: &str) -> Markup {
    use pulldown_cmark::{Event, Parser, Tag};
    let safe = |url: &str| {
        let lower = url.trim().to_ascii_lowercase();
        !lower.contains(':')
            || ["http:", "https:", "mailto:"]
                .iter()
                .any(|s| lower.starts_with(s))
    };
    let events = Parser::new(text).map(|event| match event {
        // Raw HTML is shown as text, never interpreted.
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url, title, ..
        }) => Event::Start(Tag::Link {
            // Images would load from elsewhere (and the CSP refuses them): a link instead.
            link_type: pulldown_cmark::LinkType::Inline,
            dest_url: if safe(&dest_url) {
                dest_url
            } else {
                "#".into()
            },
            title,
            id: "".into(),
        }),
        Event::End(pulldown_cmark::TagEnd::Image) => Event::End(pulldown_cmark::TagEnd::Link),
        e => e,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    PreEscaped(out)
}

// ---- errors -------------------------------------------------------------------------------------

/// An error shown as an HTML page with its status.
#[derive(Debug)]
pub(crate) struct PortalError {
    pub status: StatusCode,
    pub message: String,
}

impl PortalError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PortalError {
        PortalError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> PortalError {
        PortalError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> PortalError {
        PortalError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for PortalError {
    fn from(e: ApiError) -> PortalError {
        PortalError::new(e.status, e.detail)
    }
}

impl From<basin_service::ServiceError> for PortalError {
    fn from(e: basin_service::ServiceError) -> PortalError {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let body = public_page(
            &title,
            html! {
                h1 { (title) }
                p.error role="alert" { (self.message) }
                p { a href="/" { "Back to the start page" } }
            },
        );
        (self.status, body).into_response()
    }
}

pub(crate) type PortalResult<T = Markup> = Result<T, PortalError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_never_passes_html_or_script_links_through() {
        let html = markdown(
            "# Title\n<script>alert(1)</script>\n\nText <img src=x onerror=alert(2)> **bold**\n\n[a](javascript:alert(3)) [b](JaVaScRiPt:x) [c](https://example.com) ![i](https://evil.example/p.png)",
        )
        .into_string();
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;") && html.contains("<strong>bold</strong>"),
            "{html}"
        );
        assert!(!html.to_lowercase().contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
        assert!(
            html.contains("href=\"https://evil.example/p.png\""),
            "{html}"
        );
    }

    #[test]
    fn cookies_and_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; basin_session=xyz; b="),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_ne!(random_secret(), random_secret());
        assert_eq!(url_encode("/hubs/a b?x=1&y"), "/hubs/a%20b%3Fx%3D1%26y");
    }

    #[test]
    fn sign_in_only_returns_to_this_server() {
        use signin::safe_next;
        for (next, to) in [
            (Some("/hubs/main"), "/hubs/main"),
            (Some("//evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("/signin?next=/x"), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_next(next), to, "{next:?}");
        }
    }
}
