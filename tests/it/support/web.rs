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

/// Sends `head` (a request's lines, without the blank line that ends it) to
/// `base` as it is, over a connection of its own, and returns the status and
/// body: for requests a client library would not send as given (HTTP/1.0, a
/// proxy's headers).
pub fn raw(base: &str, head: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the dashboard");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{}\r\nConnection: close\r\n\r\n",
        head.replace('\n', "\r\n")
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
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
