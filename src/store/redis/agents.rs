//! [`AgentStore`] on Redis: the `agents` set and the `agent:{NAME}:*` keys. Every
//! script here touches one agent's keys (one slot, the name's hash tag); the
//! process-wide `agents` set only ever gets single-key commands.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::domain::{AgentKind, check_id};
use crate::store::{
    AGENT_ERRORS_KEPT, AgentDetails, AgentField, AgentRecord, AgentStore, StoreError, keys,
};

/// What [`AgentStore::agent_details`] reads of one agent: registration, pause,
/// newest problems, whether its guard is held.
type Parts = (HashMap<String, String>, Option<String>, Vec<String>, bool);

/// Adds the reads of [`Parts`] for `name` to `pipe`.
fn read_parts(pipe: &mut redis::Pipeline, name: &str, errors: usize) {
    pipe.hgetall(keys::agent_registered(name))
        .get(keys::agent_field(name, AgentField::Paused))
        .lrange(keys::agent_errors(name), 0, errors.max(1) as isize - 1)
        .exists(keys::agent_active(name));
}

/// An agent's record from its registration hash; `None` if it has none.
fn record_of(name: String, mut fields: HashMap<String, String>) -> Option<AgentRecord> {
    if fields.is_empty() {
        return None;
    }
    Some(AgentRecord {
        name,
        goal: fields.remove("goal").unwrap_or_default(),
        role: fields.remove("role").filter(|r| !r.is_empty()),
        // Absent in records from before agents had kinds: builders then.
        kind: fields
            .remove("kind")
            .and_then(|k| AgentKind::parse(&k))
            .unwrap_or_default(),
        process: fields.remove("process").unwrap_or_default(),
        state: fields.remove("state").unwrap_or_default().into(),
    })
}

#[async_trait]
impl AgentStore for RedisStore {
    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        check_id("agent name", &record.name)?;
        if !self.is_cluster() {
            // Keys of a porki from before the hash tags, moved once; a cluster
            // never held any (registration could not run there).
            let mut invocation = self.scripts.agent_legacy.prepare_invoke();
            for (old, new) in keys::agent_legacy_moves(&record.name) {
                invocation.key(old).key(new);
            }
            let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        }
        let mut invocation = self.scripts.agent_register.prepare_invoke();
        invocation
            .key(keys::agent_registered(&record.name))
            .arg("goal")
            .arg(&record.goal)
            .arg("role")
            .arg(record.role.as_deref().unwrap_or(""))
            .arg("kind")
            .arg(record.kind.as_str())
            .arg("process")
            .arg(&record.process)
            .arg("state")
            .arg(record.state.to_string());
        let _: String = invocation.invoke_async(&mut self.conn.clone()).await?;
        // Listed once registered; idempotent, so a crash in between is healed by
        // the next registration.
        let _: () = self.conn.clone().sadd(keys::AGENTS, &record.name).await?;
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let names = self.sorted_members(keys::AGENTS).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let all = self
            .hgetall_each(names.iter().map(|name| keys::agent_registered(name)))
            .await?;
        Ok(names
            .into_iter()
            .zip(all)
            .filter_map(|(name, fields)| record_of(name, fields))
            .collect())
    }

    async fn agent_details(&self, errors: usize) -> Result<Vec<AgentDetails>, StoreError> {
        let names = self.sorted_members(keys::AGENTS).await?;
        let parts: Vec<Parts> = if self.is_cluster() {
            // One agent's keys share a slot (its name is their hash tag).
            let reads = names.iter().map(|name| {
                let mut conn = self.conn.clone();
                let mut pipe = redis::pipe();
                read_parts(&mut pipe, name, errors);
                async move { pipe.query_async::<Parts>(&mut conn).await }
            });
            futures::future::try_join_all(reads).await?
        } else if names.is_empty() {
            Vec::new()
        } else {
            let mut pipe = redis::pipe();
            for name in &names {
                read_parts(&mut pipe, name, errors);
            }
            let flat: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await?;
            flat.chunks(4)
                .map(|four| redis::from_redis_value(redis::Value::Array(four.to_vec())))
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Redis(e.into()))?
        };
        Ok(names
            .into_iter()
            .zip(parts)
            .filter_map(|(name, (fields, paused, mut problems, alive))| {
                problems.truncate(errors);
                Some(AgentDetails {
                    record: record_of(name, fields)?,
                    paused,
                    errors: problems,
                    alive,
                })
            })
            .collect())
    }

    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .get(keys::agent_field(name, field))
            .await?)
    }

    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = keys::agent_field(name, field);
        let mut conn = self.conn.clone();
        match value {
            Some(value) => conn.set::<_, _, ()>(key, value).await?,
            None => conn.del::<_, ()>(key).await?,
        }
        Ok(())
    }

    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .agent_swap
                .key(keys::agent_field(name, field))
                .arg(expected.unwrap_or(""))
                .arg(value),
        )
        .await
    }

    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError> {
        let key = keys::agent_errors(name);
        let _: () = redis::pipe()
            .atomic()
            .lpush(&key, message)
            .ignore()
            .ltrim(&key, 0, AGENT_ERRORS_KEPT as isize - 1)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .lrange(keys::agent_errors(name), 0, -1)
            .await?)
    }

    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.conn.clone().exists(keys::agent_active(name)).await?)
    }

    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .guard_take
                .key(keys::agent_active(name))
                .arg(token)
                .arg(ttl.as_millis() as u64),
        )
        .await
    }

    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // One command, no script: an idle agent's upkeep is this every third
        // of the TTL. Only the holder renews; should another process have
        // taken the guard meanwhile (ours was lost), extending its guard once
        // only delays a takeover from it, should it die at once. (Taking a
        // guard never extends another holder's: guard_take.lua.)
        let holder: Option<String> = redis::cmd("GETEX")
            .arg(keys::agent_active(name))
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(holder.as_deref() == Some(token))
    }

    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError> {
        self.run_flag_script(
            self.scripts
                .guard_release
                .key(keys::agent_active(name))
                .arg(token),
        )
        .await
        .map(drop)
    }
}
