//! Redis key names (DESIGN.md §4): the one place they are built. Scripts build no
//! key: every key a script touches is built here and passed in `KEYS` (see
//! `lua/lib.lua` for the layout of the goal scripts), so the server knows every
//! key of a script before it runs it. That is what keeps a script atomic on Redis
//! Cluster while its goal's slot is being migrated: the server checks the declared
//! keys are all on the node (else `ASK`/`TRYAGAIN`, retried by the client) instead
//! of failing the script half-way at the first key that has already moved.
//!
//! Hash tags: a goal's keys carry `{G}`, an agent's keys `{NAME}`, so each script
//! touches one slot. The process-wide keys (`goals`, `agents`) are touched only
//! by single-key commands and single-key scripts; the LLM gate's keys share the
//! slot of `llm:gate` (`{llm:gate}:…`).

use super::AgentField;

/// `goal:{G}`: the goal hash.
pub fn goal(goal: &str) -> String {
    format!("goal:{{{goal}}}")
}

/// `goal:{G}:merge`: the goal's merge lock, `TOKEN TASK FENCE` with a TTL
/// (worktree isolation: one merge into the goal branch at a time).
pub fn merge_lock(goal: &str) -> String {
    format!("goal:{{{goal}}}:merge")
}

/// `goal:{G}:ready` (roleless) or `goal:{G}:ready:role:R`: READY tasks by priority.
pub fn ready(goal: &str, role: Option<&str>) -> String {
    match role {
        Some(role) if !role.is_empty() => format!("goal:{{{goal}}}:ready:role:{role}"),
        _ => format!("goal:{{{goal}}}:ready"),
    }
}

/// `goal:{G}:delayed`: READY tasks backing off, by when they are due.
pub fn delayed(goal: &str) -> String {
    format!("goal:{{{goal}}}:delayed")
}

/// `goal:{G}:running`: RUNNING tasks, for the reaper.
pub fn running(goal: &str) -> String {
    format!("goal:{{{goal}}}:running")
}

/// `goal:{G}:roles`: the roles that have a ready index.
pub fn roles(goal: &str) -> String {
    format!("goal:{{{goal}}}:roles")
}

/// `dag:{G}:nodes`: task id → node JSON.
pub fn dag_nodes(goal: &str) -> String {
    format!("dag:{{{goal}}}:nodes")
}

/// `dag:{G}:deps`: task id → JSON list of its dependencies.
pub fn dag_deps(goal: &str) -> String {
    format!("dag:{{{goal}}}:deps")
}

/// `dag:{G}:dependents`: task id → JSON list of the tasks waiting for it.
pub fn dag_dependents(goal: &str) -> String {
    format!("dag:{{{goal}}}:dependents")
}

/// `task:{G}:T`: a task hash.
pub fn task(goal: &str, task: &str) -> String {
    format!("task:{{{goal}}}:{task}")
}

/// `task:{G}:T:lock`: the lease of a RUNNING task, `TOKEN FENCE` with a TTL.
pub fn task_lock(goal: &str, task: &str) -> String {
    format!("task:{{{goal}}}:{task}:lock")
}

/// `events:{G}`: the goal's event channel (a pub/sub channel, or a shard channel
/// on Redis Cluster, which lives in the goal's slot).
pub fn events(goal: &str) -> String {
    format!("events:{{{goal}}}")
}

/// The names `lua/lib.lua` gives the fixed keys of every goal script, in the
/// order [`goal_keys`] passes them as `KEYS[1]`… (a test checks lib.lua agrees).
pub const GOAL_KEY_NAMES: [&str; 9] = [
    "GOAL",
    "READY",
    "DELAYED",
    "RUNNING",
    "ROLES",
    "NODES",
    "DEPS",
    "DEPENDENTS",
    "EVENTS",
];

/// The fixed keys of every goal script, in [`GOAL_KEY_NAMES`] order. `events:{G}`
/// is a channel, not a key; it is declared with the keys so that on a cluster the
/// server routes and checks the script's `SPUBLISH` like the rest (same slot).
pub fn goal_keys(g: &str) -> [String; 9] {
    [
        goal(g),
        ready(g, None),
        delayed(g),
        running(g),
        roles(g),
        dag_nodes(g),
        dag_deps(g),
        dag_dependents(g),
        events(g),
    ]
}

/// `goals`: every goal with a plan.
pub const GOALS: &str = "goals";

/// `agents`: every registered agent.
pub const AGENTS: &str = "agents";

/// `agent:{NAME}:registered`: the registration hash.
pub fn agent_registered(name: &str) -> String {
    format!("agent:{{{name}}}:registered")
}

/// `agent:{NAME}:heartbeat`: liveness key with a TTL.
pub fn agent_heartbeat(name: &str) -> String {
    format!("agent:{{{name}}}:heartbeat")
}

/// `agent:{NAME}:active`: single-active guard token.
pub fn agent_active(name: &str) -> String {
    format!("agent:{{{name}}}:active")
}

/// `agent:{NAME}:FIELD`: one per-agent value.
pub fn agent_field(name: &str, field: AgentField) -> String {
    format!("agent:{{{name}}}:{}", field.as_str())
}

/// `agent:{NAME}:errors`: recent problems, newest first.
pub fn agent_errors(name: &str) -> String {
    format!("agent:{{{name}}}:errors")
}

/// Every key of an agent, as `lua/gc_agent.lua` takes them: registration,
/// heartbeat, guard, errors and heartbeat cursor first, then its other values.
pub fn agent_keys(name: &str) -> [String; 7] {
    [
        agent_registered(name),
        agent_heartbeat(name),
        agent_active(name),
        agent_errors(name),
        agent_field(name, AgentField::HeartbeatCursor),
        agent_field(name, AgentField::Paused),
        agent_field(name, AgentField::Memory),
    ]
}

/// The keys an agent had before they were hash-tagged (`agent:NAME:SUFFIX`), and
/// where each one lives now, for the one-time move on a single Redis (see
/// `lua/agent_legacy.lua`). The TTL keys (heartbeat, active guard) are left to expire.
pub fn agent_legacy_moves(name: &str) -> Vec<(String, String)> {
    let mut suffixes = vec!["registered", "errors"];
    suffixes.extend(
        [
            AgentField::HeartbeatCursor,
            AgentField::Paused,
            AgentField::Memory,
        ]
        .map(AgentField::as_str),
    );
    suffixes
        .into_iter()
        .map(|suffix| {
            (
                format!("agent:{name}:{suffix}"),
                format!("agent:{{{name}}}:{suffix}"),
            )
        })
        .collect()
}

/// `llm:gate`: LLM call slots by expiry (the LlmGate).
pub const LLM_GATE: &str = "llm:gate";

/// `{llm:gate}:queue`: callers waiting for an LLM call slot, by place. Its tag
/// hashes to `llm:gate`'s slot, so one script uses both.
pub const LLM_GATE_QUEUE: &str = "{llm:gate}:queue";

/// `{llm:gate}:seen`: waiting callers by when they stop counting as alive.
pub const LLM_GATE_SEEN: &str = "{llm:gate}:seen";

/// Pattern of every goal's event channel (single Redis: `PSUBSCRIBE`).
pub const EVENTS_PATTERN: &str = "events:*";

/// The goal id of an `events:{G}` channel.
pub fn goal_of_events_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("events:{")?.strip_suffix('}')
}

#[cfg(test)]
mod tests {
    //! The scripts and the Rust side meet in key names and in the order of `KEYS`:
    //! lib.lua names the fixed keys of a goal script in [`GOAL_KEY_NAMES`] order, no
    //! script builds a key of its own, and every script's keys share one slot.

    use redis::cluster_routing::Slot;

    use super::*;

    const LIB_LUA: &str = include_str!("lua/lib.lua");
    const GOAL: &str = "goal-1.a_b";
    const TASK: &str = "task.2";

    /// Every Lua file of the store, by name.
    fn lua_sources() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/lua");
        let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("src/store/lua is readable")
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .filter(|(name, _)| name.ends_with(".lua"))
            .collect();
        sources.sort();
        assert!(sources.len() > 20, "found the scripts in {}", dir.display());
        sources
    }

    #[test]
    fn lib_lua_names_the_fixed_keys_in_the_order_rust_passes_them() {
        let declared: Vec<(String, usize)> = LIB_LUA
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("local ")?.split_once(" = KEYS[")?;
                let index = rest.strip_suffix(']')?.parse().ok()?;
                Some((name.to_string(), index))
            })
            .collect();
        let expected: Vec<(String, usize)> = GOAL_KEY_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i + 1))
            .collect();
        assert_eq!(declared, expected);
        assert!(
            LIB_LUA.contains(&format!("local FIXED = {}\n", GOAL_KEY_NAMES.len())),
            "lib.lua counts {} fixed keys before the role and task keys",
            GOAL_KEY_NAMES.len()
        );
    }

    #[test]
    fn no_script_builds_a_key_name() {
        // A key built in Lua would be a string made from a key family's prefix or a
        // hash tag; every such name comes from Rust, through KEYS.
        let families = [
            "goal:", "task:", "dag:", "agent:", "events:", "llm:", ":lock", ":ready",
        ];
        for (name, source) in lua_sources() {
            for (n, line) in source.lines().enumerate() {
                let code = line.split("--").next().unwrap_or("");
                for quote in ['\'', '"'] {
                    for literal in code.split(quote).skip(1).step_by(2) {
                        assert!(
                            !literal.contains('{') && !families.iter().any(|f| literal.contains(f)),
                            "{name}:{}: {literal:?} looks like a key built in Lua; pass it in KEYS",
                            n + 1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_script_touches_one_slot() {
        let slot = Slot::for_key(goal(GOAL));
        let mut goal_script = goal_keys(GOAL).to_vec();
        goal_script.extend([
            ready(GOAL, Some("reviewer")),
            task(GOAL, TASK),
            task_lock(GOAL, TASK),
            merge_lock(GOAL),
        ]);
        for key in &goal_script {
            assert_eq!(Slot::for_key(key), slot, "{key} is in the goal's slot");
            assert!(
                key.contains(&format!("{{{GOAL}}}")),
                "{key} carries the goal's tag"
            );
        }
        assert_eq!(goal_of_events_channel(&events(GOAL)), Some(GOAL));

        let name = "research_agent";
        let slot = Slot::for_key(agent_registered(name));
        let mut agent_keys = vec![
            agent_heartbeat(name),
            agent_active(name),
            agent_errors(name),
        ];
        agent_keys.extend(
            [
                AgentField::HeartbeatCursor,
                AgentField::Paused,
                AgentField::Memory,
            ]
            .map(|f| agent_field(name, f)),
        );
        let mut every = super::agent_keys(name).to_vec();
        every.sort();
        let mut listed = agent_keys.clone();
        listed.push(agent_registered(name));
        listed.sort();
        assert_eq!(every, listed, "agent_keys names every key of an agent");
        for key in &agent_keys {
            assert_eq!(Slot::for_key(key), slot, "{key} is in the agent's slot");
        }
        for (old, new) in agent_legacy_moves(name) {
            assert_eq!(old.replace(name, &format!("{{{name}}}")), new);
        }
        for key in [LLM_GATE_QUEUE, LLM_GATE_SEEN] {
            assert_eq!(
                Slot::for_key(key),
                Slot::for_key(LLM_GATE),
                "{key} is in llm:gate's slot"
            );
        }
    }
}
