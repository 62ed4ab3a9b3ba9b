//! [`GateStore`] on Redis: the `llm:gate` sorted set of slot holders by expiry,
//! and the waiters' queue and liveness (`{llm:gate}:queue`, `{llm:gate}:seen`),
//! in the same slot so one script uses all three.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::store::{GateStore, SlotAsk, StoreError, keys};

#[async_trait]
impl GateStore for RedisStore {
    async fn gate_acquire(&self, token: &str, ask: SlotAsk) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .gate_acquire
                .key(keys::LLM_GATE)
                .key(keys::LLM_GATE_QUEUE)
                .key(keys::LLM_GATE_SEEN)
                .arg(token)
                .arg(ask.cap)
                .arg(ask.ttl.as_millis() as u64)
                .arg(ask.head_start.as_millis() as u64)
                .arg(ask.alive_for.as_millis() as u64),
        )
        .await
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .gate_renew
                .key(keys::LLM_GATE)
                .arg(token)
                .arg(ttl.as_millis() as u64),
        )
        .await
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        self.run_flag_script(
            self.scripts
                .gate_release
                .key(keys::LLM_GATE)
                .key(keys::LLM_GATE_QUEUE)
                .key(keys::LLM_GATE_SEEN)
                .arg(token),
        )
        .await?;
        Ok(())
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        let count: u64 = self
            .scripts
            .gate_count
            .key(keys::LLM_GATE)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
