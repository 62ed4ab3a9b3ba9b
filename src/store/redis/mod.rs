//! The Redis backend: one Lua script per multi-key change, invoked by SHA, on one
//! Redis or on a Redis Cluster.
//!
//! The connection (`conn.rs`), the script runners (`declare.rs` for goal scripts,
//! which declare every key they touch) and the reply helpers live here; each
//! concern's trait is implemented in its own file (`tasks.rs`, `control.rs`,
//! `team.rs`, `goals.rs` with `events.rs` and `shard_events.rs`, `gate.rs`,
//! `agents.rs`, `gc.rs`).

mod agents;
mod conn;
mod control;
mod declare;
mod events;
mod gate;
mod gc;
mod goals;
mod merge;
mod scripts;
mod shard_events;
mod tasks;
mod team;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, FromRedisValue, Script, ScriptInvocation};

use self::conn::Conn;
use self::declare::{GoalCall, Hints};
use self::events::EventFeed;
use self::scripts::Scripts;
use super::{Lease, StoreError};
use crate::domain::TaskStatus;

/// The task store on Redis: one auto-reconnecting multiplexed connection to one
/// Redis, or a cluster connection that sends each command to the node owning its
/// slot and follows `MOVED`/`ASK` and failovers.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Arc<Scripts>,
    events: Arc<EventFeed>,
    hints: Arc<Hints>,
}

impl RedisStore {
    /// Connects to one Redis at `url` (`redis://host:port[/db]`, `rediss://…`,
    /// `redis+unix:///path`). Over TLS it trusts the CA file `PORKI_REDIS_CA`
    /// names when it is set, else the system's CAs.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (conn, client) = Conn::single(url).await?;
        let hints = Arc::default();
        Ok(Self::new(
            conn,
            EventFeed::single(client, Arc::clone(&hints)),
            hints,
        ))
    }

    /// Connects to a Redis Cluster through its seed nodes, named by `url`
    /// (`redis+cluster://host:port[,host:port…]`, `rediss+cluster://…`).
    pub async fn connect_cluster(url: &str) -> Result<Self, StoreError> {
        let nodes = match super::url::StoreUrl::parse(url)? {
            super::url::StoreUrl::Cluster(nodes) => nodes,
            _ => {
                return Err(super::url::bad(
                    url,
                    "a cluster URL starts with redis+cluster:// or rediss+cluster://",
                ));
            }
        };
        let conn = Conn::cluster(url, &nodes).await?;
        let hints = Arc::default();
        Ok(Self::new(
            conn,
            EventFeed::cluster(url, nodes, Arc::clone(&hints)),
            hints,
        ))
    }

    fn new(conn: Conn, events: EventFeed, hints: Arc<Hints>) -> Self {
        Self {
            conn,
            scripts: Arc::new(Scripts::new()),
            events: Arc::new(events),
            hints,
        }
    }

    /// Whether this store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Runs a goal script about `tasks` with `args` (see [`declare`]).
    async fn run_task_script<T: FromRedisValue>(
        &self,
        script: &Script,
        goal: &str,
        tasks: &[&str],
        args: &[&str],
    ) -> Result<T, StoreError> {
        self.run_goal(script, GoalCall::new(goal, tasks, args))
            .await
    }

    /// Runs a lease-checked script and turns `lost` into [`StoreError::LeaseLost`].
    async fn run_lease_script(
        &self,
        script: &Script,
        lease: &Lease,
        extra: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let fence = lease.fence.to_string();
        let mut args = vec![lease.task.as_str(), lease.token.as_str(), fence.as_str()];
        args.extend_from_slice(extra);
        let reply: Vec<String> = self
            .run_task_script(script, &lease.goal, &[&lease.task], &args)
            .await?;
        if is_lost(&reply) {
            return Err(StoreError::lease_lost(lease));
        }
        Ok(reply)
    }

    /// Runs a script that answers 1 (done) or 0 (refused).
    async fn run_flag_script(&self, invocation: &ScriptInvocation<'_>) -> Result<bool, StoreError> {
        let answer: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(answer == 1)
    }

    /// The members of a set, sorted.
    async fn sorted_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut members: Vec<String> = self.conn.clone().smembers(key).await?;
        members.sort();
        Ok(members)
    }

    /// `HGETALL` of every key, empty maps for missing keys: one pipelined round
    /// trip, or on a cluster, where a pipeline must stay in one slot and these
    /// keys may not, one concurrent command each.
    async fn hgetall_each(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<HashMap<String, String>>, StoreError> {
        if self.conn.is_cluster() {
            let reads = keys.into_iter().map(|key| {
                let mut conn = self.conn.clone();
                async move { conn.hgetall::<_, HashMap<String, String>>(key).await }
            });
            return Ok(futures::future::try_join_all(reads).await?);
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(key);
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }
}

/// Whether a lease-checked script found the lease stale.
fn is_lost(reply: &[String]) -> bool {
    reply.first().map(String::as_str) == Some("lost")
}

/// A script reply porki does not understand.
fn unexpected(what: &str, reply: &[String]) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what} script reply"),
        detail: format!("{reply:?}"),
    }
}

/// Reads a task status as the scripts store it (`READY`…).
fn parse_status(s: &str) -> Result<TaskStatus, StoreError> {
    s.parse().map_err(|detail| StoreError::Corrupt {
        what: "task status".into(),
        detail,
    })
}

/// A flag argument of a script.
fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// A result's artifacts as the JSON list the scripts store.
fn artifacts_json(result: &crate::store::TaskResult) -> String {
    serde_json::to_string(&result.artifacts).expect("strings serialize")
}

/// A duration as a script argument in ms, at least 1 (`PX 0` is an error).
fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}
