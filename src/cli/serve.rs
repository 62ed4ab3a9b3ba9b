//! `porki serve`, and the `--http` flag of `porki run` and `porki demo`: the
//! web dashboard, `/metrics` and health checks ([`porki::web`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use porki::metrics::Metrics;
use porki::store::{self, Store};
use porki::web::{StoreSource, WebError, WebOptions, WebServer};

use super::usage;

/// Flags of `porki serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: super::StoreArgs,
    /// Address to serve on; anything but loopback needs --http-token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Token every request must carry (`Authorization: Bearer …`, or `?token=…` once in a browser).
    #[arg(
        long,
        env = "PORKI_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    http_token: Option<String>,
}

/// The dashboard flags of `porki run` and `porki demo`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Also serve the web dashboard, /metrics and health checks on this address (e.g. 127.0.0.1:7878).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Token every dashboard request must carry; required when --http is not a loopback address.
    #[arg(
        long,
        env = "PORKI_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    http_token: Option<String>,
}

impl HttpArgs {
    /// The dashboard token, if one is set (a secret CLI children must not see).
    pub fn token(&self) -> Option<&str> {
        self.http_token.as_deref()
    }

    /// Binds the dashboard's address when `--http` is given (so a taken port or a
    /// missing token fails before anything starts).
    pub fn bind(&self, metrics: Arc<Metrics>) -> anyhow::Result<Option<WebServer>> {
        let Some(listen) = self.http else {
            return Ok(None);
        };
        let options = WebOptions {
            token: self.http_token.clone(),
            metrics: Some(metrics),
            ..WebOptions::new(listen)
        };
        bind(options).map(Some)
    }
}

/// Binds, sorting the errors: a refused flag is a usage error (exit 2).
fn bind(options: WebOptions) -> anyhow::Result<WebServer> {
    WebServer::bind(options).map_err(|e| match e {
        WebError::TokenRequired { .. } | WebError::Token(_) => usage(e),
        other => other.into(),
    })
}

/// Starts a bound dashboard on its own thread, reading `store` (the embedded
/// one is shared; a Redis store gets its own connection on the server's thread).
pub fn start(server: WebServer, url: &str, store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let source = if url.starts_with("memory:") {
        StoreSource::Open(store.clone())
    } else {
        StoreSource::Url(url.to_string())
    };
    let address = server.url();
    tracing::info!(url = %address, "dashboard serving");
    println!("porki: dashboard at {address}");
    // The server lives as long as the process.
    server.spawn(source, url)?;
    Ok(())
}

/// Runs `porki serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let url = args.store.redis_url;
    // A URL that can never work is refused now, not retried behind the pages.
    store::check_url(&url).map_err(usage)?;
    if url.starts_with("memory:") {
        return Err(usage(format!(
            "{url} is the store of one process and holds nothing here: point --redis-url (or PORKI_REDIS_URL) at the orchestrator's Redis, or run `porki run --http ADDR` / `porki demo --http ADDR` to serve the embedded store"
        )));
    }
    // Credentials or a TLS set-up that cannot work are refused now too; a
    // Redis that is not up yet is waited for behind the pages.
    let opened = super::block_on(async { Ok(store::open(&url).await.map(drop)) })?;
    if let Err(e) = opened
        && e.is_wrong_url()
    {
        return Err(usage(e));
    }
    let server = bind(WebOptions {
        token: args.http_token,
        workers: 2,
        ..WebOptions::new(args.listen)
    })?;
    println!(
        "porki serve: dashboard at {} (store {}); Ctrl-C to stop",
        server.url(),
        porki::store::redact(&url)
    );
    let system = actix_web::rt::System::new();
    system
        .block_on(server.run(StoreSource::Url(url.clone()), &url, true))
        .context("the dashboard stopped")?;
    Ok(ExitCode::SUCCESS)
}
