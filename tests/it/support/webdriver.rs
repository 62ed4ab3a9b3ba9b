//! Headless Chromium driven through chromedriver, in plain WebDriver over HTTP:
//! a session, navigation, scripts and screenshots are all the dashboard's
//! browser test needs.
//!
//! Chromium comes from Debian's packages (`apt-get install -y chromium
//! chromium-driver`; `.ci/run` installs them). Without them the test fails,
//! saying so: it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{free_port, temp_dir, tokio_runtime, wait_until};

/// Where Debian puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian puts its driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags Chromium needs on a machine without a display or a network: its
/// background connections would be refused, and sandboxing needs privileges a
/// test does not have.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

/// A browser session; the driver is stopped and the profile removed on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// Fails the test, saying how to install them, when Chromium or its driver is missing.
pub fn require_chromium() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the dashboard's browser test needs headless Chromium from Debian's \
             packages; install them with `apt-get update && apt-get install -y chromium chromium-driver` \
             (.ci/run does this), package {package}"
        );
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub fn start() -> Self {
        require_chromium();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        let runtime = tokio_runtime();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile = temp_dir("chromium-profile");
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            runtime,
            client,
        };
        wait_until(Duration::from_secs(20), "chromedriver is ready", || {
            browser
                .request(reqwest::Method::GET, "/status", None)
                .is_ok_and(|v| v["ready"] == true)
        });
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            }}
        });
        let session = browser
            .request(reqwest::Method::POST, "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_string();
        browser
    }

    /// Sends one WebDriver command; its `value`, or the driver's error.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.runtime.block_on(async {
            let mut request = self.client.request(method, format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let ok = response.status().is_success();
            let text = response.text().await.map_err(|e| e.to_string())?;
            let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            if ok {
                Ok(value["value"].clone())
            } else {
                Err(value["value"].to_string())
            }
        })
    }

    fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.request(method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    /// Opens `url` and waits for it to load.
    pub fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.request(reqwest::Method::DELETE, &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
