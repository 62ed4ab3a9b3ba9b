//! A task's page: what its prompt shows (title, plan node, dependencies'
//! results), its state, notes, outputs and last error.

use std::fmt::Write as _;

use super::super::fetch::TaskView;
use super::super::html::{
    countdown, escape, goal_href, kind_badge, lease_left, link, state_badge, task_href, time,
};
use crate::domain::TaskStatus;

/// A task page's live part.
pub(in crate::web) fn task(view: &TaskView, now_ms: u64) -> String {
    let t = &view.task;
    let mut out = format!(
        "<p class=\"crumbs\"><a href=\"/\">goals</a> / {goal} / {id}</p>\
<h1>{id}{kind} {badge}</h1><p class=\"subtitle\">{title}</p>",
        goal = link(&goal_href(&view.goal), &view.goal),
        id = escape(&t.id),
        kind = kind_badge(&t.id),
        badge = state_badge(t.status),
        title = escape(&t.title),
    );
    let retry = match t.retry_at_ms {
        Some(at) if at > now_ms && t.status == TaskStatus::Ready => {
            format!("in {} ({})", countdown(at, now_ms), time(at))
        }
        _ => "–".into(),
    };
    let opt_time = |ms: Option<u64>| ms.map(time).unwrap_or_else(|| "–".into());
    let rows = [
        ("role", escape(t.role.as_deref().unwrap_or("–"))),
        ("priority", t.priority.to_string()),
        ("owner", escape(t.owner.as_deref().unwrap_or("–"))),
        ("attempt", t.attempt.to_string()),
        ("fence", t.fence.to_string()),
        ("lease left", lease_left(t, now_ms)),
        ("retry", retry),
        ("dependencies not DONE", t.pending_deps.to_string()),
        ("created", time(t.created_ms)),
        ("last claimed", opt_time(t.started_ms)),
        ("finished", opt_time(t.finished_ms)),
        ("last change", time(t.updated_ms)),
    ];
    out.push_str("<table class=\"fields\"><tbody>");
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</tbody></table>");
    if let Some(error) = &t.last_error {
        let _ = write!(
            out,
            "<h2>Last error</h2><pre class=\"text error\">{}</pre>",
            escape(error)
        );
    }
    let _ = write!(
        out,
        "<h2>Notes</h2>{}",
        if t.progress.is_empty() {
            "<p class=\"muted\">None yet.</p>".to_string()
        } else {
            format!("<pre class=\"text\">{}</pre>", escape(&t.progress))
        }
    );
    out.push_str("<h2>Outputs</h2>");
    if t.artifacts.is_empty() {
        out.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        out.push_str("<ul>");
        for artifact in &t.artifacts {
            let _ = write!(out, "<li><code>{}</code></li>", escape(artifact));
        }
        out.push_str("</ul>");
    }
    out.push_str("<h2>Dependency results (as the prompt shows them)</h2>");
    if view.deps.is_empty() {
        out.push_str("<p class=\"muted\">No dependencies.</p>");
    }
    for (id, dep) in &view.deps {
        let (badge, result) = match dep {
            Some(d) => (
                format!(
                    "{} <span class=\"muted\">{}</span>",
                    state_badge(d.status),
                    escape(&d.title)
                ),
                if d.progress.is_empty() {
                    "<p class=\"muted\">No result yet.</p>".to_string()
                } else {
                    format!("<pre class=\"text\">{}</pre>", escape(&d.progress))
                },
            ),
            None => (
                String::new(),
                "<p class=\"muted\">Not in the store.</p>".into(),
            ),
        };
        let _ = write!(
            out,
            "<h3>{} {badge}</h3>{result}",
            link(&task_href(&view.goal, id), id)
        );
    }
    if !view.dependents.is_empty() {
        let links: Vec<String> = view
            .dependents
            .iter()
            .map(|d| link(&task_href(&view.goal, d), d))
            .collect();
        let _ = write!(out, "<p>Waited for by: {}</p>", links.join(", "));
    }
    out.push_str("<h2>Plan node</h2>");
    match &view.node {
        Some(node) => {
            let json = serde_json::to_string_pretty(node).unwrap_or_default();
            let _ = write!(out, "<pre class=\"text\">{}</pre>", escape(&json));
        }
        None => out.push_str("<p class=\"muted\">The plan has no node for this task.</p>"),
    }
    out
}
