//! A real headless browser for the portal's end-to-end tests: Debian's `chromium`, driven over
//! WebDriver by `chromedriver` (on a free loopback port) through fantoccini. Each page visited
//! can be saved as a screenshot under `target/portal-screenshots/` (test artifacts).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::tools::free_port;

/// What to install when the browser is missing.
pub const INSTALL_HINT: &str = "the portal's browser tests need Chromium and chromedriver: apt-get install chromium chromium-driver (scripts/test installs them)";

/// A headless Chromium session; chromedriver is stopped when dropped.
pub struct Browser {
    pub client: Client,
    /// The portal's base URL (`http://127.0.0.1:port`).
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    test: String,
    shot: std::sync::atomic::AtomicUsize,
}

/// The first of `names` found on the PATH or in /usr/bin.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium (its own profile directory) for the
    /// portal at `base`; `test` prefixes the screenshots' names. Fails with [`INSTALL_HINT`]
    /// when Chromium or chromedriver is missing.
    pub async fn start(base: &str, test: &str) -> Browser {
        let chromium = find_program(&["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found; {INSTALL_HINT}"));
        let chromedriver = find_program(&["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found; {INSTALL_HINT}"));
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; {INSTALL_HINT}",
                    chromedriver.display()
                )
            });
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut driver = DriverGuard(Some(driver));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        // The WebDriver client's TLS stack needs a process-wide provider (more than one is linked).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("TLS roots for the WebDriver client")
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}; {INSTALL_HINT}"));
        let shots = crate::repo_root().join("target/portal-screenshots");
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            driver: driver.0.take().expect("the driver"),
            _profile: profile,
            shots,
            test: test.to_string(),
            shot: Default::default(),
        }
    }

    /// Opens a path of the portal and saves a screenshot named `label`.
    pub async fn open(&self, path: &str, label: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        self.screenshot(label).await;
    }

    /// Saves a screenshot of the current page as `<test>-<n>-<label>.png`.
    pub async fn screenshot(&self, label: &str) {
        let n = self.shot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let png = self.client.screenshot().await.expect("a screenshot");
        let name = format!("{}-{n:02}-{label}.png", self.test);
        std::fs::write(self.shots.join(name), png).expect("writing a screenshot");
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The visible text of the current page.
    pub async fn text(&self) -> String {
        match self
            .client
            .execute("return document.body.innerText", vec![])
            .await
            .expect("the page's text")
        {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// Types `value` into the field matched by `css` (replacing what it held).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no field {css}: {e}"));
        field.clear().await.expect("clearing a field");
        field.send_keys(value).await.expect("typing into a field");
    }

    /// Clicks the element matched by `css` (a link or submit button) and waits (at most 15 s)
    /// until the browser has loaded another document (at another URL or, after a form's
    /// redirect, the same one: a marker set on the old document tells them apart).
    pub async fn click(&self, css: &str) {
        self.client
            .execute("window.__basinOldPage = true", vec![])
            .await
            .expect("marking the current page");
        self.press(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let loaded = self
                .client
                .execute(
                    "return !window.__basinOldPage && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .ok()
                .is_some_and(|v| v == true);
            if loaded {
                return;
            }
            let now = self.client.current_url().await.expect("the current URL");
            assert!(
                Instant::now() < deadline,
                "clicking {css} did not load another page (still at {now})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element matched by `css` without waiting for a page (a `<summary>`, say).
    pub async fn press(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Whether an element matches `css` on the current page.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("a search of the page")
            .is_empty()
    }

    /// Signs in through the sign-in form (it must succeed).
    pub async fn sign_in(&self, user: &str, password: &str) {
        self.open("/signin", &format!("signin-{user}")).await;
        self.fill("#user", user).await;
        self.fill("#password", password).await;
        self.click("form[action='/signin'] button[type=submit]")
            .await;
        let path = self.path().await;
        assert!(
            !path.starts_with("/signin"),
            "signing in as {user} failed: {}",
            self.text().await
        );
    }

    /// Signs out through the user menu.
    pub async fn sign_out(&self) {
        self.press("details.user summary").await;
        self.click("form[action='/signout'] button").await;
        let path = self.path().await;
        assert!(
            path.starts_with("/signin"),
            "signing out left the browser at {path}: {}",
            self.text().await
        );
    }

    /// Ends the browser session.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills chromedriver if starting the session fails half-way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
