//! The connection a [`super::RedisStore`] sends commands on: one Redis, or a Redis
//! Cluster. Both are multiplexed and cheap to clone; callers see one type.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value};

use crate::store::StoreError;
use crate::store::error::is_auth_error;
use crate::store::url::{bad, redact};

/// The environment variable naming the CA file (PEM) that porki trusts for
/// `rediss://` instead of the system's CAs.
pub(crate) const REDIS_CA_ENV: &str = "PORKI_REDIS_CA";

/// Connection timeout of every node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one reply: writing a 10,000-task plan is one script that can
/// take a second or more.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the cluster client retries a command before the caller sees the
/// error: `MOVED` and `ASK` are followed at once; a node that stopped answering
/// (a primary being failed over) and `TRYAGAIN` (a slot being migrated) are
/// retried after a wait of 50 ms doubling to 1 s, about 10 s in all, which
/// covers a failover with a `cluster-node-timeout` of a few seconds. Past that
/// the caller backs off as after any outage.
const CLUSTER_RETRIES: u32 = 14;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 1000;

/// A connection to one Redis or to a Redis Cluster.
#[derive(Clone)]
pub(super) enum Conn {
    /// One Redis, auto-reconnecting.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the node that owns their slot.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects to one Redis at `url`; refuses a node of a cluster.
    pub(super) async fn single(url: &str) -> Result<(Self, redis::Client), StoreError> {
        let mut client = redis::Client::open(url).map_err(|e| bad(url, &e.to_string()))?;
        if let Some(certs) = tls_certificates(url)? {
            client = redis::Client::build_with_tls(url, certs).map_err(|e| StoreError::Tls {
                url: redact(url),
                reason: format!(
                    "the CA file {REDIS_CA_ENV} names cannot be used ({e}): point it at the PEM file of the CA that signed the server's certificate"
                ),
            })?;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One quick try per attempt: callers decide how to back off and what
            // to log, and a dropped connection is re-dialled on the next command.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| connect_error(url, e))?;
        // A server that refuses INFO (renamed, or denied by an ACL) is taken at
        // its word; one that wants a password porki was not given is not.
        let info: Option<String> = match redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await
        {
            Ok(info) => Some(info),
            Err(e) if is_auth_error(&e) => return Err(connect_error(url, e)),
            Err(_) => None,
        };
        if info.is_some_and(|info| info.lines().any(|line| line.trim() == "cluster_enabled:1")) {
            return Err(StoreError::IsACluster { url: redact(url) });
        }
        Ok((Conn::Single(conn), client))
    }

    /// Connects to the Redis Cluster the seed `nodes` belong to.
    pub(super) async fn cluster(url: &str, nodes: &[String]) -> Result<Self, StoreError> {
        let client = cluster_client(url, nodes, None)?;
        match client.get_async_connection().await {
            Ok(conn) => Ok(Conn::Cluster(conn)),
            Err(e) if e.to_string().contains("cluster support disabled") => {
                Err(StoreError::NotACluster { url: redact(url) })
            }
            Err(e) => Err(connect_error(url, e)),
        }
    }

    /// Whether commands go to a cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

/// A cluster client for the seed `nodes` of `url`, with porki's timeouts and
/// retries; with `push`, on RESP3, delivering pushes (sharded pub/sub) there.
pub(super) fn cluster_client(
    url: &str,
    nodes: &[String],
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ClusterClient, StoreError> {
    let mut builder = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
        .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
    if let Some(certs) = tls_certificates(url)? {
        builder = builder.certs(certs);
    }
    if let Some(push) = push {
        builder = builder
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push);
    }
    builder.build().map_err(|e| bad(url, &e.to_string()))
}

/// The CA [`REDIS_CA_ENV`] names, for a TLS `url`; `None` when it is unset
/// (the system's CAs are trusted). Set with a URL without TLS, it is refused:
/// whoever set it meant the connection to be encrypted.
fn tls_certificates(url: &str) -> Result<Option<TlsCertificates>, StoreError> {
    let Some(path) = std::env::var_os(REDIS_CA_ENV).filter(|path| !path.is_empty()) else {
        return Ok(None);
    };
    let tls_error = |reason: String| StoreError::Tls {
        url: redact(url),
        reason,
    };
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if !matches!(scheme, "rediss" | "rediss+cluster") {
        return Err(tls_error(format!(
            "{REDIS_CA_ENV} is set, but the URL does not use TLS: use rediss://… (rediss+cluster://… for a cluster), or unset {REDIS_CA_ENV}"
        )));
    }
    let path = std::path::PathBuf::from(path);
    let pem = std::fs::read(&path).map_err(|e| {
        tls_error(format!(
            "{REDIS_CA_ENV}={} cannot be read ({e}): point it at the PEM file of the CA that signed the server's certificate",
            path.display()
        ))
    })?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(tls_error(format!(
            "{REDIS_CA_ENV}={} holds no PEM certificate: point it at the PEM file of the CA that signed the server's certificate",
            path.display()
        )));
    }
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// A failed connection to `url` as the error that says what to do: refused
/// credentials and untrusted certificates apart from outages.
fn connect_error(url: &str, e: RedisError) -> StoreError {
    // The cluster client gives what each node said as text only.
    let text = e.to_string();
    if is_auth_error(&e)
        || ["AuthenticationFailed", "NOAUTH", "WRONGPASS"]
            .iter()
            .any(|said| text.contains(said))
    {
        return StoreError::Refused {
            url: redact(url),
            detail: text,
        };
    }
    if is_certificate_error(&e) {
        return StoreError::Tls {
            url: redact(url),
            reason: format!(
                "porki does not trust the server's certificate ({e}): set {REDIS_CA_ENV} to the PEM file of the CA that signed it (without it, the system's CAs are trusted)"
            ),
        };
    }
    e.into()
}

/// Whether `e` is a TLS certificate the client refused (rustls says
/// `invalid peer certificate: …`, somewhere in the chain of causes).
fn is_certificate_error(e: &RedisError) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(error) = cause {
        if error.to_string().contains("invalid peer certificate") {
            return true;
        }
        cause = error.source();
    }
    false
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
