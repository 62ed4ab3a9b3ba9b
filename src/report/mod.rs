//! What `porki status` and `porki graph` print, rendered from already-fetched data.
//!
//! Every function here is pure: the CLI reads the store, then hands the data and
//! the current time to a renderer and prints the string it gets back. That keeps
//! the layout testable to the byte and lets `--watch` redraw without re-deciding
//! anything.
//!
//! One file per output: `text.rs` ([`status_text`], fitted to the terminal by
//! `table.rs`), `json.rs` ([`status_json`], [`graph_json`]), `mermaid.rs`
//! ([`graph_mermaid`]) and `dot.rs` ([`graph_dot`]). `team.rs` puts the team
//! loops into words for all of them (and the dashboard): what an added task is,
//! what a task waits for, who awaits approval. This file holds the fetched-data
//! types and what the renderers share: task order, state names and colours,
//! node labels.
//!
//! The JSON shapes are a stable interface, documented field by field on
//! [`status_json`] and [`graph_json`] and in `docs/status-json.md`. Fields may be
//! added; none are renamed or removed without bumping `version`.

mod dot;
mod json;
mod mermaid;
mod table;
mod team;
mod text;

use std::collections::{HashMap, HashSet};

use crate::domain::{Dag, Edge, Node, TaskKind, TaskState, TaskStatus, takes};
use crate::store::{AgentRecord, GoalStatus};

pub use dot::graph_dot;
pub use json::{JSON_VERSION, graph_json, status_json, status_json_with};
pub use mermaid::graph_mermaid;
pub use team::{Waits, approval_hint, kind_line, progress, task_note, task_subject};
pub use text::{progress_bar, status_text, status_text_with};

/// One goal as `porki status` shows it: its summary and its tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalReport {
    /// The goal's summary and per-state counts.
    pub status: GoalStatus,
    /// Every task of the goal, in any order (renderers sort them).
    pub tasks: Vec<TaskState>,
    /// The plan's dependencies as the store keeps them now, the tasks porki
    /// added and their rewiring included (`store.dag(goal)`'s edges; empty
    /// without a plan): what each task waits for.
    pub edges: Vec<Edge>,
}

impl GoalReport {
    /// The tasks, most recent activity first, then by id.
    fn tasks_newest_first(&self) -> Vec<&TaskState> {
        let mut tasks: Vec<&TaskState> = self.tasks.iter().collect();
        tasks.sort_by(|a, b| {
            b.updated_ms
                .cmp(&a.updated_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        tasks
    }
}

/// One registered agent as `porki status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentReport {
    /// The registration record.
    pub record: AgentRecord,
    /// The newest problem the agent recorded, if any.
    pub last_error: Option<String>,
    /// Whether its single-active guard is held (it runs in some process now).
    pub alive: bool,
}

/// READY tasks of `goal` that no live agent can take: (role, count), the role
/// `""` meaning tasks any agent of the goal may take. A goal with such tasks
/// never ends on its own.
pub fn unserved(goal: &GoalStatus, agents: &[AgentReport]) -> Vec<(String, u64)> {
    let live: Vec<&AgentRecord> = agents
        .iter()
        .filter(|a| a.alive && a.record.goal == goal.goal)
        .map(|a| &a.record)
        .collect();
    goal.ready_by_role
        .iter()
        .filter(|(role, _)| !live.iter().any(|a| takes(a.kind, a.role.as_deref(), role)))
        .map(|(role, n)| (role.clone(), *n))
        .collect()
}

/// What [`unserved`] found, in words: `3 READY tasks of role qa, 1 READY task for any agent`.
pub fn unserved_text(unserved: &[(String, u64)]) -> String {
    unserved
        .iter()
        .map(|(role, n)| {
            let tasks = if *n == 1 { "task" } else { "tasks" };
            if role.is_empty() {
                format!("{n} READY {tasks} for any agent of the goal")
            } else {
                format!("{n} READY {tasks} of role {role}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// DONE out of total in percent, rounded down; 0 when there are no tasks.
fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        0
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    }
}

/// Text on one line: control characters (newlines, tabs, escapes) become spaces.
fn clean(text: &str) -> String {
    escape(text, |_| None)
}

/// `text` on one line with the characters a format reserves replaced: each
/// character `reserved` maps is written as its replacement, control characters
/// as spaces.
fn escape(text: &str, reserved: fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match reserved(c) {
            Some(replacement) => out.push_str(replacement),
            None if c.is_control() => out.push(' '),
            None => out.push(c),
        }
    }
    out
}

/// Fill colour of a task node per state, shared by the Mermaid and DOT renderers.
fn state_color(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Blocked => "#e9ecef",
        TaskStatus::Ready => "#fff3bf",
        TaskStatus::Running => "#d0ebff",
        TaskStatus::AwaitingApproval => "#e5dbff",
        TaskStatus::Done => "#d3f9d8",
        TaskStatus::Failed => "#ffc9c9",
    }
}

/// Border colour of a task node per state.
fn state_stroke(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Blocked => "#868e96",
        TaskStatus::Ready => "#f08c00",
        TaskStatus::Running => "#1c7ed6",
        TaskStatus::AwaitingApproval => "#7048e8",
        TaskStatus::Done => "#2f9e44",
        TaskStatus::Failed => "#e03131",
    }
}

/// Each plan node, in plan order, with its task's state if there is one.
fn nodes_with_tasks<'a>(
    dag: &'a Dag,
    tasks: &'a [TaskState],
) -> impl Iterator<Item = (&'a Node, Option<&'a TaskState>)> {
    let index: HashMap<&str, &TaskState> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    dag.nodes
        .iter()
        .map(move |node| (node, index.get(node.id.as_str()).copied()))
}

/// What a plan node is: its task's kind when the task has a state, else the node's.
fn node_kind(node: &Node, task: Option<&TaskState>) -> TaskKind {
    task.map_or(node.kind, |t| t.kind)
}

/// The recovery links of a plan, sorted: (FAILED task, the recovery that took
/// its work over), both in the plan. The plan's edges no longer join them (the
/// failed task's dependents were rewired to the recovery), so the graphs draw
/// these apart.
fn recovery_links<'a>(dag: &'a Dag, tasks: &'a [TaskState]) -> Vec<(&'a str, &'a str)> {
    let planned: HashSet<&str> = dag.nodes.iter().map(|n| n.id.as_str()).collect();
    let mut links: Vec<(&str, &str)> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed && planned.contains(t.id.as_str()))
        .filter_map(|t| Some((t.id.as_str(), t.recovered_by.as_deref()?)))
        .filter(|(_, recovery)| planned.contains(recovery))
        .collect();
    links.sort_unstable();
    links
}

/// A node's label for the Mermaid and DOT renderers: its id, title (if any),
/// kind and cycle for a task porki added (`review · cycle 2`) and state (with
/// the owner while RUNNING), each line escaped on its own with
/// `escape`, then joined with the format's line break.
fn node_label(
    node: &Node,
    task: Option<&TaskState>,
    escape: fn(&str) -> String,
    line_break: &str,
) -> String {
    let mut lines = vec![clean(&node.id)];
    if !node.title.is_empty() {
        lines.push(clean(&node.title));
    }
    let cycle = task.map_or(0, |t| t.cycle);
    if let Some(line) = team::kind_line(node_kind(node, task), cycle) {
        lines.push(line);
    }
    lines.push(match task {
        Some(t) => match (&t.status, &t.owner) {
            (TaskStatus::Running, Some(owner)) => format!("RUNNING by {}", clean(owner)),
            (status, _) => status.as_str().to_string(),
        },
        None => "UNKNOWN".to_string(),
    });
    lines
        .iter()
        .map(|line| escape(line))
        .collect::<Vec<_>>()
        .join(line_break)
}

/// Colour of the critical path's edges in every drawing (no state uses it).
pub const CRITICAL_COLOR: &str = "#c2255c";

/// A goal's critical path as the drawings mark it: its tasks and the edges
/// between consecutive ones ([`crate::domain::critical`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CriticalPath {
    /// The ids, first to last.
    pub ids: Vec<String>,
    /// Each id's place on the path.
    place: HashMap<String, usize>,
}

impl CriticalPath {
    /// The critical path of `dag` by the ranks in `tasks`.
    pub fn of(dag: &Dag, tasks: &[TaskState]) -> Self {
        let ids = crate::domain::critical_path(dag, tasks);
        let place = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        Self { ids, place }
    }

    /// Whether task `id` is on the path.
    pub fn has(&self, id: &str) -> bool {
        self.place.contains_key(id)
    }

    /// Whether the edge `source` → `target` is a step of the path.
    pub fn steps(&self, source: &str, target: &str) -> bool {
        match (self.place.get(source), self.place.get(target)) {
            (Some(s), Some(t)) => s + 1 == *t,
            _ => false,
        }
    }

    /// The path on one line, `a → b → c` (ids cleaned of control characters).
    fn text(&self) -> String {
        self.ids
            .iter()
            .map(|id| clean(id))
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

fn sorted_edges(dag: &Dag) -> Vec<&Edge> {
    let mut edges: Vec<_> = dag.edges.iter().collect();
    edges.sort();
    edges
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::AgentKind;
    use fixtures::agent;

    #[test]
    fn a_role_is_served_by_who_claims_it_and_roleless_tasks_by_builders_only() {
        let mut status = fixtures::goal_report().status;
        status.goal = "g".into();
        status.ready_by_role = BTreeMap::from([
            (String::new(), 2),
            ("reviewer".to_string(), 1),
            ("qa".to_string(), 3),
            ("lead".to_string(), 1),
        ]);
        let agents = [
            agent("r", None, AgentKind::Reviewer, true),
            agent("q", Some("qa"), AgentKind::Reviewer, false),
            agent("m", Some("lead"), AgentKind::Manager, true),
        ];
        // No live builder: the roleless tasks and the dead reviewer's are unserved.
        assert_eq!(
            unserved(&status, &agents),
            [(String::new(), 2), ("qa".to_string(), 3)]
        );
        let mut with_builder = agents.to_vec();
        with_builder.push(agent("b", None, AgentKind::Builder, true));
        assert_eq!(unserved(&status, &with_builder), [("qa".to_string(), 3)]);
    }
}
