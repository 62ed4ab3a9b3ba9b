//! Agents: registration, liveness, the single-active guard, and the per-agent
//! values and problems kept under `agent:NAME:*`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// An agent's registration record (`agent:NAME:registered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// Goal it works on.
    pub goal: String,
    /// Role, if any.
    pub role: Option<String>,
    /// Host and process running it, `host:pid`.
    pub process: String,
    /// `running`, `stopped` or `failed: reason`.
    pub state: String,
}

/// A per-agent value kept at `agent:NAME:FIELD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentField {
    /// How much of the heartbeat file was applied (`lines:sha256`).
    HeartbeatCursor,
    /// Set while a PAUSE is in effect (`drain` or `release`).
    Paused,
    /// The agent's memory snapshot (a JSON list of recent actions).
    Memory,
}

impl AgentField {
    /// The key suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentField::HeartbeatCursor => "heartbeat_cursor",
            AgentField::Paused => "paused",
            AgentField::Memory => "memory",
        }
    }
}

/// Most recent entries kept in `agent:NAME:errors`.
pub const AGENT_ERRORS_KEPT: usize = 100;

/// What the store keeps about each agent. Every method is atomic with respect to
/// every other caller.
#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Records an agent in `agents` and `agent:NAME:registered`.
    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError>;

    /// Registered agents, sorted by name.
    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Reads `agent:NAME:FIELD`.
    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError>;

    /// Writes `agent:NAME:FIELD`; `None` deletes it.
    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Writes `agent:NAME:FIELD` only if it still holds `expected` (`None`: absent);
    /// false if someone changed it first.
    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError>;

    /// Adds a problem to `agent:NAME:errors` (newest first, the last 100 kept).
    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError>;

    /// The agent's recorded problems, newest first.
    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError>;

    /// Refreshes `agent:NAME:heartbeat`, which expires after `ttl` without refresh.
    async fn agent_heartbeat(&self, name: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Whether `agent:NAME:heartbeat` is live.
    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError>;

    /// Takes `agent:NAME:active` for `token` if nobody holds it (or `token` already does).
    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends the guard if `token` holds it; false if it was lost.
    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the guard if `token` holds it.
    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError>;
}
