//! [`AgentStore`] in memory: registrations, guards, values and errors.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::MemoryStore;
use crate::domain::check_id;
use crate::store::{
    AGENT_ERRORS_KEPT, AgentDetails, AgentField, AgentRecord, AgentStore, StoreError,
};

#[async_trait]
impl AgentStore for MemoryStore {
    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        check_id("agent name", &record.name)?;
        let mut state = self.lock();
        // As on Redis, where the registration hash is replaced whole: when it
        // changed, and no longer when a sweep found it dead.
        state
            .agent_changed
            .insert(record.name.clone(), super::now_ms());
        state.agent_dead_since.remove(&record.name);
        state.agents.insert(record.name.clone(), record.clone());
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(self.lock().agents.values().cloned().collect())
    }

    async fn agent_details(&self, errors: usize) -> Result<Vec<AgentDetails>, StoreError> {
        let state = self.lock();
        let now = Instant::now();
        Ok(state
            .agents
            .values()
            .map(|record| AgentDetails {
                paused: state
                    .agent_values
                    .get(&(record.name.clone(), AgentField::Paused))
                    .cloned(),
                errors: state
                    .agent_errors
                    .get(&record.name)
                    .map(|e| e.iter().take(errors).cloned().collect())
                    .unwrap_or_default(),
                alive: state
                    .guards
                    .get(&record.name)
                    .is_some_and(|(_, expiry)| *expiry > now),
                record: record.clone(),
            })
            .collect())
    }

    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .agent_values
            .get(&(name.to_string(), field))
            .cloned())
    }

    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = (name.to_string(), field);
        match value {
            Some(value) => state.agent_values.insert(key, value.to_string()),
            None => state.agent_values.remove(&key),
        };
        Ok(())
    }

    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let key = (name.to_string(), field);
        if state.agent_values.get(&key).map(String::as_str) != expected {
            return Ok(false);
        }
        state.agent_values.insert(key, value.to_string());
        Ok(true)
    }

    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let errors = state.agent_errors.entry(name.to_string()).or_default();
        errors.push_front(message.to_string());
        errors.truncate(AGENT_ERRORS_KEPT);
        Ok(())
    }

    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .lock()
            .agent_errors
            .get(name)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .guards
            .get(name)
            .is_some_and(|(_, expiry)| *expiry > Instant::now()))
    }

    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let free = state
            .guards
            .get(name)
            .is_none_or(|(holder, expiry)| holder == token || *expiry <= now);
        if free {
            state
                .guards
                .insert(name.to_string(), (token.to_string(), now + ttl));
        }
        Ok(free)
    }

    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.guards.get_mut(name) {
            Some((holder, expiry)) if holder == token && *expiry > now => {
                *expiry = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .guards
            .get(name)
            .is_some_and(|(holder, _)| holder == token)
        {
            state.guards.remove(name);
        }
        Ok(())
    }
}
