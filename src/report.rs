//! What `porki status` and `porki graph` print, rendered from already-fetched data.
//!
//! Every function here is pure: the CLI reads the store, then hands the data and
//! the current time to a renderer and prints the string it gets back. That keeps
//! the layout testable to the byte and lets `--watch` redraw without re-deciding
//! anything.
//!
//! The JSON shapes are a stable interface, documented field by field on
//! [`status_json`] and [`graph_json`] and in `docs/status-json.md`. Fields may be
//! added; none are renamed or removed without bumping `version`.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::domain::{Dag, TaskState, TaskStatus};
use crate::store::{AgentRecord, GoalStatus};

/// Version of the `porki status --json` and `porki graph --format json` shapes.
pub const JSON_VERSION: u64 = 1;

/// One goal as `porki status` shows it: its summary and its tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalReport {
    /// The goal's summary and per-state counts.
    pub status: GoalStatus,
    /// Every task of the goal, in any order (renderers sort them).
    pub tasks: Vec<TaskState>,
}

/// One registered agent as `porki status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentReport {
    /// The registration record.
    pub record: AgentRecord,
    /// The newest problem the agent recorded, if any.
    pub last_error: Option<String>,
}

/// Narrowest layout the text renderer packs columns into.
const MIN_WIDTH: usize = 60;
/// Width of the progress bar, in cells.
const BAR_WIDTH: usize = 30;
/// Gap between table columns.
const GAP: &str = "  ";

/// The text of `porki status`: each goal with a progress bar and counts per state,
/// its task table (most recent activity first), then the agents, if any.
///
/// `now_ms` (ms since the Unix epoch) is the reference for lease time left;
/// `width` is the terminal width the table is fitted to (at least 60 is used).
pub fn status_text(
    goals: &[GoalReport],
    agents: &[AgentReport],
    now_ms: u64,
    width: usize,
) -> String {
    let width = width.max(MIN_WIDTH);
    let mut out = String::new();
    if goals.is_empty() {
        out.push_str(
            "no goals in the store: start the orchestrator (`porki run`) so it plans them\n",
        );
    }
    for (i, goal) in goals.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        goal_text(&mut out, goal, now_ms, width);
    }
    if !agents.is_empty() {
        out.push('\n');
        agents_text(&mut out, agents, width);
    }
    out
}

fn goal_text(out: &mut String, goal: &GoalReport, now_ms: u64, width: usize) {
    let status = &goal.status;
    let mut header = format!("goal {}  {}", status.goal, goal_state_name(status));
    if !status.title.is_empty() && status.title != status.goal {
        header.push_str("  ");
        header.push_str(&clean(&status.title));
    }
    let _ = writeln!(out, "{}", fit(&header, width));
    let done = status.count(TaskStatus::Done);
    let _ = writeln!(
        out,
        "  {} {done}/{} done ({}%)",
        progress_bar(done, status.total, BAR_WIDTH),
        status.total,
        percent(done, status.total)
    );
    let counts: Vec<String> = TaskStatus::ALL
        .iter()
        .map(|s| format!("{} {}", s.as_str().to_lowercase(), status.count(*s)))
        .collect();
    let _ = writeln!(out, "  {}", counts.join("  "));
    if let Some(error) = &status.last_error {
        let _ = writeln!(out, "{}", fit(&format!("  error: {}", clean(error)), width));
    }
    if goal.tasks.is_empty() {
        out.push_str("  (no tasks)\n");
        return;
    }
    let mut tasks: Vec<&TaskState> = goal.tasks.iter().collect();
    tasks.sort_by(|a, b| {
        b.updated_ms
            .cmp(&a.updated_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let rows: Vec<[String; 7]> = tasks
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                clean(&t.title),
                t.status.as_str().to_string(),
                t.owner.as_deref().map_or_else(|| "-".to_string(), clean),
                t.attempt.to_string(),
                lease_left(t, now_ms),
                t.last_error
                    .as_deref()
                    .map_or_else(|| "-".to_string(), clean),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TITLE",
        "STATE",
        "OWNER",
        "ATTEMPT",
        "LEASE",
        "LAST ERROR",
    ];
    // Fixed columns are as wide as their content (id and owner capped); title and
    // last error share what is left of the width, the error getting at most half.
    let natural = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .chain([header[col].len()])
            .max()
            .unwrap_or(0)
    };
    let mut widths = [
        natural(0).min(32),
        0,
        natural(2),
        natural(3).min(20),
        natural(4),
        natural(5),
        0,
    ];
    let fixed = 2 + widths.iter().sum::<usize>() + GAP.len() * (widths.len() - 1);
    let rest = width.saturating_sub(fixed);
    let error_share = natural(6).min(rest / 2);
    widths[1] = natural(1)
        .min(rest.saturating_sub(error_share))
        .max(header[1].len());
    widths[6] = rest.saturating_sub(widths[1]).max(header[6].len());
    table(out, "  ", &header, &rows, &widths);
}

fn agents_text(out: &mut String, agents: &[AgentReport], width: usize) {
    out.push_str("agents\n");
    let rows: Vec<[String; 5]> = agents
        .iter()
        .map(|a| {
            [
                a.record.name.clone(),
                a.record.goal.clone(),
                a.record
                    .role
                    .as_deref()
                    .map_or_else(|| "-".to_string(), clean),
                clean(&a.record.state),
                a.last_error
                    .as_deref()
                    .map_or_else(|| "-".to_string(), clean),
            ]
        })
        .collect();
    let header = ["NAME", "GOAL", "ROLE", "STATE", "LAST ERROR"];
    let natural = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .chain([header[col].len()])
            .max()
            .unwrap_or(0)
    };
    let mut widths = [
        natural(0).min(32),
        natural(1).min(32),
        natural(2).min(20),
        natural(3).min(30),
        0,
    ];
    let fixed = 2 + widths.iter().sum::<usize>() + GAP.len() * (widths.len() - 1);
    widths[4] = width.saturating_sub(fixed).max(header[4].len());
    table(out, "  ", &header, &rows, &widths);
}

/// Writes a header and rows, each cell fitted to its column; no trailing spaces.
fn table<const N: usize>(
    out: &mut String,
    indent: &str,
    header: &[&str; N],
    rows: &[[String; N]],
    widths: &[usize; N],
) {
    let mut line = |cells: [&str; N]| {
        let mut text = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str(GAP);
            }
            let _ = write!(text, "{:<w$}", fit(cell, widths[i]), w = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(*header);
    for row in rows {
        line(std::array::from_fn(|i| row[i].as_str()));
    }
}

/// `[######----]`: DONE out of total, `width` cells.
fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        0
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    }
}

fn goal_state_name(status: &GoalStatus) -> &'static str {
    match status.state {
        crate::store::GoalState::Draft => "draft",
        crate::store::GoalState::Active => "active",
        crate::store::GoalState::Complete => "complete",
        crate::store::GoalState::Failed => "failed",
    }
}

/// Time left on a RUNNING task's lease: `12s`, `3m05s`, `1h02m`; `expired` when
/// past; `-` when the task is not RUNNING or has no lease.
fn lease_left(task: &TaskState, now_ms: u64) -> String {
    if task.status != TaskStatus::Running {
        return "-".into();
    }
    match task.lease_expires_ms {
        None => "-".into(),
        Some(expires) if expires <= now_ms => "expired".into(),
        Some(expires) => {
            // Round up: a lease with 300 ms left is not shown as gone.
            let secs = (expires - now_ms).div_ceil(1000);
            if secs < 60 {
                format!("{secs}s")
            } else if secs < 3600 {
                format!("{}m{:02}s", secs / 60, secs % 60)
            } else {
                format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
            }
        }
    }
}

/// Text on one line: control characters (newlines, tabs, escapes) become spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `width` characters, the cut marked with `…`.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn lease_left_ms(task: &TaskState, now_ms: u64) -> Option<u64> {
    match (task.status, task.lease_expires_ms) {
        (TaskStatus::Running, Some(expires)) => Some(expires.saturating_sub(now_ms)),
        _ => None,
    }
}

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
///     "last_error": null           // newest recorded problem, or null
///   }]
/// }
/// ```
pub fn status_json(goals: &[GoalReport], agents: &[AgentReport], now_ms: u64) -> Value {
    let goals: Vec<Value> = goals.iter().map(|g| goal_json(g, now_ms)).collect();
    let agents: Vec<Value> = agents
        .iter()
        .map(|a| {
            json!({
                "name": a.record.name,
                "goal": a.record.goal,
                "role": a.record.role,
                "process": a.record.process,
                "state": a.record.state,
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

fn goal_json(goal: &GoalReport, now_ms: u64) -> Value {
    let status = &goal.status;
    let counts: serde_json::Map<String, Value> = TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(status.count(*s))))
        .collect();
    let mut tasks: Vec<&TaskState> = goal.tasks.iter().collect();
    tasks.sort_by(|a, b| {
        b.updated_ms
            .cmp(&a.updated_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let tasks: Vec<Value> = tasks
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
        "tasks": tasks,
    })
}

/// Fill colour of a task node per state, shared by the Mermaid and DOT renderers.
fn state_color(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Blocked => "#e9ecef",
        TaskStatus::Ready => "#fff3bf",
        TaskStatus::Running => "#d0ebff",
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
        TaskStatus::Done => "#2f9e44",
        TaskStatus::Failed => "#e03131",
    }
}

/// A node's lines: id, title (if any), state (with the owner while RUNNING).
fn node_lines(id: &str, title: &str, task: Option<&TaskState>) -> Vec<String> {
    let mut lines = vec![clean(id)];
    if !title.is_empty() {
        lines.push(clean(title));
    }
    lines.push(match task {
        Some(t) => match (&t.status, &t.owner) {
            (TaskStatus::Running, Some(owner)) => format!("RUNNING by {}", clean(owner)),
            (status, _) => status.as_str().to_string(),
        },
        None => "UNKNOWN".to_string(),
    });
    lines
}

fn task_index(tasks: &[TaskState]) -> HashMap<&str, &TaskState> {
    tasks.iter().map(|t| (t.id.as_str(), t)).collect()
}

fn sorted_edges(dag: &Dag) -> Vec<&crate::domain::Edge> {
    let mut edges: Vec<_> = dag.edges.iter().collect();
    edges.sort();
    edges
}

/// A Mermaid node id for a task id: `t_` then the id with letters and digits kept,
/// `_` doubled and anything else written as `_HEX_`, so distinct ids stay distinct
/// and no id can be a keyword (`end`) or break the syntax.
fn mermaid_id(id: &str) -> String {
    let mut out = String::from("t_");
    for c in id.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => out.push(c),
            '_' => out.push_str("__"),
            _ => {
                let _ = write!(out, "_{:x}_", c as u32);
            }
        }
    }
    out
}

/// Text inside a quoted Mermaid label: quotes, `#`, `;`, `<`, `>`, `&` and
/// backticks as entity codes, control characters as spaces.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The DAG as a Mermaid flowchart: one node per task labelled id, title and state,
/// a `classDef` per state, edges source → target (sorted).
pub fn graph_mermaid(dag: &Dag, tasks: &[TaskState]) -> String {
    let index = task_index(tasks);
    let mut out = String::from("flowchart TD\n");
    for status in TaskStatus::ALL {
        let _ = writeln!(
            out,
            "    classDef {} fill:{},stroke:{},color:#212529",
            status.as_str().to_lowercase(),
            state_color(status),
            state_stroke(status)
        );
    }
    for node in &dag.nodes {
        let task = index.get(node.id.as_str()).copied();
        let label: Vec<String> = node_lines(&node.id, &node.title, task)
            .iter()
            .map(|l| mermaid_text(l))
            .collect();
        let class = task.map_or(String::new(), |t| {
            format!(":::{}", t.status.as_str().to_lowercase())
        });
        let _ = writeln!(
            out,
            "    {}[\"{}\"]{class}",
            mermaid_id(&node.id),
            label.join("<br/>")
        );
    }
    for edge in sorted_edges(dag) {
        let _ = writeln!(
            out,
            "    {} --> {}",
            mermaid_id(&edge.source),
            mermaid_id(&edge.target)
        );
    }
    out
}

/// A double-quoted DOT string: backslashes and quotes escaped, control characters as spaces.
fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The DAG as a Graphviz `digraph`: one box per task labelled id, title and state,
/// filled by state, edges source → target (sorted). Every id is a quoted string.
pub fn graph_dot(dag: &Dag, tasks: &[TaskState]) -> String {
    let index = task_index(tasks);
    let mut out = format!("digraph {} {{\n", dot_quote(&dag.goal_id));
    out.push_str("    rankdir=TB;\n");
    out.push_str("    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    for node in &dag.nodes {
        let task = index.get(node.id.as_str()).copied();
        // Quote each line on its own, then join with DOT's line-break escape.
        let label: Vec<String> = node_lines(&node.id, &node.title, task)
            .iter()
            .map(|l| {
                let quoted = dot_quote(l);
                quoted[1..quoted.len() - 1].to_string()
            })
            .collect();
        let (fill, stroke) = task.map_or(("#ffffff", "#212529"), |t| {
            (state_color(t.status), state_stroke(t.status))
        });
        let _ = writeln!(
            out,
            "    {} [label=\"{}\", fillcolor=\"{fill}\", color=\"{stroke}\"];",
            dot_quote(&node.id),
            label.join("\\n")
        );
    }
    for edge in sorted_edges(dag) {
        let _ = writeln!(
            out,
            "    {} -> {};",
            dot_quote(&edge.source),
            dot_quote(&edge.target)
        );
    }
    out.push_str("}\n");
    out
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
    let index = task_index(tasks);
    let nodes: Vec<Value> = dag
        .nodes
        .iter()
        .map(|node| {
            let task = index.get(node.id.as_str()).copied();
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
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{Edge, Node};
    use crate::store::GoalState;

    const NOW: u64 = 1_000_000;

    fn task(id: &str, title: &str, status: TaskStatus, updated_ms: u64) -> TaskState {
        TaskState {
            goal: "g".into(),
            id: id.into(),
            title: title.into(),
            role: None,
            priority: 0,
            status,
            owner: None,
            attempt: 0,
            fence: 0,
            lease_expires_ms: None,
            progress: String::new(),
            artifacts: Vec::new(),
            last_error: None,
            pending_deps: 0,
            retry_at_ms: None,
            created_ms: 0,
            updated_ms,
            started_ms: None,
            finished_ms: None,
        }
    }

    /// a → b, a → c, b → d, c → d: a DONE, b RUNNING by w1, c FAILED, d BLOCKED.
    fn diamond() -> (Dag, Vec<TaskState>) {
        let dag = Dag {
            goal_id: "g".into(),
            nodes: vec![
                Node::new("a", "Start"),
                Node::new("b", "Left"),
                Node::new("c", "Right"),
                Node::new("d", "Join"),
            ],
            edges: vec![
                Edge {
                    source: "c".into(),
                    target: "d".into(),
                },
                Edge {
                    source: "a".into(),
                    target: "b".into(),
                },
                Edge {
                    source: "a".into(),
                    target: "c".into(),
                },
                Edge {
                    source: "b".into(),
                    target: "d".into(),
                },
            ],
        };
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

    fn goal_report() -> GoalReport {
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
                created_ms: 1,
                finished_ms: None,
                last_error: None,
                tokens: 0,
                cost_usd: 0.0,
            },
            tasks,
        }
    }

    #[test]
    fn status_text_shows_bar_counts_and_tasks_newest_first() {
        let agents = [AgentReport {
            record: AgentRecord {
                name: "w1".into(),
                goal: "g".into(),
                role: Some("research".into()),
                process: "host:1".into(),
                state: "running".into(),
            },
            last_error: None,
        }];
        let text = status_text(&[goal_report()], &agents, NOW, 80);
        let expected = "\
goal g  active  Diamond
  [#######-----------------------] 1/4 done (25%)
  blocked 1  ready 0  running 1  done 1  failed 1
  ID  TITLE  STATE    OWNER  ATTEMPT  LEASE  LAST ERROR
  c   Right  FAILED   w2     3        -      boom
  b   Left   RUNNING  w1     1        12s    -
  a   Start  DONE     w1     1        -      -
  d   Join   BLOCKED  -      0        -      -

agents
  NAME  GOAL  ROLE      STATE    LAST ERROR
  w1    g     research  running  -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn status_text_truncates_long_titles_and_errors_to_the_width() {
        let mut report = goal_report();
        report.tasks[0].title = "a very long title ".repeat(10);
        report.tasks[2].last_error = Some("line one\nline two ".repeat(10));
        let text = status_text(&[report], &[], NOW, 80);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line:?} is wider than 80");
        }
        assert!(text.contains('…'), "{text}");
        assert!(
            !text.contains("one\nline"),
            "newlines in an error stay on one line"
        );
    }

    #[test]
    fn lease_left_shows_expired_and_minutes() {
        let mut t = task("x", "", TaskStatus::Running, 0);
        t.lease_expires_ms = Some(NOW - 1);
        assert_eq!(lease_left(&t, NOW), "expired");
        t.lease_expires_ms = Some(NOW + 125_000);
        assert_eq!(lease_left(&t, NOW), "2m05s");
        t.lease_expires_ms = Some(NOW + 300);
        assert_eq!(lease_left(&t, NOW), "1s");
        t.status = TaskStatus::Ready;
        assert_eq!(lease_left(&t, NOW), "-");
    }

    #[test]
    fn status_text_without_goals_says_how_to_get_one() {
        assert!(status_text(&[], &[], NOW, 80).contains("porki run"));
    }

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
    }

    #[test]
    fn graph_mermaid_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
flowchart TD
    classDef blocked fill:#e9ecef,stroke:#868e96,color:#212529
    classDef ready fill:#fff3bf,stroke:#f08c00,color:#212529
    classDef running fill:#d0ebff,stroke:#1c7ed6,color:#212529
    classDef done fill:#d3f9d8,stroke:#2f9e44,color:#212529
    classDef failed fill:#ffc9c9,stroke:#e03131,color:#212529
    t_a[\"a<br/>Start<br/>DONE\"]:::done
    t_b[\"b<br/>Left<br/>RUNNING by w1\"]:::running
    t_c[\"c<br/>Right<br/>FAILED\"]:::failed
    t_d[\"d<br/>Join<br/>BLOCKED\"]:::blocked
    t_a --> t_b
    t_a --> t_c
    t_b --> t_d
    t_c --> t_d
";
        assert_eq!(graph_mermaid(&dag, &tasks), expected);
    }

    #[test]
    fn graph_dot_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
digraph \"g\" {
    rankdir=TB;
    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];
    \"a\" [label=\"a\\nStart\\nDONE\", fillcolor=\"#d3f9d8\", color=\"#2f9e44\"];
    \"b\" [label=\"b\\nLeft\\nRUNNING by w1\", fillcolor=\"#d0ebff\", color=\"#1c7ed6\"];
    \"c\" [label=\"c\\nRight\\nFAILED\", fillcolor=\"#ffc9c9\", color=\"#e03131\"];
    \"d\" [label=\"d\\nJoin\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\"];
    \"a\" -> \"b\";
    \"a\" -> \"c\";
    \"b\" -> \"d\";
    \"c\" -> \"d\";
}
";
        assert_eq!(graph_dot(&dag, &tasks), expected);
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

    const HOSTILE: &str = "say \"hi\"]; end\n[x] --> y #1 <b>&`\\N";

    fn hostile() -> (Dag, Vec<TaskState>) {
        let dag = Dag {
            goal_id: "g\"x".into(),
            nodes: vec![Node::new("end", HOSTILE), Node::new("a-b.c_d", "ok")],
            edges: vec![Edge {
                source: "end".into(),
                target: "a-b.c_d".into(),
            }],
        };
        let tasks = vec![
            task("end", HOSTILE, TaskStatus::Ready, 0),
            task("a-b.c_d", "ok", TaskStatus::Blocked, 0),
        ];
        (dag, tasks)
    }

    #[test]
    fn graph_mermaid_escapes_a_hostile_title_and_ids() {
        let (dag, tasks) = hostile();
        let text = graph_mermaid(&dag, &tasks);
        assert!(
            text.contains(
                "    t_end[\"end<br/>say #quot;hi#quot;]#59; end [x] --#gt; y #35;1 #lt;b#gt;#amp;#96;\\N<br/>READY\"]:::ready\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    t_a_2d_b_2e_c__d[\"a-b.c_d<br/>ok<br/>BLOCKED\"]:::blocked\n"),
            "{text}"
        );
        assert!(text.contains("    t_end --> t_a_2d_b_2e_c__d\n"), "{text}");
        // Every node line is one line: the title's newline did not split it.
        assert_eq!(text.lines().count(), 1 + 5 + 2 + 1);
        assert_ne!(mermaid_id("a_b"), mermaid_id("a-b"));
        assert_ne!(mermaid_id("a__2d_"), mermaid_id("a_-"));
    }

    #[test]
    fn graph_dot_escapes_a_hostile_title_and_ids() {
        let (dag, tasks) = hostile();
        let text = graph_dot(&dag, &tasks);
        assert!(text.starts_with("digraph \"g\\\"x\" {\n"), "{text}");
        assert!(
            text.contains(
                "    \"end\" [label=\"end\\nsay \\\"hi\\\"]; end [x] --> y #1 <b>&`\\\\N\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\"];\n"
            ),
            "{text}"
        );
        assert!(text.contains("    \"end\" -> \"a-b.c_d\";\n"), "{text}");
        assert_eq!(text.lines().count(), 3 + 2 + 1 + 1);
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
