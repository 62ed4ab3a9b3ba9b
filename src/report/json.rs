//! The JSON documents of `porki status --json` and `porki graph --format json`,
//! each documented field by field on its function.

use serde_json::{Value, json};

use super::{
    AgentReport, CriticalPath, GoalReport, node_kind, nodes_with_tasks, percent, sorted_edges,
};
use crate::domain::{Dag, TaskState, TaskStatus};
use crate::store::GoalSpending;

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
///     "superseded": 0,             // FAILED tasks whose work another took over (in total;
///                                  // the goal completes without them)
///     "counts": {"BLOCKED": 2, "READY": 1, "RUNNING": 1, "AWAITING_APPROVAL": 0, "DONE": 6, "FAILED": 2},
///                                  // every state always present
///     "awaiting_approval": [],     // ids of the tasks AWAITING_APPROVAL, sorted
///     "max_attempts": 3,           // attempts before a task is FAILED
///     "created_ms": 1700000000000, // when the plan was written
///     "finished_ms": null,         // when the goal became complete or failed, else null
///     "last_error": null,          // why the goal failed before it had a plan, else null
///     "tokens": 1234,              // LLM tokens spent on the goal, by every process
///     "cost_usd": 0.0412,          // LLM cost in USD, where providers report it
///     "cost_unknown": 0,           // calls under a money budget whose cost none reported
///     "unserved": [],              // READY tasks no live agent can take: [{"role": "qa", "ready": 3}]
///                                  // (role null: tasks any agent of the goal may take)
///     "backoff": null,             // while a rate or usage limit holds the goal:
///                                  // {"until_ms": …, "left_ms": …, "reason": "…"}, else null
///     "branch": "porki/demo-001",  // worktree isolation: the goal branch, else null
///     "repository": "/home/u/proj",// the repository holding it, as its preparer described it, else null
///     "tasks": [{                  // most recent activity (updated_ms) first, then by id
///       "id": "outline",           // task id
///       "title": "…",              // title from the plan
///       "state": "RUNNING",        // BLOCKED | READY | RUNNING | AWAITING_APPROVAL | DONE | FAILED
///       "kind": "work",            // work | review | fix | recover | escalate | merge (all but work porki added)
///       "of": null,                // the task an added task is about (an escalation's: the review), else null
///       "cycle": 0,                // a review: times it asked for changes; a fix: its number; else 0
///       "notes": null,             // what an added task is asked to address, or null
///       "needs_approval": false,   // waits for a person's approval once it ran
///       "waits_for": [],           // its dependencies not yet DONE, sorted (what a BLOCKED task waits for)
///       "recovered_by": null,      // a FAILED task whose work another took over (a recovery; for a
///                                  // merge task, the next one or the task it merges): that task's id
///       "planned_role": null,      // the role the plan gave a soft task handed to another agent, or null
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
///       "finished_ms": null,       // when it became DONE or FAILED, or null
///       "commit": null,            // worktree isolation: the goal branch's commit holding its work, once DONE
///       "diffstat": null,          // what that commit changed (git diff --stat, capped), or null
///       "conflict": null,          // a merge task: {"commit", "files", "ours", "theirs"}, else null
///       "rank_ms": 250000,         // the longest estimated path from its start to the end of the plan
///                                  // (ms; READY tasks of one priority run highest rank first), or null
///       "estimate_ms": 50000,      // how long it is expected to run (ms), or null
///       "estimate_source": "plan"  // where that came from: plan | measured | default, or null
///     }]
///   }],
///   "agents": [{                   // registered agents (of the goal, with --goal), by name
///     "name": "writer",            // agent name
///     "goal": "demo-001",          // goal it works on
///     "role": "writer",            // role, or null
///     "kind": "builder",           // builder | reviewer | manager
///     "process": "host:1234",      // host and process running it
///     "state": "running",          // as the agent recorded it: running, retired, stopped, failed: reason…
///     "alive": true,               // its single-active guard is held (it runs in some process now)
///     "last_error": null           // newest recorded problem, or null
///   }]
/// }
/// ```
pub fn status_json(goals: &[GoalReport], agents: &[AgentReport], now_ms: u64) -> Value {
    status_json_with(goals, &[], agents, now_ms)
}

/// [`status_json`] with what each goal's calls under a money budget told of
/// their cost (`spending[i]` is `goals[i]`'s; missing: nothing told).
pub fn status_json_with(
    goals: &[GoalReport],
    spending: &[GoalSpending],
    agents: &[AgentReport],
    now_ms: u64,
) -> Value {
    let goals: Vec<Value> = goals
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let unknown = spending.get(i).map_or(0, |s| s.cost_unknown);
            goal_json(g, unknown, agents, now_ms)
        })
        .collect();
    let agents: Vec<Value> = agents
        .iter()
        .map(|a| {
            json!({
                "name": a.record.name,
                "goal": a.record.goal,
                "role": a.record.role,
                "kind": a.record.kind,
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

fn goal_json(goal: &GoalReport, cost_unknown: u64, agents: &[AgentReport], now_ms: u64) -> Value {
    let status = &goal.status;
    let counts: serde_json::Map<String, Value> = TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(status.count(*s))))
        .collect();
    let waits = goal.waits();
    let tasks: Vec<Value> = goal
        .tasks_newest_first()
        .into_iter()
        .map(|t| {
            let left = lease_left_ms(t, now_ms);
            json!({
                "id": t.id,
                "title": t.title,
                "state": t.status.as_str(),
                "kind": t.kind,
                "of": t.of,
                "cycle": t.cycle,
                "notes": t.notes,
                "needs_approval": t.needs_approval,
                "waits_for": waits.of(&t.id),
                "recovered_by": t.recovered_by,
                "planned_role": t.planned_role,
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
                "commit": t.commit,
                "diffstat": t.diffstat,
                "conflict": t.conflict,
                "rank_ms": t.rank_ms,
                "estimate_ms": t.estimate_ms,
                "estimate_source": t.estimate_source,
            })
        })
        .collect();
    let done = status.count(TaskStatus::Done);
    json!({
        "goal": status.goal,
        "title": status.title,
        "state": status.state.as_str(),
        "total": status.total,
        "done": done,
        "percent_done": percent(done, status.total),
        "superseded": status.superseded,
        "counts": counts,
        "awaiting_approval": goal.awaiting_approval(),
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
        "cost_unknown": cost_unknown,
        "backoff": status.backoff.as_ref().and_then(|b| {
            let left = b.remaining_ms(now_ms)?;
            Some(json!({"until_ms": b.until_ms, "left_ms": left, "reason": b.reason}))
        }),
        "branch": status.branch.as_ref().map(|b| &b.branch),
        "repository": status.branch.as_ref().map(|b| &b.repository),
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
///     "state": "RUNNING",        // BLOCKED | READY | RUNNING | AWAITING_APPROVAL | DONE | FAILED,
///                                // null if the task has no state
///     "kind": "work",            // work | review | fix | recover | escalate | merge (all but work porki added)
///     "of": null,                // the task an added task is about, or null
///     "cycle": 0,                // a review: times it asked for changes; a fix: its number; else 0
///     "recovered_by": null,      // a FAILED task: the recovery that took its work over, or null
///     "owner": "writer",         // agent holding or last holding it, or null
///     "attempt": 1,              // claims counted so far (0 if the task has no state)
///     "priority": 0,             // plan priority
///     "role": null,              // role restriction, or null
///     "rank_ms": 250000,         // as tasks[].rank_ms of porki status --json, or null
///     "estimate_ms": 50000,      // as tasks[].estimate_ms, or null
///     "estimate_source": "plan"  // as tasks[].estimate_source, or null
///   }],
///   "critical_path": ["scope", "outline"], // the critical path, first to last (domain::critical)
///   "edges": [{"source": "scope", "target": "outline"}]  // source must be DONE before target; sorted
///                                // (a recovery is not an edge: see the failed node's recovered_by)
/// }
/// ```
pub fn graph_json(dag: &Dag, tasks: &[TaskState]) -> Value {
    let nodes: Vec<Value> = nodes_with_tasks(dag, tasks)
        .map(|(node, task)| {
            json!({
                "id": node.id,
                "title": node.title,
                "state": task.map(|t| t.status.as_str()),
                "kind": node_kind(node, task),
                "of": task.map_or(node.of.as_deref(), |t| t.of.as_deref()),
                "cycle": task.map_or(0, |t| t.cycle),
                "recovered_by": task.and_then(|t| t.recovered_by.as_deref()),
                "owner": task.and_then(|t| t.owner.clone()),
                "attempt": task.map_or(0, |t| t.attempt),
                "priority": node.priority,
                "role": node.effective_role(),
                "rank_ms": task.and_then(|t| t.rank_ms),
                "estimate_ms": task.and_then(|t| t.estimate_ms),
                "estimate_source": task.and_then(|t| t.estimate_source),
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
        "critical_path": CriticalPath::of(dag, tasks).ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgentKind, Node, TaskKind};
    use crate::report::fixtures::{
        HOSTILE, NOW, diamond, goal_report, hostile, ranked_diamond, team, team_report,
    };
    use crate::store::{AgentRecord, AgentState};

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
            json!({"BLOCKED": 1, "READY": 0, "RUNNING": 1, "AWAITING_APPROVAL": 0, "DONE": 1, "FAILED": 1})
        );
        assert_eq!(goal["superseded"], 0);
        assert_eq!(goal["awaiting_approval"], json!([]));
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
        // d waits for b and c, by the plan's edges.
        assert_eq!(goal["tasks"][3]["waits_for"], json!(["b", "c"]));
        assert_eq!(goal["tasks"][0]["waits_for"], json!([]));
    }

    #[test]
    fn status_json_tells_what_team_tasks_are_and_wait_for() {
        let agent = AgentReport {
            record: AgentRecord {
                name: "rev".into(),
                goal: "g".into(),
                role: Some("qa".into()),
                kind: AgentKind::Reviewer,
                process: "host:1".into(),
                state: AgentState::Running,
            },
            last_error: None,
            alive: true,
        };
        let value = status_json(&[team_report()], &[agent], NOW);
        let goal = &value["goals"][0];
        assert_eq!(goal["superseded"], 1);
        assert_eq!(goal["awaiting_approval"], json!(["logo", "sign-off"]));
        assert_eq!(goal["counts"]["AWAITING_APPROVAL"], 2);
        let task = |id: &str| {
            goal["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == id)
                .unwrap()
                .clone()
        };
        let team_fields = |id: &str| {
            let t = task(id);
            [
                "kind",
                "of",
                "cycle",
                "notes",
                "needs_approval",
                "waits_for",
                "recovered_by",
                "planned_role",
            ]
            .map(|field| (field.to_string(), t[field].clone()))
            .into_iter()
            .collect::<serde_json::Map<_, _>>()
        };
        let expect = |value: Value| value.as_object().unwrap().clone();
        assert_eq!(
            team_fields("draft.review"),
            expect(
                json!({"kind": "review", "of": "draft", "cycle": 1, "notes": null,
                "needs_approval": false, "waits_for": ["draft.fix-1"], "recovered_by": null,
                "planned_role": null})
            )
        );
        assert_eq!(
            team_fields("draft.fix-1"),
            expect(
                json!({"kind": "fix", "of": "draft", "cycle": 1, "notes": "cite the sources",
                "needs_approval": false, "waits_for": [], "recovered_by": null,
                "planned_role": null})
            )
        );
        assert_eq!(
            team_fields("scan"),
            expect(
                json!({"kind": "work", "of": null, "cycle": 0, "notes": null,
                "needs_approval": false, "waits_for": [], "recovered_by": "scan.recover",
                "planned_role": null})
            )
        );
        assert_eq!(task("scan.recover")["needs_approval"], true);
        assert_eq!(task("copy.escalate")["of"], "copy.review");
        assert_eq!(task("sign-off")["state"], "AWAITING_APPROVAL");
        assert_eq!(task("layout")["planned_role"], "designer");
        assert_eq!(value["agents"][0]["kind"], "reviewer");
    }

    #[test]
    fn status_json_shows_the_goal_branch_and_each_tasks_commit_and_conflict() {
        let plain = status_json(&[goal_report()], &[], NOW);
        let goal = &plain["goals"][0];
        assert_eq!(
            (&goal["branch"], &goal["repository"]),
            (&Value::Null, &Value::Null)
        );
        let task = &goal["tasks"][0];
        assert_eq!(
            (&task["commit"], &task["diffstat"], &task["conflict"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        let mut report = goal_report();
        report.status.branch = Some(crate::store::GoalBranch {
            branch: "porki/g".into(),
            repository: "/home/u/proj".into(),
        });
        report.tasks[0].commit = Some("abc".into());
        report.tasks[0].diffstat = Some(" a | 1 +".into());
        report.tasks[1].conflict = Some(crate::domain::MergeConflict {
            commit: "def".into(),
            files: vec!["a".into()],
            ours: vec!["b".into()],
            theirs: vec!["a".into()],
        });
        let value = status_json(&[report], &[], NOW);
        let goal = &value["goals"][0];
        assert_eq!(
            (&goal["branch"], &goal["repository"]),
            (&json!("porki/g"), &json!("/home/u/proj"))
        );
        let by_id = |id: &str| {
            goal["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(
            (by_id("a")["commit"].clone(), by_id("a")["diffstat"].clone()),
            (json!("abc"), json!(" a | 1 +"))
        );
        assert_eq!(
            by_id("b")["conflict"],
            json!({"commit": "def", "files": ["a"], "ours": ["b"], "theirs": ["a"]})
        );
    }

    #[test]
    fn status_json_shows_each_tasks_rank_and_estimate_with_its_source() {
        let mut report = goal_report();
        let unranked = status_json(std::slice::from_ref(&report), &[], NOW);
        let d = &unranked["goals"][0]["tasks"][3];
        assert_eq!(
            (&d["rank_ms"], &d["estimate_ms"], &d["estimate_source"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        report.tasks[3].rank_ms = Some(250_000);
        report.tasks[3].estimate_ms = Some(50_000);
        report.tasks[3].estimate_source = Some(crate::domain::rank::EstimateSource::Measured);
        let value = status_json(&[report], &[], NOW);
        let d = &value["goals"][0]["tasks"][3];
        assert_eq!(d["id"], "d");
        assert_eq!(
            (&d["rank_ms"], &d["estimate_ms"], &d["estimate_source"]),
            (&json!(250_000), &json!(50_000), &json!("measured"))
        );
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
        let spending = crate::store::GoalSpending {
            cost_unknown: 3,
            ..Default::default()
        };
        let value = status_json_with(std::slice::from_ref(&report), &[spending], &[], NOW);
        let goal = &value["goals"][0];
        assert_eq!(
            (goal["tokens"].clone(), goal["cost_usd"].clone()),
            (json!(120), json!(0.5))
        );
        assert_eq!(
            goal["cost_unknown"],
            json!(3),
            "calls of unknown cost are said"
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
                {"id": "a", "title": "Start", "state": "DONE", "kind": "work", "of": null, "cycle": 0, "recovered_by": null, "owner": "w1", "attempt": 1, "priority": 0, "role": null, "rank_ms": null, "estimate_ms": null, "estimate_source": null},
                {"id": "b", "title": "Left", "state": "RUNNING", "kind": "work", "of": null, "cycle": 0, "recovered_by": null, "owner": "w1", "attempt": 1, "priority": 0, "role": null, "rank_ms": null, "estimate_ms": null, "estimate_source": null},
                {"id": "c", "title": "Right", "state": "FAILED", "kind": "work", "of": null, "cycle": 0, "recovered_by": null, "owner": "w2", "attempt": 3, "priority": 0, "role": null, "rank_ms": null, "estimate_ms": null, "estimate_source": null},
                {"id": "d", "title": "Join", "state": "BLOCKED", "kind": "work", "of": null, "cycle": 0, "recovered_by": null, "owner": null, "attempt": 0, "priority": 0, "role": null, "rank_ms": null, "estimate_ms": null, "estimate_source": null},
            ],
            "edges": [
                {"source": "a", "target": "b"},
                {"source": "a", "target": "c"},
                {"source": "b", "target": "d"},
                {"source": "c", "target": "d"},
            ],
            // Nothing ranked: by the plan's structure, b and c tie; b has the smaller id.
            "critical_path": ["b", "d"],
        });
        assert_eq!(graph_json(&dag, &tasks), expected);
    }

    #[test]
    fn graph_json_nodes_say_their_kind_cycle_and_recovery() {
        let (mut dag, tasks) = team();
        // A node without a stored state still has its plan node's kind.
        dag.nodes.push(Node {
            kind: TaskKind::Review,
            of: Some("ghost".into()),
            ..Node::new("ghost.review", "")
        });
        let value = graph_json(&dag, &tasks);
        let node = |id: &str| {
            let n = value["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id)
                .unwrap();
            (
                n["kind"].clone(),
                n["of"].clone(),
                n["cycle"].clone(),
                n["recovered_by"].clone(),
            )
        };
        assert_eq!(
            node("copy.review"),
            (json!("review"), json!("copy"), json!(2), Value::Null)
        );
        assert_eq!(
            node("copy.escalate"),
            (
                json!("escalate"),
                json!("copy.review"),
                json!(0),
                Value::Null
            )
        );
        assert_eq!(
            node("scan"),
            (json!("work"), Value::Null, json!(0), json!("scan.recover"))
        );
        assert_eq!(
            node("ghost.review"),
            (json!("review"), json!("ghost"), json!(0), Value::Null)
        );
        assert_eq!(value["edges"].as_array().unwrap().len(), 7);
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

    #[test]
    fn graph_json_gives_each_nodes_rank_and_estimate_and_the_critical_path() {
        let (dag, tasks) = ranked_diamond();
        let value = graph_json(&dag, &tasks);
        assert_eq!(value["critical_path"], json!(["c", "d"]));
        let c = &value["nodes"][2];
        assert_eq!(c["id"], "c");
        assert_eq!(
            (&c["rank_ms"], &c["estimate_ms"], &c["estimate_source"]),
            (&json!(5_000), &json!(1_000), &json!("default"))
        );
    }
}
