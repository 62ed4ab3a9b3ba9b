//! The JSON documents of `porki status --json` and `porki graph --format json`,
//! each documented field by field on its function.

use serde_json::{Value, json};

use super::{AgentReport, GoalReport, goal_state_name, nodes_with_tasks, percent, sorted_edges};
use crate::domain::{Dag, TaskState, TaskStatus};

/// Version of the `porki status --json` and `porki graph --format json` shapes.
pub const JSON_VERSION: u64 = 1;

/// The document of `porki status --json`.
///
/// ```text
/// {
///   "version": 1,                  // JSON_VERSION; bumped only on incompatible changes
///   "generated_ms": 1700000000000, // when the data was read (ms since the Unix epoch)
///   "goals": [{                    // sorted by goal id
///     "goal": "demo-001",          // goal id
///     "title": "…",                // goal title ("" if none)
///     "state": "active",           // draft | active | complete | failed
///     "total": 12,                 // tasks in all
///     "done": 6,                   // tasks DONE (same as counts.DONE)
///     "percent_done": 50,          // done * 100 / total, rounded down (0 when total is 0)
///     "counts": {"BLOCKED": 2, "READY": 1, "RUNNING": 1, "DONE": 6, "FAILED": 2},
///                                  // every state always present
///     "max_attempts": 3,           // attempts before a task is FAILED
///     "created_ms": 1700000000000, // when the plan was written
///     "finished_ms": null,         // when the goal became complete or failed, else null
///     "last_error": null,          // why the goal failed before it had a plan, else null
///     "tokens": 1234,              // LLM tokens spent on the goal, by every process
///     "cost_usd": 0.0412,          // LLM cost in USD, where providers report it
///     "unserved": [],              // READY tasks no live agent can take: [{"role": "qa", "ready": 3}]
///                                  // (role null: tasks any agent of the goal may take)
///     "backoff": null,             // while a rate or usage limit holds the goal:
///                                  // {"until_ms": …, "left_ms": …, "reason": "…"}, else null
///     "tasks": [{                  // most recent activity (updated_ms) first, then by id
///       "id": "outline",           // task id
///       "title": "…",              // title from the plan
///       "state": "RUNNING",        // BLOCKED | READY | RUNNING | DONE | FAILED
///       "role": null,              // role restriction, or null
///       "priority": 0,             // current priority (higher runs sooner)
///       "owner": "writer",         // agent holding or last holding it, or null
///       "attempt": 1,              // claims counted so far
///       "fence": 1,                // incremented on every claim
///       "lease_expires_ms": 1700000060000, // lease end while RUNNING, else null
///       "lease_left_ms": 42000,    // lease time left while RUNNING (0 once expired), else null
///       "lease_expired": false,    // RUNNING with its lease past its end (the reaper will requeue it)
///       "last_error": null,        // the last failure, or null
///       "retry_at_ms": null,       // when a backed-off retry becomes claimable, else null
///       "artifacts": ["…"],        // artifacts produced
///       "pending_deps": 0,         // dependencies not yet DONE
///       "created_ms": 1700000000000, // when the task was written
///       "updated_ms": 1700000001000, // last change
///       "started_ms": 1700000001000, // last claim, or null
///       "finished_ms": null        // when it became DONE or FAILED, or null
///     }]
///   }],
///   "agents": [{                   // registered agents (of the goal, with --goal), by name
///     "name": "writer",            // agent name
///     "goal": "demo-001",          // goal it works on
///     "role": "writer",            // role, or null
///     "process": "host:1234",      // host and process running it
///     "state": "running",          // as the agent recorded it: running, retired, stopped, failed: reason…
///     "alive": true,               // its heartbeat key is live (it runs in some process now)
///     "last_error": null           // newest recorded problem, or null
///   }]
/// }
/// ```
pub fn status_json(goals: &[GoalReport], agents: &[AgentReport], now_ms: u64) -> Value {
    let goals: Vec<Value> = goals.iter().map(|g| goal_json(g, agents, now_ms)).collect();
    let agents: Vec<Value> = agents
        .iter()
        .map(|a| {
            json!({
                "name": a.record.name,
                "goal": a.record.goal,
                "role": a.record.role,
                "process": a.record.process,
                "state": a.record.state,
                "alive": a.alive,
                "last_error": a.last_error,
            })
        })
        .collect();
    json!({
        "version": JSON_VERSION,
        "generated_ms": now_ms,
        "goals": goals,
        "agents": agents,
    })
}

fn goal_json(goal: &GoalReport, agents: &[AgentReport], now_ms: u64) -> Value {
    let status = &goal.status;
    let counts: serde_json::Map<String, Value> = TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(status.count(*s))))
        .collect();
    let tasks: Vec<Value> = goal
        .tasks_newest_first()
        .into_iter()
        .map(|t| {
            let left = lease_left_ms(t, now_ms);
            json!({
                "id": t.id,
                "title": t.title,
                "state": t.status.as_str(),
                "role": t.role,
                "priority": t.priority,
                "owner": t.owner,
                "attempt": t.attempt,
                "fence": t.fence,
                "lease_expires_ms": if t.status == TaskStatus::Running { t.lease_expires_ms } else { None },
                "lease_left_ms": left,
                "lease_expired": left == Some(0),
                "last_error": t.last_error,
                "retry_at_ms": t.retry_at_ms,
                "artifacts": t.artifacts,
                "pending_deps": t.pending_deps,
                "created_ms": t.created_ms,
                "updated_ms": t.updated_ms,
                "started_ms": t.started_ms,
                "finished_ms": t.finished_ms,
            })
        })
        .collect();
    let done = status.count(TaskStatus::Done);
    json!({
        "goal": status.goal,
        "title": status.title,
        "state": goal_state_name(status),
        "total": status.total,
        "done": done,
        "percent_done": percent(done, status.total),
        "counts": counts,
        "max_attempts": status.max_attempts,
        "created_ms": status.created_ms,
        "finished_ms": status.finished_ms,
        "last_error": status.last_error,
        "unserved": super::unserved(status, agents)
            .into_iter()
            .map(|(role, ready)| json!({"role": (!role.is_empty()).then_some(role), "ready": ready}))
            .collect::<Vec<_>>(),
        "tokens": status.tokens,
        "cost_usd": status.cost_usd,
        "backoff": status.backoff.as_ref().and_then(|b| {
            let left = b.remaining_ms(now_ms)?;
            Some(json!({"until_ms": b.until_ms, "left_ms": left, "reason": b.reason}))
        }),
        "tasks": tasks,
    })
}

/// Lease time left while RUNNING (0 once expired); `None` otherwise.
fn lease_left_ms(task: &TaskState, now_ms: u64) -> Option<u64> {
    match (task.status, task.lease_expires_ms) {
        (TaskStatus::Running, Some(expires)) => Some(expires.saturating_sub(now_ms)),
        _ => None,
    }
}

/// The document of `porki graph --format json`.
///
/// ```text
/// {
///   "version": 1,                // JSON_VERSION
///   "goal": "demo-001",          // goal id
///   "nodes": [{                  // in plan order (sorted by id)
///     "id": "outline",           // task id
///     "title": "…",              // title from the plan
///     "state": "RUNNING",        // BLOCKED | READY | RUNNING | DONE | FAILED, null if the task has no state
///     "owner": "writer",         // agent holding or last holding it, or null
///     "attempt": 1,              // claims counted so far (0 if the task has no state)
///     "priority": 0,             // plan priority
///     "role": null               // role restriction, or null
///   }],
///   "edges": [{"source": "scope", "target": "outline"}]  // source must be DONE before target; sorted
/// }
/// ```
pub fn graph_json(dag: &Dag, tasks: &[TaskState]) -> Value {
    let nodes: Vec<Value> = nodes_with_tasks(dag, tasks)
        .map(|(node, task)| {
            json!({
                "id": node.id,
                "title": node.title,
                "state": task.map(|t| t.status.as_str()),
                "owner": task.and_then(|t| t.owner.clone()),
                "attempt": task.map_or(0, |t| t.attempt),
                "priority": node.priority,
                "role": node.effective_role(),
            })
        })
        .collect();
    let edges: Vec<Value> = sorted_edges(dag)
        .into_iter()
        .map(|e| json!({"source": e.source, "target": e.target}))
        .collect();
    json!({
        "version": JSON_VERSION,
        "goal": dag.goal_id,
        "nodes": nodes,
        "edges": edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{HOSTILE, NOW, diamond, goal_report, hostile};

    #[test]
    fn status_json_has_the_documented_fields() {
        let value = status_json(&[goal_report()], &[], NOW);
        assert_eq!(value["version"], 1);
        assert_eq!(value["generated_ms"], NOW);
        let goal = &value["goals"][0];
        assert_eq!(goal["goal"], "g");
        assert_eq!(goal["state"], "active");
        assert_eq!(goal["total"], 4);
        assert_eq!(goal["done"], 1);
        assert_eq!(goal["percent_done"], 25);
        assert_eq!(
            goal["counts"],
            json!({"BLOCKED": 1, "READY": 0, "RUNNING": 1, "DONE": 1, "FAILED": 1})
        );
        let ids: Vec<&str> = goal["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c", "b", "a", "d"]);
        let running = &goal["tasks"][1];
        assert_eq!(running["state"], "RUNNING");
        assert_eq!(running["owner"], "w1");
        assert_eq!(running["lease_left_ms"], 12_000);
        assert_eq!(running["lease_expired"], false);
        assert_eq!(goal["tasks"][0]["last_error"], "boom");
        assert_eq!(goal["tasks"][0]["lease_left_ms"], Value::Null);
        assert_eq!(value["agents"], json!([]));
        assert_eq!(
            (goal["tokens"].clone(), goal["cost_usd"].clone()),
            (json!(0), json!(0.0))
        );
        assert_eq!(goal["backoff"], Value::Null);
    }

    #[test]
    fn status_json_shows_spending_and_a_backoff_while_it_lasts() {
        let mut report = goal_report();
        report.status.tokens = 120;
        report.status.cost_usd = 0.5;
        report.status.backoff = Some(crate::store::GoalBackoff {
            until_ms: NOW + 2_000,
            reason: "429".into(),
        });
        let value = status_json(std::slice::from_ref(&report), &[], NOW);
        let goal = &value["goals"][0];
        assert_eq!(
            (goal["tokens"].clone(), goal["cost_usd"].clone()),
            (json!(120), json!(0.5))
        );
        assert_eq!(
            goal["backoff"],
            json!({"until_ms": NOW + 2_000, "left_ms": 2_000, "reason": "429"})
        );
        let later = status_json(&[report], &[], NOW + 2_000);
        assert_eq!(later["goals"][0]["backoff"], Value::Null);
    }

    #[test]
    fn graph_json_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = json!({
            "version": 1,
            "goal": "g",
            "nodes": [
                {"id": "a", "title": "Start", "state": "DONE", "owner": "w1", "attempt": 1, "priority": 0, "role": null},
                {"id": "b", "title": "Left", "state": "RUNNING", "owner": "w1", "attempt": 1, "priority": 0, "role": null},
                {"id": "c", "title": "Right", "state": "FAILED", "owner": "w2", "attempt": 3, "priority": 0, "role": null},
                {"id": "d", "title": "Join", "state": "BLOCKED", "owner": null, "attempt": 0, "priority": 0, "role": null},
            ],
            "edges": [
                {"source": "a", "target": "b"},
                {"source": "a", "target": "c"},
                {"source": "b", "target": "d"},
                {"source": "c", "target": "d"},
            ],
        });
        assert_eq!(graph_json(&dag, &tasks), expected);
    }

    #[test]
    fn graph_json_keeps_a_hostile_title_verbatim() {
        let (dag, tasks) = hostile();
        let value = graph_json(&dag, &tasks);
        let text = serde_json::to_string(&value).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["nodes"][0]["title"], HOSTILE);
        assert_eq!(back["goal"], "g\"x");
    }
}
