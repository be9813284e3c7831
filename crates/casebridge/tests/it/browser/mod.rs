//! The console and the agent widget in headless Chromium, driven over WebDriver. Tests skip
//! with a printed reason when Chromium or its driver is missing, unless
//! `CASEBRIDGE_REQUIRE_ALL=1` (CI), where they fail. Every test ends by checking that the
//! browser logged no error.

mod admin;
mod agent;
mod pages;
mod rules;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any wait in the browser may take.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub c: Client,
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Chromedriver's legacy log endpoint: the browser's console messages since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Whether Chromium can run here; otherwise the reason, printed as SKIPPED (or a failure
/// under CASEBRIDGE_REQUIRE_ALL=1).
fn available(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} missing (apt-get install chromium chromium-driver)", missing.join(" and "));
    assert!(std::env::var("CASEBRIDGE_REQUIRE_ALL").as_deref() != Ok("1"), "{test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
    false
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium at 1280×800, or None when they are
    /// not installed.
    pub async fn start(test: &str, base: &str) -> Option<Browser> {
        if !available(test) {
            return None;
        }
        let port = free_port();
        // Its own process group, so that the browser it starts goes with it when a test fails.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let end = Instant::now() + DEADLINE;
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < end, "chromedriver never answered on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(conn).capabilities(caps).connect(&url).await.expect("a WebDriver session");
        let mut b = Browser { c, base: base.to_string(), driver, _profile: profile };
        b.base = base.to_string();
        Some(b)
    }

    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{}", self.base, path)).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        let u = self.c.current_url().await.expect("url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// The element, once present.
    pub async fn find(&self, css: &str) -> Element {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await {
                return e;
            }
            assert!(Instant::now() < end, "{css} never appeared on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks an element, scrolled to the middle of the window first (the sticky save bar
    /// would cover one at the bottom).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        let arg = serde_json::to_value(&e).expect("element reference");
        let _ = self.c.execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg]).await;
        e.click().await.unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_default()
    }

    /// Polls until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let t = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if t.contains(needle) {
                return t;
            }
            assert!(Instant::now() < end, "{css} never said {needle:?}; it says {t:?} on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a script until it returns true.
    pub async fn wait_js(&self, script: &str, what: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            if self.c.execute(script, vec![]).await.ok() == Some(Value::Bool(true)) {
                return;
            }
            assert!(Instant::now() < end, "never true: {what} ({script}) on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn displayed(&self, css: &str) -> bool {
        self.find(css).await.is_displayed().await.unwrap_or(false)
    }

    /// Types into a text box, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Fails on any error the browser logged: its console (through the driver) and what the
    /// console's own script recorded (script errors, CSP refusals, resources that failed).
    pub async fn assert_no_errors(&self) {
        let mut errors: Vec<String> = Vec::new();
        if let Ok(Value::Array(lines)) = self.c.issue_cmd(BrowserLog).await {
            for l in lines {
                if l["level"] == "SEVERE" || l["level"] == "WARNING" {
                    errors.push(l["message"].as_str().unwrap_or("").to_string());
                }
            }
        }
        if let Ok(Value::Array(list)) = self.c.execute("return window.cbErrors ? window.cbErrors() : [];", vec![]).await
        {
            errors.extend(list.into_iter().map(|v| v.as_str().unwrap_or("").to_string()));
        }
        assert!(errors.is_empty(), "the browser logged errors:\n{}", errors.join("\n"));
    }

    /// Saves a PNG of the page under docs/screenshots/ when CASEBRIDGE_SCREENSHOTS=1.
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("CASEBRIDGE_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        let _ = self.c.execute("window.scrollTo(0, 0);", vec![]).await;
        let png = self.c.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.c.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver's process group: chromedriver and the Chromium it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
