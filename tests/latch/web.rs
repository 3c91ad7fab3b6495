//! The web app in a real browser (DESIGN §12): Debian's Chromium driven headless through
//! chromedriver with fantoccini (W3C WebDriver), against the real server in-process. Each test
//! starts its own chromedriver (`--port=0`, the port read from its first line) in its own
//! process group, and kills the group when it ends, panics included, so no Chromium is left.
//!
//! Every page a test visits is checked for Content Security Policy violations and console
//! errors (Chromium's browser log), and the value-sealing test reads Chromium's performance log
//! (every request's URL and body) for the typed value. Screenshots at 1280 and 390 px go to
//! `target/ui-shots/`. Without chromedriver on `PATH` the tests say they skipped, except with
//! `LATCH_REQUIRE_BROWSER` set (`.ci/run` sets it), where that is a failure.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};

use crate::server::Platform;

/// A WebDriver command chromedriver keeps from before W3C: the browser or performance log.
#[derive(Debug)]
struct Log(&'static str);

impl WebDriverCompatibleCommand for Log {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// A running chromedriver (its process group) and a browser session on it.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    pub(crate) base: String,
    /// Console entries already checked.
    seen: usize,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let _ = killpg(
            Pid::from_raw(self.driver.id().cast_signed()),
            Signal::SIGKILL,
        );
        let _ = self.driver.wait();
    }
}

/// Whether the browser tests can run here; under `CI=true` they must.
fn driver_path() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("LATCH_REQUIRE_BROWSER").is_none(),
            "chromedriver is not installed, and LATCH_REQUIRE_BROWSER is set: the browser tests must run"
        );
        eprintln!(
            "skipped: chromedriver is not on PATH (apt-get install chromium chromium-driver)"
        );
    }
    found
}

/// A headless Chromium at `width`×`height` on `p`, or `None` where there is none (skipped).
pub(crate) async fn browser(p: &Platform, width: u32, height: u32) -> Option<Browser> {
    let path = driver_path()?;
    let mut driver = Command::new(path)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let stdout = driver.stdout.take().expect("stdout");
    let port = BufReader::new(stdout)
        .lines()
        .take(20)
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
        })
        .expect("chromedriver says its port");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--disable-extensions",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "perfLoggingPrefs": { "enableNetwork": true, "enablePage": false },
        }),
    );
    caps.insert(
        "goog:loggingPrefs".into(),
        json!({ "browser": "ALL", "performance": "ALL" }),
    );
    let client = ClientBuilder::rustls()
        .expect("tls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    client
        .set_window_size(width, height)
        .await
        .expect("window size");
    Some(Browser {
        client,
        driver,
        _profile: profile,
        base: p.url.clone(),
        seen: 0,
    })
}

impl Browser {
    /// Opens `path` and waits for its `main`.
    pub(crate) async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigates");
        self.wait_for("main").await;
    }

    /// Waits (at most 10 s) for an element.
    pub(crate) async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub(crate) async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// The rendered text of the first element matching `css`, read in one step in the page (an
    /// element htmx swaps meanwhile cannot go stale under it).
    pub(crate) async fn text(&self, css: &str) -> String {
        let text = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
                vec![json!(css)],
            )
            .await
            .expect("script runs");
        text.as_str()
            .unwrap_or_else(|| panic!("no {css}"))
            .to_owned()
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Types into a field (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Clicks and waits for the next page's `main` (a full navigation).
    pub(crate) async fn submit(&self, css: &str) {
        let before = self.js("return performance.timeOrigin").await;
        self.find(css).await.click().await.expect("clicks");
        self.wait_navigated(&before).await;
    }

    /// Waits until a new document has loaded (bounded: 10 s).
    pub(crate) async fn wait_navigated(&self, before: &Value) {
        for _ in 0..200 {
            let now = self
                .client
                .execute(
                    "return document.readyState === 'complete' ? performance.timeOrigin : null",
                    vec![],
                )
                .await
                .unwrap_or(Value::Null);
            if !now.is_null() && &now != before {
                self.wait_for("main").await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new page after 10 s");
    }

    /// The page's path and query.
    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Log entries of `kind` (`browser` or `performance`) since the last call.
    pub(crate) async fn log(&self, kind: &'static str) -> Vec<Value> {
        let entries = self.client.issue_cmd(Log(kind)).await.expect("log");
        entries.as_array().cloned().unwrap_or_default()
    }

    /// No CSP violation and no console error since the last check. A page the test made fail
    /// on purpose (a wrong key's 401, a refusal's 403) is logged by Chromium as a failed
    /// resource with its status: `allowed_statuses` names those.
    pub(crate) async fn assert_clean_console(&mut self, allowed_statuses: &[u16]) {
        let entries = self.log("browser").await;
        self.seen += entries.len();
        for entry in entries {
            let message = entry["message"].as_str().unwrap_or_default();
            assert!(
                !message.contains("Content Security Policy")
                    && !message.contains("Content-Security-Policy"),
                "CSP violation: {message}"
            );
            if entry["level"] == "SEVERE" {
                let expected = allowed_statuses.iter().any(|s| {
                    message.contains(&format!("the server responded with a status of {s}"))
                });
                assert!(expected, "console error: {message}");
            }
        }
    }

    /// No horizontal scroll.
    pub(crate) async fn assert_no_horizontal_scroll(&self, what: &str) {
        let widths = self
            .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            .await;
        let (scroll, client) = (
            widths[0].as_i64().unwrap_or(0),
            widths[1].as_i64().unwrap_or(0),
        );
        assert!(
            scroll <= client,
            "{what} scrolls sideways: {scroll} > {client}"
        );
    }

    /// A screenshot under `target/ui-shots/NAME.png`.
    pub(crate) async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-shots");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writes");
    }

    /// Presses Tab until the focused element matches `css` (at most 30 times).
    pub(crate) async fn tab_to(&self, css: &str) {
        for _ in 0..30 {
            let here = self
                .client
                .execute(
                    "return document.activeElement && document.activeElement.matches(arguments[0])",
                    vec![json!(css)],
                )
                .await
                .expect("script");
            if here == Value::Bool(true) {
                return;
            }
            self.client
                .active_element()
                .await
                .expect("focus")
                .send_keys("\u{E004}")
                .await
                .expect("tab");
        }
        panic!("Tab never reached {css}");
    }

    /// Types into whatever has focus.
    pub(crate) async fn keys(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("focus")
            .send_keys(text)
            .await
            .expect("types");
    }

    /// Signs in with `key` by keyboard alone: Tab to the field, type, Enter.
    pub(crate) async fn sign_in(&self, key: &str) {
        self.open("/ui/login").await;
        self.sign_in_here(key).await;
    }

    /// Signs in on the sign-in page already open (keeping where it leads back to).
    pub(crate) async fn sign_in_here(&self, key: &str) {
        self.client
            .execute(
                "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)",
                vec![],
            )
            .await
            .expect("script");
        self.tab_to("#key").await;
        let before = self.js("return performance.timeOrigin").await;
        self.keys(&format!("{key}\u{E007}")).await;
        self.wait_navigated(&before).await;
    }

    pub(crate) async fn finish(self) {
        let Browser { client, .. } = &self;
        let _ = client.clone().close().await;
    }
}

/// A member's personal manage key on `p`.
pub(crate) async fn member(p: &Platform, name: &str, role: &str) -> String {
    let added = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    added["key"]["key"].as_str().expect("key").to_owned()
}
