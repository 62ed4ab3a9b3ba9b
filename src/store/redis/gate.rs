//! [`GateStore`] on Redis: the `llm:gate` sorted set of slot holders by expiry.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::store::{GateStore, StoreError, keys};

#[async_trait]
impl GateStore for RedisStore {
    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .gate_acquire
                .key(keys::LLM_GATE)
                .arg(token)
                .arg(cap)
                .arg(ttl.as_millis() as u64),
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
        let _: i64 = self.conn.clone().zrem(keys::LLM_GATE, token).await?;
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
