//! Reports and plans the renderer tests share.

use std::collections::BTreeMap;

use crate::domain::{Dag, Node, TaskState, TaskStatus};
use crate::store::{GoalState, GoalStatus};

use super::GoalReport;

/// The reference time of the fixtures, ms since the Unix epoch.
pub(super) const NOW: u64 = 1_000_000;

/// A task with nothing set but its id, title, state and last change.
pub(super) fn task(id: &str, title: &str, status: TaskStatus, updated_ms: u64) -> TaskState {
    TaskState {
        created_ms: 0,
        ..TaskState::new("g", id, title, status, updated_ms)
    }
}

/// a → b, a → c, b → d, c → d: a DONE, b RUNNING by w1, c FAILED, d BLOCKED.
pub(super) fn diamond() -> (Dag, Vec<TaskState>) {
    let nodes = vec![
        Node::new("a", "Start"),
        Node::new("b", "Left"),
        Node::new("c", "Right"),
        Node::new("d", "Join"),
    ];
    // Out of order on purpose: renderers sort edges.
    let dag = Dag::new(
        "g",
        nodes,
        &[("c", "d"), ("a", "b"), ("a", "c"), ("b", "d")],
    );
    let mut b = task("b", "Left", TaskStatus::Running, NOW - 1_000);
    b.owner = Some("w1".into());
    b.attempt = 1;
    b.fence = 1;
    b.lease_expires_ms = Some(NOW + 12_000);
    let mut c = task("c", "Right", TaskStatus::Failed, NOW - 500);
    c.owner = Some("w2".into());
    c.attempt = 3;
    c.last_error = Some("boom".into());
    let mut a = task("a", "Start", TaskStatus::Done, NOW - 5_000);
    a.owner = Some("w1".into());
    a.attempt = 1;
    let d = task("d", "Join", TaskStatus::Blocked, NOW - 9_000);
    (dag, vec![a, b, c, d])
}

/// The diamond as one active goal.
pub(super) fn goal_report() -> GoalReport {
    let (_, tasks) = diamond();
    let mut counts = BTreeMap::new();
    for t in &tasks {
        *counts.entry(t.status).or_insert(0) += 1;
    }
    GoalReport {
        status: GoalStatus {
            goal: "g".into(),
            state: GoalState::Active,
            title: "Diamond".into(),
            fingerprint: "f".into(),
            source: String::new(),
            max_attempts: 3,
            counts,
            total: 4,
            superseded: 0,
            created_ms: 1,
            finished_ms: None,
            last_error: None,
            tokens: 0,
            cost_usd: 0.0,
            backoff: None,
            ready_by_role: Default::default(),
        },
        tasks,
    }
}

/// A title that breaks Mermaid and DOT unless escaped.
pub(super) const HOSTILE: &str = "say \"hi\"]; end\n[x] --> y #1 <b>&`\\N";

/// A goal id, task ids and a title that need escaping.
pub(super) fn hostile() -> (Dag, Vec<TaskState>) {
    let nodes = vec![Node::new("end", HOSTILE), Node::new("a-b.c_d", "ok")];
    let dag = Dag::new("g\"x", nodes, &[("end", "a-b.c_d")]);
    let tasks = vec![
        task("end", HOSTILE, TaskStatus::Ready, 0),
        task("a-b.c_d", "ok", TaskStatus::Blocked, 0),
    ];
    (dag, tasks)
}
