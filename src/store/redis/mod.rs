//! The Redis backend: one Lua script per multi-key change, invoked by SHA.
//!
//! The connection, the script runners and the reply helpers live here; each
//! concern's trait is implemented in its own file (`tasks.rs`, `control.rs`,
//! `goals.rs` with `events.rs`, `gate.rs`, `agents.rs`).

mod agents;
mod control;
mod events;
mod gate;
mod goals;
mod scripts;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, FromRedisValue, Script, ScriptInvocation};

use self::events::EventFeed;
use self::scripts::Scripts;
use super::{Lease, StoreError, keys};
use crate::domain::TaskStatus;

/// The task store on Redis, over one auto-reconnecting multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    events: Arc<EventFeed>,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port[/db]`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        // Writing a 10,000-task plan is one script that can take a second or more.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            // One quick try per attempt: callers decide how to back off and what
            // to log, and a dropped connection is re-dialled on the next command.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            scripts: Arc::new(Scripts::new()),
            events: Arc::new(EventFeed::new()),
        })
    }

    /// A handle on the underlying connection, for callers that need plain commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs a task script with `goal:{G}` as its key and `G` then `args` as ARGV.
    async fn run_task_script<T: FromRedisValue>(
        &self,
        script: &Script,
        goal: &str,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let mut invocation = script.key(keys::goal(goal));
        invocation.arg(goal);
        for arg in args {
            invocation.arg(*arg);
        }
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
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
        let reply: Vec<String> = self.run_task_script(script, &lease.goal, &args).await?;
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

    /// `HGETALL` of every key, in one round trip; empty maps for missing keys.
    async fn hgetall_each(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<HashMap<String, String>>, StoreError> {
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

/// A duration as a script argument in ms, at least 1 (`PX 0` is an error).
fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}
