//! Redis key names (DESIGN.md §4). The goal is a hash tag so a goal's keys share a slot.

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

/// `dag:{G}:dependents`: task id → JSON list of the tasks waiting on it.
pub fn dag_dependents(goal: &str) -> String {
    format!("dag:{{{goal}}}:dependents")
}

/// `task:{G}:`: prefix of every task hash and lock of the goal.
pub fn task_prefix(goal: &str) -> String {
    format!("task:{{{goal}}}:")
}

/// `task:{G}:T`: a task hash.
pub fn task(goal: &str, task: &str) -> String {
    format!("task:{{{goal}}}:{task}")
}

/// `task:{G}:T:lock`: a task's lease, `TOKEN FENCE`, while it is RUNNING.
pub fn task_lock(goal: &str, task: &str) -> String {
    format!("task:{{{goal}}}:{task}:lock")
}

/// `goal:{G}:ready`: READY tasks without a role, by priority; role indexes append `:role:R`.
pub fn ready(goal: &str) -> String {
    format!("goal:{{{goal}}}:ready")
}

/// `goal:{G}:ready:role:R`: READY tasks of one role, by priority.
pub fn ready_role(goal: &str, role: &str) -> String {
    format!("goal:{{{goal}}}:ready:role:{role}")
}

/// `goal:{G}:delayed`: READY tasks backing off before a retry, by due time.
pub fn delayed(goal: &str) -> String {
    format!("goal:{{{goal}}}:delayed")
}

/// `goal:{G}:running`: RUNNING tasks, for the reaper.
pub fn running(goal: &str) -> String {
    format!("goal:{{{goal}}}:running")
}

/// `goal:{G}:roles`: roles that have a READY index.
pub fn roles(goal: &str) -> String {
    format!("goal:{{{goal}}}:roles")
}

/// `events:{G}`: pub/sub channel of the goal's state changes.
pub fn events(goal: &str) -> String {
    format!("events:{{{goal}}}")
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
