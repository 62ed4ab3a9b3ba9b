//! The pages' live parts, rendered from fetched views (`super::fetch`): the
//! front page (`overview.rs`), a goal (`goal.rs`) and a task (`task.rs`). Each
//! function returns the HTML that `super::html::document` wraps, or that the
//! page's script swaps in when the store announces a change.
//!
//! Pure functions of their arguments and the current time.

mod goal;
mod overview;
mod task;

use std::fmt::Write as _;

pub(super) use goal::goal;
pub(super) use overview::overview;
pub(super) use task::task;

use super::fetch::AgentView;
use super::html::{escape, link, task_href};
use crate::store::AgentState;

/// The agents table: role, kind, goal, state, held task, restarts, pause and
/// recent problems.
fn agents_table(agents: &[AgentView]) -> String {
    if agents.is_empty() {
        return "<p class=\"muted\">No agent has registered yet.</p>".to_string();
    }
    let mut out = String::from(
        "<table class=\"agents\"><thead><tr><th>agent</th><th>role</th><th>kind</th><th>goal</th><th>state</th>\
<th>current task</th><th>restarts</th><th>paused</th><th>recent errors</th></tr></thead><tbody>",
    );
    for agent in agents {
        let record = &agent.record;
        let state_class = match record.state {
            AgentState::Running => "a-running",
            AgentState::Failed(_) => "a-failed",
            _ => "a-idle",
        };
        let holding = if agent.holding.is_empty() {
            "–".to_string()
        } else {
            agent
                .holding
                .iter()
                .map(|t| link(&task_href(&record.goal, t), t))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let paused = match &agent.paused {
            Some(mode) => format!("<span class=\"warn\">paused ({})</span>", escape(mode)),
            None => "no".to_string(),
        };
        let restarts = agent
            .restarts
            .map_or_else(|| "–".to_string(), |n| n.to_string());
        let errors = if agent.errors.is_empty() {
            "–".to_string()
        } else {
            let items: String = agent
                .errors
                .iter()
                .map(|e| format!("<li>{}</li>", escape(e)))
                .collect();
            format!("<ul class=\"errors\">{items}</ul>")
        };
        let _ = write!(
            out,
            "<tr data-agent=\"{name}\"><td>{name}</td><td>{role}</td><td>{kind}</td><td>{goal}</td><td><span class=\"{state_class}\">{state}</span></td>\
<td>{holding}</td><td class=\"num\">{restarts}</td><td>{paused}</td><td>{errors}</td></tr>",
            name = escape(&record.name),
            role = escape(record.role.as_deref().unwrap_or("–")),
            kind = record.kind,
            goal = link(&super::html::goal_href(&record.goal), &record.goal),
            state = escape(&record.state.to_string()),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A call-out box (waits, backoffs, failures).
fn callout(class: &str, html: &str) -> String {
    format!("<p class=\"callout {class}\">{html}</p>")
}
