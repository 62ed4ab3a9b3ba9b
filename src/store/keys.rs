//! Redis key names (DESIGN.md §4) that Rust addresses. The goal is a hash tag so a
//! goal's keys share a slot; the keys only the scripts touch (ready and delayed
//! indexes, running set, roles, locks, dependents, events channel) are named in
//! `lib.lua`.

/// `goal:{G}`: the goal hash.
pub fn goal(goal: &str) -> String {
    format!("goal:{{{goal}}}")
}

/// `dag:{G}:nodes`: task id → node JSON.
pub fn dag_nodes(goal: &str) -> String {
    format!("dag:{{{goal}}}:nodes")
}

/// `dag:{G}:deps`: task id → JSON list of its dependencies.
pub fn dag_deps(goal: &str) -> String {
    format!("dag:{{{goal}}}:deps")
}

/// `task:{G}:T`: a task hash.
pub fn task(goal: &str, task: &str) -> String {
    format!("task:{{{goal}}}:{task}")
}

/// `goals`: every goal with a plan.
pub const GOALS: &str = "goals";

/// `agents`: every registered agent.
pub const AGENTS: &str = "agents";

/// `agent:NAME:registered`: the registration hash.
pub fn agent_registered(name: &str) -> String {
    format!("agent:{name}:registered")
}

/// `agent:NAME:heartbeat`: liveness key with a TTL.
pub fn agent_heartbeat(name: &str) -> String {
    format!("agent:{name}:heartbeat")
}

/// `agent:NAME:active`: single-active guard token.
pub fn agent_active(name: &str) -> String {
    format!("agent:{name}:active")
}

/// `llm:gate`: LLM call slots by expiry (the LlmGate).
pub const LLM_GATE: &str = "llm:gate";

/// Pattern of every goal's event channel.
pub const EVENTS_PATTERN: &str = "events:*";

/// The goal id of an `events:{G}` channel.
pub fn goal_of_events_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("events:{")?.strip_suffix('}')
}

/// `agent:NAME:FIELD`: one per-agent value.
pub fn agent_field(name: &str, field: super::AgentField) -> String {
    format!("agent:{name}:{}", field.as_str())
}

/// `agent:NAME:errors`: recent problems, newest first.
pub fn agent_errors(name: &str) -> String {
    format!("agent:{name}:errors")
}
