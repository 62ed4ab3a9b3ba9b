//! Binding and running the HTTP server: the safety rule (off loopback only with
//! a token), the store it reads (opened on the server's own runtime, retried
//! until it answers), and the actix-web server itself.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpServer, middleware, web};
use thiserror::Error;
use tokio::sync::Notify;

use super::auth::{TokenError, check_token, guard};
use super::feed::Feed;
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// How the dashboard is served.
#[derive(Clone)]
pub struct WebOptions {
    /// Address to listen on (`127.0.0.1:7878`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The token every request must carry; required off loopback.
    pub token: Option<String>,
    /// The process's metrics when it runs agents (`porki run --http`); `None` for
    /// `porki serve`, whose `/metrics` has only what the store holds.
    pub metrics: Option<Arc<Metrics>>,
    /// Worker threads serving requests.
    pub workers: usize,
}

impl std::fmt::Debug for WebOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: options may end up in a log line.
        f.debug_struct("WebOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("metrics", &self.metrics.is_some())
            .field("workers", &self.workers)
            .finish()
    }
}

impl WebOptions {
    /// Serving on `listen`, no token, no process metrics, one worker.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            token: None,
            metrics: None,
            workers: 1,
        }
    }
}

/// Why the dashboard cannot be served.
#[derive(Debug, Error)]
pub enum WebError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve the dashboard on {listen} without a token: anyone who can reach that address could read every task; pass --http-token TOKEN (or set PORKI_HTTP_TOKEN), or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        listen: SocketAddr,
    },
    /// The token cannot be used.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The address cannot be bound.
    #[error(
        "cannot listen on {listen}: {source} (is something else serving there? pick another address)"
    )]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the dashboard server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Where the server gets its store.
pub enum StoreSource {
    /// A store already open (the embedded `memory://` one of this process).
    Open(Arc<dyn Store>),
    /// A URL to open on the server's own runtime, retried until it answers.
    Url(String),
}

/// The store once it is open; pages answer 503 until then.
#[derive(Clone, Default)]
pub(super) struct StoreSlot {
    store: Arc<OnceLock<Arc<dyn Store>>>,
    opened: Arc<Notify>,
}

impl StoreSlot {
    /// The store, if open.
    pub(super) fn get(&self) -> Option<Arc<dyn Store>> {
        self.store.get().cloned()
    }

    /// Waits until the store is open.
    pub(super) async fn wait(&self) -> Arc<dyn Store> {
        loop {
            let opened = self.opened.notified();
            if let Some(store) = self.get() {
                return store;
            }
            opened.await;
        }
    }

    fn set(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
        self.opened.notify_waiters();
    }

    /// Opens `source` into the slot, retrying an unreachable store with backoff.
    async fn open(self, source: StoreSource) {
        let url = match source {
            StoreSource::Open(store) => return self.set(store),
            StoreSource::Url(url) => url,
        };
        let mut backoff = Duration::from_millis(250);
        loop {
            match store::open(&url).await {
                Ok(store) => return self.set(store),
                Err(e) if e.is_wrong_url() => {
                    tracing::error!(error = %e, "the dashboard cannot open its store; fix --redis-url");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "the dashboard cannot reach the store yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// What every request handler shares.
pub(super) struct AppState {
    /// The store, once open.
    pub store: StoreSlot,
    /// Changes for `/events`.
    pub feed: Feed,
    /// The process's metrics, when it runs agents.
    pub metrics: Option<Arc<Metrics>>,
    /// The token requests must carry, if any.
    pub token: Option<String>,
    /// The store's URL without its password, for the footer.
    pub store_label: String,
}

/// A bound dashboard server, not serving yet.
pub struct WebServer {
    listener: TcpListener,
    options: WebOptions,
}

impl WebServer {
    /// Checks the safety rule and the token, then binds the address.
    pub fn bind(options: WebOptions) -> Result<Self, WebError> {
        match &options.token {
            Some(token) => check_token(token)?,
            None if !options.listen.ip().is_loopback() => {
                return Err(WebError::TokenRequired {
                    listen: options.listen,
                });
            }
            None => {}
        }
        let listener = TcpListener::bind(options.listen).map_err(|source| WebError::Bind {
            listen: options.listen,
            source,
        })?;
        Ok(Self { listener, options })
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.options.listen)
    }

    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr())
    }

    /// Serves until the actix System it runs in stops, or SIGINT/SIGTERM when
    /// `signals` (then it stops gracefully). `store_label` names the store in
    /// the pages' footer; a password in it is hidden.
    pub async fn run(
        self,
        source: StoreSource,
        store_label: &str,
        signals: bool,
    ) -> Result<(), WebError> {
        self.start(source, store_label, signals)?
            .await
            .map_err(WebError::Serve)
    }

    /// Starts serving in the current actix System; the returned server runs
    /// while it is awaited or spawned.
    fn start(
        self,
        source: StoreSource,
        store_label: &str,
        signals: bool,
    ) -> Result<actix_web::dev::Server, WebError> {
        let slot = StoreSlot::default();
        actix_web::rt::spawn(slot.clone().open(source));
        let feed = Feed::new();
        actix_web::rt::spawn(feed.clone().run(slot.clone()));
        let state = web::Data::new(AppState {
            store: slot,
            feed,
            metrics: self.options.metrics.clone(),
            token: self.options.token.clone(),
            store_label: crate::store::redact(store_label),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(guard))
                .configure(super::routes::configure)
        })
        .workers(self.options.workers.max(1))
        // Open event streams would hold a graceful stop for the default 30 s.
        .shutdown_timeout(1)
        .listen(self.listener)
        .map_err(WebError::Serve)?;
        if !signals {
            server = server.disable_signals();
        }
        Ok(server.run())
    }

    /// Serves on a thread of its own (with its own actix System), so pages never
    /// run on the orchestrator's actor thread. It serves until [`WebHandle::stop`]
    /// or the end of the process.
    pub fn spawn(self, source: StoreSource, store_label: &str) -> Result<WebHandle, WebError> {
        let label = store_label.to_string();
        let (started, handle) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("porki-web".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let result = system.block_on(async move {
                    let server = self.start(source, &label, false);
                    let server = match server {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = started.send(Ok(server.handle()));
                    server.await
                });
                if let Err(e) = result {
                    tracing::error!(error = %e, "the dashboard stopped");
                }
            })
            .map_err(WebError::Serve)?;
        let handle = handle.recv().map_err(|_| {
            WebError::Serve(std::io::Error::other("the dashboard's thread ended"))
        })??;
        Ok(WebHandle { handle, thread })
    }
}

/// A dashboard serving on its own thread ([`WebServer::spawn`]).
pub struct WebHandle {
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl WebHandle {
    /// Stops serving (open connections are dropped) and waits for the thread.
    pub fn stop(self) {
        let handle = self.handle;
        // The handle's future only sends a message; any runtime can drive it.
        let stopped = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        });
        let _ = stopped.join();
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_needs_a_token() {
        let open = WebOptions::new("0.0.0.0:0".parse().unwrap());
        assert!(matches!(
            WebServer::bind(open.clone()),
            Err(WebError::TokenRequired { .. })
        ));
        let bad = WebOptions {
            token: Some("has space".into()),
            ..open.clone()
        };
        assert!(matches!(WebServer::bind(bad), Err(WebError::Token(_))));
        let secret = WebOptions {
            token: Some("s3cret".into()),
            ..open.clone()
        };
        assert!(!format!("{secret:?}").contains("s3cret"));
        let loopback = WebOptions::new("127.0.0.1:0".parse().unwrap());
        let server = WebServer::bind(loopback).unwrap();
        assert_ne!(server.local_addr().port(), 0);
    }
}
