//! [`GateStore`] in memory: slot tokens and their expiry.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::MemoryStore;
use crate::store::{GateStore, StoreError};

#[async_trait]
impl GateStore for MemoryStore {
    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        state.gate.retain(|_, expiry| *expiry > now);
        let granted = cap == 0 || state.gate.contains_key(token) || state.gate.len() < cap as usize;
        if granted {
            state.gate.insert(token.to_string(), now + ttl);
        }
        Ok(granted)
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.gate.get_mut(token) {
            Some(expiry) if *expiry > now => {
                *expiry = now + ttl;
                Ok(true)
            }
            _ => {
                state.gate.remove(token);
                Ok(false)
            }
        }
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        self.lock().gate.remove(token);
        Ok(())
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        let now = Instant::now();
        Ok(self.lock().gate.values().filter(|e| **e > now).count() as u64)
    }
}
