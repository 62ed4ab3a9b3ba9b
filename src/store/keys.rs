//! Redis key names (DESIGN.md §4) that Rust addresses. The goal is a hash tag so a
//! goal's keys share a slot; the keys only the scripts touch (ready and delayed
//! indexes, running set, roles, locks, dependents, events channel) are named in
//! `lua/lib.lua`. The test below evaluates lib.lua's key builders and checks that
//! both sides name the same keys.

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

#[cfg(test)]
mod tests {
    //! The scripts and the Rust readers meet in key names, so the names built here
    //! and the ones `lib.lua` builds must agree. lib.lua's key builders are
    //! evaluated with a tiny interpreter of the one form they take: string
    //! literals, names and calls joined by `..`.

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const LIB_LUA: &str = include_str!("lua/lib.lua");
    const GOAL: &str = "goal-1.a_b";
    const TASK: &str = "task.2";
    const ROLE: &str = "reviewer";

    /// lib.lua's key builders: upper-case constants (`local DELAYED = …`) and the
    /// `return`s of `local function *_key(param)`.
    #[derive(Default)]
    struct LuaKeys {
        constants: BTreeMap<String, String>,
        functions: BTreeMap<String, (String, Vec<String>)>,
    }

    impl LuaKeys {
        fn parse(source: &str) -> Self {
            let mut keys = LuaKeys::default();
            let mut lines = source.lines().map(str::trim);
            while let Some(line) = lines.next() {
                if let Some((name, expr)) = line
                    .strip_prefix("local ")
                    .and_then(|rest| rest.split_once(" = "))
                    .filter(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                {
                    // KEYS[n] is a key the caller passes (goal:{G}), not one built here.
                    if !expr.starts_with("KEYS[") {
                        let value = keys.eval(expr, None);
                        keys.constants.insert(name.to_string(), value);
                    }
                } else if let Some(header) = line.strip_prefix("local function ") {
                    let (name, rest) = header.split_once('(').expect("a function header");
                    let (param, body) = rest.split_once(')').expect("a parameter list");
                    if !name.ends_with("_key") {
                        continue;
                    }
                    let mut body = body.to_string();
                    if !body.trim_end().ends_with(" end") {
                        for line in lines.by_ref() {
                            if line == "end" {
                                break;
                            }
                            body.push('\n');
                            body.push_str(line);
                        }
                    }
                    let returns = body
                        .split("return ")
                        .skip(1)
                        .map(|r| {
                            let r = r.lines().next().unwrap_or("").trim();
                            r.strip_suffix(" end").unwrap_or(r).trim().to_string()
                        })
                        .collect();
                    keys.functions
                        .insert(name.to_string(), (param.to_string(), returns));
                }
            }
            keys
        }

        /// Evaluates `a .. b .. f(x)`; `arg` binds a function's parameter.
        fn eval(&self, expr: &str, arg: Option<(&str, &str)>) -> String {
            expr.split("..")
                .map(|term| {
                    let term = term.trim();
                    if let Some(text) = term
                        .strip_prefix('\'')
                        .and_then(|t| t.strip_suffix('\''))
                        .or_else(|| term.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
                    {
                        return text.to_string();
                    }
                    if term == "ARGV[1]" {
                        return GOAL.to_string();
                    }
                    if let Some((name, value)) = arg
                        && term == name
                    {
                        return value.to_string();
                    }
                    if let Some(value) = self.constants.get(term) {
                        return value.clone();
                    }
                    if let Some((function, call_arg)) =
                        term.strip_suffix(')').and_then(|call| call.split_once('('))
                    {
                        let value = self.eval(call_arg, arg);
                        let (param, returns) = &self.functions[function];
                        assert_eq!(
                            returns.len(),
                            1,
                            "{function} is called, so it has one return"
                        );
                        return self.eval(&returns[0], Some((param, &value)));
                    }
                    panic!("lib.lua key expression {expr:?}: cannot read {term:?}");
                })
                .collect()
        }

        /// Every key lib.lua builds for GOAL, TASK and ROLE (names holding a `:`).
        fn built(&self) -> BTreeSet<String> {
            let constants = self.constants.values().cloned();
            let calls = self.functions.values().flat_map(|(param, returns)| {
                let sample = if param == "role" { ROLE } else { TASK };
                returns
                    .iter()
                    .map(move |r| self.eval(r, Some((param, sample))))
            });
            constants.chain(calls).filter(|k| k.contains(':')).collect()
        }
    }

    #[test]
    fn lib_lua_and_rust_build_the_same_key_names() {
        let lua = LuaKeys::parse(LIB_LUA).built();
        for rust in [dag_nodes(GOAL), dag_deps(GOAL), task(GOAL, TASK)] {
            assert!(
                lua.contains(&rust),
                "Rust builds {rust:?}, lib.lua builds none such: {lua:#?}"
            );
        }

        let events: Vec<&String> = lua.iter().filter(|k| k.starts_with("events:")).collect();
        assert_eq!(events.len(), 1, "one events channel in {lua:#?}");
        assert_eq!(goal_of_events_channel(events[0]), Some(GOAL));
        let prefix = EVENTS_PATTERN
            .strip_suffix('*')
            .filter(|p| !p.contains('*'))
            .expect("EVENTS_PATTERN is a prefix glob");
        assert!(
            events[0].starts_with(prefix),
            "{EVENTS_PATTERN} misses {:?}",
            events[0]
        );

        // Every key a script builds belongs to a family Rust names, under the goal's
        // hash tag (so in KEYS[1]'s slot, as the scripts require).
        let task_prefix = task(GOAL, "");
        let dag_prefix = dag_nodes(GOAL);
        let dag_prefix = dag_prefix.strip_suffix("nodes").expect("dag:{G}:nodes");
        let goal_prefix = goal(GOAL) + ":";
        for key in &lua {
            assert!(
                key.contains(&format!("{{{GOAL}}}")),
                "{key:?} lacks the goal's hash tag"
            );
            assert!(
                [goal_prefix.as_str(), &task_prefix, dag_prefix, events[0]]
                    .iter()
                    .any(|family| key.starts_with(family)),
                "lib.lua builds {key:?}, outside goal:{{G}}:*, task:{{G}}:*, dag:{{G}}:* and events:{{G}}"
            );
        }
        // The goal-scoped indexes hang off goal:{G}, which Rust passes as KEYS[1].
        assert!(lua.iter().any(|k| k.starts_with(&goal_prefix)));
    }
}
