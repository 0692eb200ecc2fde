//! End-to-end: the data portal of the real `basin serve` — in a real headless Chromium (sign-in,
//! browsing, editing, SSO, hidden objects; screenshots in `target/portal-screenshots/`) and at
//! the HTTP level (CSRF, cookie flags, security headers, XSS rendered inert, sign-out).

use serde_json::json;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Api, Server, load_sales, seed, tag_emails_pii};
use basin_testkit::browser::Browser;

/// A browser-less portal client: cookies by hand, redirects not followed.
struct Web {
    url: String,
    http: reqwest::Client,
    session: Option<String>,
}

/// A response's status, headers and body.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    /// The `Set-Cookie` header for `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.set_cookie(name)?;
        let v = c[name.len() + 1..].split(';').next()?.to_string();
        (!v.is_empty()).then_some(v)
    }

    fn location(&self) -> String {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The value of the hidden input `name` (the CSRF token of a form).
    fn hidden(&self, name: &str) -> String {
        let at = self
            .text
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no field {name} in {}", self.text));
        let rest = &self.text[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Web {
    fn new(api: &Api) -> Web {
        Web {
            url: api.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            session: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, cookies: &[(&str, &str)]) -> Page {
        let mut jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(s) = &self.session {
            jar.push(format!("basin_session={s}"));
        }
        let req = if jar.is_empty() {
            req
        } else {
            req.header("cookie", jar.join("; "))
        };
        let resp = req.send().await.unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.url)), &[])
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(
            self.http.post(format!("{}{path}", self.url)).form(form),
            &[],
        )
        .await
    }

    /// Signs in through the form; panics unless it succeeds.
    async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/signin").await;
        let token = form.cookie_value("basin_signin").expect("a sign-in token");
        let done = self
            .send(
                self.http.post(format!("{}/signin", self.url)).form(&[
                    ("_csrf", token.as_str()),
                    ("user", user),
                    ("password", password),
                    ("next", "/"),
                ]),
                &[("basin_signin", token.as_str())],
            )
            .await;
        assert_eq!(done.status, 303, "sign in as {user}: {}", done.text);
        self.session = Some(
            done.cookie_value("basin_session")
                .expect("a session cookie"),
        );
        done
    }

    /// The CSRF token of the signed-in session (from a page's sign-out form).
    async fn csrf(&self) -> String {
        self.get("/").await.hidden("_csrf")
    }
}

async fn started() -> (Basin, Server, String) {
    let basin = Basin::new();
    seed(&basin);
    let server = Server::start(&basin, &[]);
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    tag_emails_pii(&server, &admin).await;
    load_sales(&server, &admin).await;
    (basin, server, admin)
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_sign_in_cookies_csrf_and_sign_out() {
    let (_basin, s, _admin) = started().await;
    let mut web = Web::new(&s);

    // Without a session every page sends the browser to the sign-in page, remembering where.
    let home = web.get("/hubs/main").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), "/signin?next=/hubs/main");

    // The sign-in form is protected too: no token, or a wrong one, is refused.
    let form = web.get("/signin").await;
    assert_eq!(form.status, 200);
    let token = form.cookie_value("basin_signin").unwrap();
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(form.headers["x-frame-options"], "DENY");
    assert_eq!(form.headers["x-content-type-options"], "nosniff");
    for (cookie, field) in [("", ""), (token.as_str(), ""), (token.as_str(), "forged")] {
        let jar = [("basin_signin", cookie)];
        let none: &[(&str, &str)] = &[];
        let p = web
            .send(
                web.http.post(format!("{}/signin", web.url)).form(&[
                    ("_csrf", field),
                    ("user", "admin"),
                    ("password", ADMIN_PASSWORD),
                ]),
                if cookie.is_empty() { none } else { &jar },
            )
            .await;
        assert_eq!(p.status, 403, "{}", p.text);
        assert!(p.set_cookie("basin_session").is_none());
    }

    // A wrong password is refused with the form again; the REST login's limiter counts it.
    let jar = [("basin_signin", token.as_str())];
    let wrong = web
        .send(
            web.http.post(format!("{}/signin", web.url)).form(&[
                ("_csrf", token.as_str()),
                ("user", "bob"),
                ("password", "not-bobs"),
            ]),
            &jar,
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("Wrong user name or password"));

    // Signing in sets an HttpOnly, SameSite session cookie (Secure behind HTTPS) and redirects
    // to where the browser wanted to go — never to another site.
    let done = web
        .send(
            web.http
                .post(format!("{}/signin", web.url))
                .header("x-forwarded-proto", "https")
                .form(&[
                    ("_csrf", token.as_str()),
                    ("user", "bob"),
                    ("password", "bob-password"),
                    ("next", "//evil.example/x"),
                ]),
            &jar,
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/");
    let cookie = done.set_cookie("basin_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let plain = web.sign_in("bob", "bob-password").await;
    let cookie = plain.set_cookie("basin_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains("Secure"),
        "{cookie}"
    );

    let home = web.get("/").await;
    assert_eq!(home.status, 200, "{}", home.text);
    assert!(home.text.contains("Sign out") && home.text.contains("bob"));
    assert_eq!(home.headers["cache-control"], "no-store");

    // Sign-out needs the session's CSRF token.
    let stolen = web.session.clone().unwrap();
    for token in ["", "forged"] {
        let p = web.post("/signout", &[("_csrf", token)]).await;
        assert_eq!(p.status, 403, "{}", p.text);
    }
    assert_eq!(web.get("/").await.status, 200);
    let csrf = web.csrf().await;
    let out = web.post("/signout", &[("_csrf", csrf.as_str())]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.set_cookie("basin_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie is worthless now, even if someone kept a copy.
    web.session = Some(stolen);
    let after = web.get("/").await;
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/signin"));

    // A disabled user cannot sign in, and one disabled while signed in is signed out.
    let mut carol = Web::new(&s);
    carol.sign_in("carol", "carol-password").await;
    assert_eq!(carol.get("/").await.status, 200);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let a = s
        .call("POST", "/api/v1/users/carol/disable", Some(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(carol.get("/").await.status, 303);
    let form = web.get("/signin").await;
    let token = form.cookie_value("basin_signin").unwrap();
    let refused = web
        .send(
            web.http.post(format!("{}/signin", web.url)).form(&[
                ("_csrf", token.as_str()),
                ("user", "carol"),
                ("password", "carol-password"),
            ]),
            &[("basin_signin", token.as_str())],
        )
        .await;
    assert_eq!(refused.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_renders_hostile_text_inert_and_hides_what_is_hidden() {
    let (_basin, s, admin) = started().await;
    // Hostile text in a description, a column name, a tag value and in the data.
    let script = "<script>alert(1)</script>";
    let a = s
        .call(
            "PATCH",
            "/api/v1/hubs/main/datasets/sales",
            Some(&admin),
            Some(json!({"description": format!("# Sales\n{script} <img src=x onerror=alert(2)> [click](javascript:alert(3))")})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    for sql in [
        "CREATE TABLE sales.evil (\"<b onmouseover=alert(4)>x</b>\" VARCHAR, note VARCHAR)",
        "INSERT INTO sales.evil VALUES ('<script>alert(5)</script>', '<img src=x onerror=alert(6)>')",
    ] {
        let a = s.sql(&admin, sql).await;
        assert_eq!(a.status, 200, "{sql}: {}", a.text);
    }
    let a = s
        .call(
            "PUT",
            "/api/v1/tags",
            Some(&admin),
            Some(json!({"object": "table main.sales.evil", "tags": ["note=<script>alert(7)</script>"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let mut web = Web::new(&s);
    web.sign_in("admin", ADMIN_PASSWORD).await;
    for path in ["/hubs/main/sales", "/hubs/main/sales/evil"] {
        let p = web.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.text);
        for raw in [
            "<script>alert",
            "<img src=x",
            "<b onmouseover",
            "javascript:alert",
        ] {
            assert!(
                !p.text.contains(raw),
                "{path} has {raw} unescaped:\n{}",
                p.text
            );
        }
        assert!(p.text.contains("&lt;script&gt;alert"), "{path}: {}", p.text);
    }

    // bob sees neither the hr dataset nor its table: the pages answer exactly like missing ones.
    let mut bob = Web::new(&s);
    bob.sign_in("bob", "bob-password").await;
    let hidden = bob.get("/hubs/main/hr").await;
    let missing = bob.get("/hubs/main/hx").await;
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(hidden.text.replace("hr", "hx"), missing.text);
    let hidden = bob.get("/hubs/main/hr/salaries").await;
    let missing = bob.get("/hubs/main/hr/salarieX").await;
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(hidden.text.replace("salaries", "salarieX"), missing.text);
    let hub = bob.get("/hubs/main").await;
    assert!(!hub.text.contains("/hubs/main/hr"), "{}", hub.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_in_a_browser_sign_in_browse_edit() {
    let (_basin, s, admin) = started().await;
    let a = s
        .sql(&admin, "GRANT SELECT ON TABLE sales.customers TO analyst")
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let b = Browser::start(&s.url, "browse").await;
    b.open("/", "redirected-to-signin").await;
    assert!(b.path().await.starts_with("/signin"));
    b.sign_in("admin", ADMIN_PASSWORD).await;
    b.screenshot("home").await;
    assert!(b.text().await.contains("main"));

    b.click("a[href='/hubs/main']").await;
    b.screenshot("hub").await;
    let text = b.text().await;
    assert!(
        text.contains("Layer: prepared") && text.contains("sales"),
        "{text}"
    );

    b.click("a[href='/hubs/main/sales']").await;
    b.screenshot("dataset").await;
    assert!(b.text().await.contains("customers"));

    // The owner edits the description (Markdown) through the form.
    b.fill("#description", "Orders and **customers** of the shop")
        .await;
    b.fill("#support_contact", "sales-data@example.com").await;
    b.click("form[action='/hubs/main/sales'] button[type=submit]")
        .await;
    b.screenshot("dataset-saved").await;
    let text = b.text().await;
    assert!(
        text.contains("Saved.") && text.contains("sales-data@example.com"),
        "{text}"
    );
    assert!(b.has(".markdown strong").await);

    b.click("a[href='/hubs/main/sales/customers']").await;
    b.screenshot("table").await;
    let text = b.text().await;
    for expected in [
        "email",
        "PII",
        "Rows\n4",
        "Version history",
        "Sample",
        "ann@example.com",
    ] {
        assert!(text.contains(expected), "no {expected} in {text}");
    }
    b.sign_out().await;

    // alice (analyst, region=eu) sees the table masked and filtered as her policies say.
    let a = s
        .call(
            "PUT",
            "/api/v1/policies/row-filters",
            Some(&admin),
            Some(json!({"table": "sales.customers", "grantee": "analyst", "expression": "region = user_attribute('region')"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    b.sign_in("alice", "alice-password").await;
    b.open("/hubs/main/sales/customers", "table-as-alice").await;
    let text = b.text().await;
    assert!(
        text.contains("row-filtered") && text.contains("masked"),
        "{text}"
    );
    assert!(
        !text.contains("bob@example.com") && !text.contains("ann@example.com"),
        "{text}"
    );
    // At a phone's width the page still works.
    b.client.set_window_size(390, 844).await.unwrap();
    b.open("/hubs/main/sales", "dataset-phone").await;
    assert!(b.text().await.contains("customers"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_sso_against_a_real_oidc_provider() {
    let provider = basin_testkit::oidc::Provider::start().await;
    let basin = Basin::new();
    seed(&basin);
    let mut command = basin.command();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(provider.serve_flags())
        .env("BASIN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stderr(std::process::Stdio::null());
    let s = Server::spawn(command);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let a = s
        .sql(&admin, "GRANT SELECT ON TABLE sales.products TO analyst")
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    // erin exists only at the provider; her roles claim makes her an analyst.
    provider.approve_as("erin", &["analyst"]);
    let b = Browser::start(&s.url, "sso").await;
    b.open("/hubs/main/sales", "signin-with-sso").await;
    assert!(b.has("a[href^='/auth/sso']").await);
    b.click("a[href^='/auth/sso']").await;
    b.screenshot("signed-in-by-sso").await;
    assert_eq!(b.path().await, "/hubs/main/sales");
    let text = b.text().await;
    assert!(text.contains("erin") && text.contains("products"), "{text}");
    assert_eq!(provider.issued(), 1);
    b.sign_out().await;

    // A provider account named like a local user is not that user.
    provider.approve_as("bob", &[]);
    b.open("/signin", "signin-again").await;
    b.click("a[href^='/auth/sso']").await;
    b.screenshot("sso-refused-local-name").await;
    let text = b.text().await;
    assert!(text.contains("belongs to a local Basin user"), "{text}");
    assert!(!b.has("form[action='/signout']").await);

    // An answer that this browser did not ask for (forged state, or none at all) is refused.
    b.open(
        "/auth/callback?code=stolen&state=forged",
        "sso-forged-state",
    )
    .await;
    assert!(b.text().await.contains("did not start here"));
    b.close().await;
    let web = Web::new(&s);
    let p = web.get("/auth/callback?code=stolen&state=forged").await;
    assert_eq!(p.status, 403);
}
