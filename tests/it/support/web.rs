//! The dashboard in-process on a free loopback port, and plain HTTP requests to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use porki::metrics::Metrics;
use porki::store::Store;
use porki::web::{StoreSource, WebHandle, WebOptions, WebServer};

use super::block_on;

/// A dashboard serving one store; stopped when dropped.
pub struct Dashboard {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    handle: Option<WebHandle>,
}

impl Dashboard {
    /// Serves `store` with no token and no process metrics.
    pub fn start(store: Arc<dyn Store>) -> Self {
        Self::start_with(StoreSource::Open(store), None, None)
    }

    /// Serves `source` with `token` and `metrics`.
    pub fn start_with(
        source: StoreSource,
        token: Option<&str>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let options = WebOptions {
            token: token.map(str::to_string),
            metrics,
            ..WebOptions::new("127.0.0.1:0".parse().unwrap())
        };
        let server = WebServer::bind(options).expect("bind a loopback port");
        let base = server.url().trim_end_matches('/').to_string();
        let handle = server
            .spawn(source, "memory://")
            .expect("start the dashboard");
        Self {
            base,
            handle: Some(handle),
        }
    }

    /// `GET base + path` with `headers`.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(&format!("{}{path}", self.base), headers)
    }

    /// `GET base + path`.
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[])
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase; repeated ones joined with `\n`.
    pub headers: BTreeMap<String, String>,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// `GET url` with `headers`, following no redirects.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let mut request = client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or("").to_string();
            map.entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push('\n');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let body = response.text().await.unwrap_or_default();
        Reply {
            status,
            headers: map,
            body,
        }
    })
}
