//! [`GcStore`] on Redis: `gc_goal.lua` (a goal script, every task of the plan
//! declared through `need`) and `gc_agent.lua` (one agent's keys). The
//! process-wide `goals` and `agents` sets live in other slots, so a removed name
//! is taken off them afterwards with single-key commands.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::declare::GoalCall;
use super::{RedisStore, flag, unexpected};
use crate::store::{GcStore, StoreError, Sweep, keys};

/// Reads a gc script's answer: `{'gone'}`, `{'kept', why}`, or
/// `{'removed'|'would', state, age ms[, tasks]}`.
fn sweep_of(what: &str, reply: &[String]) -> Result<Sweep, StoreError> {
    let number = |i: usize| reply.get(i).and_then(|n| n.parse::<u64>().ok());
    match reply.first().map(String::as_str) {
        Some("gone") => Ok(Sweep::Gone),
        Some("kept") => Ok(Sweep::Kept),
        Some("removed" | "would") => Ok(Sweep::Removed {
            state: reply.get(1).cloned().unwrap_or_default(),
            age: Duration::from_millis(number(2).unwrap_or(0)),
            tasks: number(3).unwrap_or(0),
        }),
        _ => Err(unexpected(what, reply)),
    }
}

impl RedisStore {
    /// Takes `name` off the list `set` after its keys were removed. A name whose
    /// data came back meanwhile (`key` exists again: a goal planned or spent on,
    /// an agent registered) is put back, as the SREM may have come after the new
    /// data's SADD.
    async fn unlist(&self, set: &str, name: &str, key: String) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn.srem(set, name).await?;
        if conn.exists::<_, bool>(key).await? {
            let _: () = conn.sadd(set, name).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl GcStore for RedisStore {
    async fn sweep_goal(
        &self,
        goal: &str,
        retain: Duration,
        dry_run: bool,
    ) -> Result<Sweep, StoreError> {
        let retain = retain.as_millis().to_string();
        let dry = flag(dry_run);
        let call = GoalCall::new(goal, &[], &[&retain, dry]);
        let reply: Vec<String> = self.run_goal_unwatched(&self.scripts.gc_goal, call).await?;
        let sweep = sweep_of("gc_goal", &reply)?;
        if !dry_run && matches!(sweep, Sweep::Removed { .. } | Sweep::Gone) {
            self.forget_goal(goal);
            self.unlist(keys::GOALS, goal, keys::goal(goal)).await?;
        }
        Ok(sweep)
    }

    async fn agent_names(&self) -> Result<Vec<String>, StoreError> {
        self.sorted_members(keys::AGENTS).await
    }

    async fn sweep_agent(
        &self,
        name: &str,
        retain: Duration,
        dry_run: bool,
        keep_cursor: bool,
    ) -> Result<Sweep, StoreError> {
        let mut invocation = self.scripts.gc_agent.prepare_invoke();
        for key in keys::agent_keys(name) {
            invocation.key(key);
        }
        invocation
            .arg(retain.as_millis().to_string())
            .arg(flag(dry_run))
            .arg(flag(keep_cursor));
        let reply: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
        let sweep = sweep_of("gc_agent", &reply)?;
        // A kept cursor keeps the name listed, so a later sweep finds it again.
        let unlisted = match sweep {
            Sweep::Removed { .. } => !keep_cursor,
            Sweep::Gone => true,
            Sweep::Kept => false,
        };
        if !dry_run && unlisted {
            self.unlist(keys::AGENTS, name, keys::agent_registered(name))
                .await?;
        }
        Ok(sweep)
    }
}
