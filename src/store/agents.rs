//! Agents: registration, liveness, the single-active guard, and the per-agent
//! values and problems kept under `agent:NAME:*`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::AgentKind;

/// An agent's registration record (`agent:NAME:registered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// Goal it works on.
    pub goal: String,
    /// Role, if any.
    pub role: Option<String>,
    /// What it does in its team; records written before agents had kinds read
    /// as builders.
    #[serde(default)]
    pub kind: AgentKind,
    /// Host and process running it, `host:pid`.
    pub process: String,
    /// Where it is in its life.
    pub state: AgentState,
}

/// Where a registered agent is in its life, as `agent:NAME:registered` keeps it
/// (`running`, `retired`, `stopped`, `failed: reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum AgentState {
    /// Working on its goal in some process.
    Running,
    /// Its goal is complete.
    Retired,
    /// Stopped (shutdown, STOP, a removed declaration).
    Stopped,
    /// Crashed more often than the restart policy allows; the reason.
    Failed(String),
    /// A state porki does not know (written by another program), as stored.
    Unknown(String),
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentState::Running => f.write_str("running"),
            AgentState::Retired => f.write_str("retired"),
            AgentState::Stopped => f.write_str("stopped"),
            AgentState::Failed(reason) => write!(f, "failed: {reason}"),
            AgentState::Unknown(text) => f.write_str(text),
        }
    }
}

impl From<String> for AgentState {
    fn from(text: String) -> Self {
        match text.as_str() {
            "running" => AgentState::Running,
            "retired" => AgentState::Retired,
            "stopped" => AgentState::Stopped,
            _ => match text.strip_prefix("failed: ") {
                Some(reason) => AgentState::Failed(reason.to_string()),
                None => AgentState::Unknown(text),
            },
        }
    }
}

impl From<AgentState> for String {
    fn from(state: AgentState) -> Self {
        state.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::AgentState;

    #[test]
    fn agent_states_read_back_as_stored() {
        for state in [
            AgentState::Running,
            AgentState::Retired,
            AgentState::Stopped,
            AgentState::Failed("panicked (5 restarts within 60s)".into()),
            AgentState::Unknown("sleeping".into()),
        ] {
            assert_eq!(AgentState::from(state.to_string()), state);
        }
        assert_eq!(AgentState::Stopped.to_string(), "stopped");
    }
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

/// An agent as `porki status` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDetails {
    /// The registration record.
    pub record: AgentRecord,
    /// `drain` or `release` while a PAUSE is in effect ([`AgentField::Paused`]).
    pub paused: Option<String>,
    /// Its newest problems, newest first (as many as were asked for).
    pub errors: Vec<String>,
    /// Whether its guard is held (it runs in some process now).
    pub alive: bool,
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

    /// Every registered agent (sorted by name) with its pause, its `errors`
    /// newest problems and whether it is alive, read together: on one Redis in
    /// one round trip after the list, on a cluster one per agent (its keys share
    /// a slot), all at once.
    async fn agent_details(&self, errors: usize) -> Result<Vec<AgentDetails>, StoreError>;

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

    /// Whether the agent runs in some process now: its guard
    /// (`agent:NAME:active`) is held.
    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError>;

    /// Takes `agent:NAME:active` for `token` if nobody holds it (or `token` already
    /// does), for `ttl`.
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
