//! A task's page: what its prompt shows (title, plan node, dependencies'
//! results), its state, what it is and waits for (a review of which task, in
//! which cycle; a person's approval), its rank and estimate, its commit and diffstat, or the merge
//! conflict it resolves, notes, outputs and last error.

use std::fmt::Write as _;

use super::super::fetch::TaskView;
use super::super::html::{
    countdown, duration, escape, goal_href, kind_badge, lease_left, link, state_badge, task_href,
    time,
};
use super::callout;
use crate::domain::rank::EstimateSource;
use crate::domain::{TaskState, TaskStatus};
use crate::report::task_subject;

/// A task page's live part.
pub(in crate::web) fn task(view: &TaskView, now_ms: u64) -> String {
    let t = &view.task;
    let mut out = format!(
        "<p class=\"crumbs\"><a href=\"/\">goals</a> / {goal} / {id}</p>\
<h1>{id}{kind} {badge}</h1><p class=\"subtitle\">{title}</p>",
        goal = link(&goal_href(&view.goal), &view.goal),
        id = escape(&t.id),
        kind = kind_badge(t.kind),
        badge = state_badge(t.status),
        title = escape(&t.title),
    );
    let retry = match t.retry_at_ms {
        Some(at) if at > now_ms && t.status == TaskStatus::Ready => {
            format!("in {} ({})", countdown(at, now_ms), time(at))
        }
        _ => "–".into(),
    };
    if t.status == TaskStatus::AwaitingApproval {
        out.push_str(&callout(
            "ask",
            &format!(
                "Awaits a person's approval. Answer with <code>porki approve --goal {goal} --task {id}</code> \
or <code>porki reject --goal {goal} --task {id} --reason …</code>, or write <code>APPROVE-TASK {id}</code> \
or <code>REJECT-TASK {id} reason</code> into a heartbeat file of the goal.",
                goal = escape(&view.goal),
                id = escape(&t.id),
            ),
        ));
    }
    let opt_time = |ms: Option<u64>| ms.map(time).unwrap_or_else(|| "–".into());
    let mut rows = team_rows(view);
    rows.extend([
        ("role", escape(t.role.as_deref().unwrap_or("–"))),
        ("priority", t.priority.to_string()),
        ("rank", rank(t)),
        ("estimate", estimate(t)),
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
    ]);
    out.push_str("<table class=\"fields\"><tbody>");
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</tbody></table>");
    out.push_str(&merged(view));
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

/// Worktree isolation's part: for a merge task, the conflict it resolves; once
/// DONE, the goal branch's commit holding the task's work and what it changed.
fn merged(view: &TaskView) -> String {
    let t = &view.task;
    let links = |ids: &[String], none: &str| {
        if ids.is_empty() {
            return none.to_string();
        }
        ids.iter()
            .map(|id| link(&task_href(&view.goal, id), id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if let Some(conflict) = &t.conflict {
        let files: Vec<String> = conflict
            .files
            .iter()
            .map(|f| format!("<li><code>{}</code></li>", escape(f)))
            .collect();
        let _ = write!(
            out,
            "<h2>Merge conflict</h2><p>Commit <code>{commit}</code> (the work of {ours}) did not merge \
into the goal branch, where {theirs} changed the same files:</p><ul class=\"conflict\">{files}</ul>",
            commit = escape(&conflict.commit),
            ours = links(&conflict.ours, "this task"),
            theirs = links(&conflict.theirs, "work merged before it"),
            files = files.concat(),
        );
    }
    if let Some(commit) = &t.commit {
        let _ = write!(
            out,
            "<h2>Commit</h2><p><code class=\"commit\">{}</code> on the goal branch holds this task's work.</p>",
            escape(commit)
        );
        match t.diffstat.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(diffstat) => {
                let _ = write!(
                    out,
                    "<pre class=\"text diffstat\">{}</pre>",
                    escape(diffstat)
                );
            }
            None => out.push_str("<p class=\"muted\">It changed no file.</p>"),
        }
    }
    out
}

/// What the team loops say about the task, the rows that apply: what it is (a
/// review of which task, in which cycle…), what it is asked to address, what it
/// waits for, its approval, its recovery, the role the plan gave it.
fn team_rows(view: &TaskView) -> Vec<(&'static str, String)> {
    let t = &view.task;
    let links = |ids: &[&str]| {
        ids.iter()
            .map(|id| link(&task_href(&view.goal, id), id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = Vec::new();
    if let Some(subject) = task_subject(t) {
        let of =
            t.of.as_deref()
                .map(|of| format!(" ({})", link(&task_href(&view.goal, of), of)))
                .unwrap_or_default();
        rows.push(("what it is", format!("{}{of}", escape(&subject))));
    }
    if let Some(notes) = t.notes.as_deref().filter(|n| !n.is_empty()) {
        rows.push(("asked to address", escape(notes)));
    }
    if t.status == TaskStatus::Blocked {
        let waiting: Vec<&str> = view
            .deps
            .iter()
            .filter(|(_, dep)| dep.as_ref().is_none_or(|d| d.status != TaskStatus::Done))
            .map(|(id, _)| id.as_str())
            .collect();
        if !waiting.is_empty() {
            rows.push(("waits for", links(&waiting)));
        }
    }
    if t.needs_approval {
        rows.push(("approval", approval_state(t).to_string()));
    }
    if let Some(recovery) = &t.recovered_by {
        rows.push((
            "recovered by",
            format!(
                "{} (took its work over; what waited for it waits for the recovery)",
                links(&[recovery.as_str()])
            ),
        ));
    }
    if let Some(role) = &t.planned_role {
        rows.push((
            "planned role",
            format!(
                "{} (no live agent had it: handed to {})",
                escape(role),
                escape(t.role.as_deref().unwrap_or("any builder"))
            ),
        ));
    }
    rows
}

/// A task's rank, with what it means; `–` before it has one.
fn rank(task: &TaskState) -> String {
    match task.rank_ms {
        Some(ms) => format!(
            "{} <span class=\"muted\">(the longest estimated path from its start to the end of the plan: \
of READY tasks of one priority, the highest rank runs first)</span>",
            duration(ms)
        ),
        None => "–".to_string(),
    }
}

/// How long a task is expected to run, and where that came from; `–` before it has one.
fn estimate(task: &TaskState) -> String {
    let Some(ms) = task.estimate_ms else {
        return "–".to_string();
    };
    let from = match task.estimate_source {
        Some(EstimateSource::Plan) => "from the plan: its size times the goal's typical task",
        Some(EstimateSource::Measured) => {
            "measured: the mean of the goal's finished tasks of its role and kind"
        }
        Some(EstimateSource::Default) => "default: one typical task of the goal",
        None => return duration(ms),
    };
    format!("{} <span class=\"muted\">({from})</span>", duration(ms))
}

/// Where a task that needs approval stands with it.
fn approval_state(task: &TaskState) -> &'static str {
    match task.status {
        TaskStatus::AwaitingApproval => "awaited now",
        TaskStatus::Done => "given",
        TaskStatus::Failed => "not given (the task FAILED)",
        _ => "needed once it ran",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TaskKind;
    use crate::report::fixtures::{NOW, team};

    /// The task `id` of the team fixture, with its dependencies as the page reads them.
    fn view(id: &str) -> TaskView {
        let (dag, tasks) = team();
        let state = |id: &str| tasks.iter().find(|t| t.id == id).cloned();
        let deps = dag
            .edges
            .iter()
            .filter(|e| e.target == id)
            .map(|e| (e.source.clone(), state(&e.source)))
            .collect();
        TaskView {
            goal: "g".into(),
            task: state(id).unwrap(),
            node: None,
            deps,
            dependents: Vec::new(),
        }
    }

    #[test]
    fn a_review_says_what_it_reviews_and_waits_for() {
        let page = task(&view("draft.review"), NOW);
        for part in [
            "<h1>draft.review <span class=\"kind k-review\">review</span>",
            "<tr><th>what it is</th><td>review of draft, cycle 1 (<a href=\"/goals/g/tasks/draft\">draft</a>)</td></tr>",
            // draft is DONE: only the fix is waited for.
            "<tr><th>waits for</th><td><a href=\"/goals/g/tasks/draft.fix-1\">draft.fix-1</a></td></tr>",
        ] {
            assert!(page.contains(part), "no {part:?} in:\n{page}");
        }
        assert!(!page.contains("Awaits a person"), "{page}");
    }

    #[test]
    fn a_task_awaiting_approval_says_how_to_answer() {
        let page = task(&view("sign-off"), NOW);
        for part in [
            "<code>porki approve --goal g --task sign-off</code>",
            "<code>porki reject --goal g --task sign-off --reason …</code>",
            "<code>APPROVE-TASK sign-off</code>",
            "<tr><th>approval</th><td>awaited now</td></tr>",
        ] {
            assert!(page.contains(part), "no {part:?} in:\n{page}");
        }
        let recovered = task(&view("scan"), NOW);
        assert!(
            recovered
                .contains("<tr><th>recovered by</th><td><a href=\"/goals/g/tasks/scan.recover\">"),
            "{recovered}"
        );
        let recovery = task(&view("scan.recover"), NOW);
        assert!(
            recovery.contains("<tr><th>asked to address</th><td>timeout</td></tr>"),
            "{recovery}"
        );
        assert_eq!(view("scan.recover").task.kind, TaskKind::Recover);
    }

    #[test]
    fn a_merge_without_named_tasks_or_changes_says_so() {
        let mut resolving = view("draft");
        resolving.task.conflict = Some(crate::domain::MergeConflict {
            commit: "abc".into(),
            files: vec!["f".into()],
            ..Default::default()
        });
        let page = task(&resolving, NOW);
        assert!(
            page.contains("(the work of this task) did not merge into the goal branch, where work merged before it changed the same files:"),
            "{page}"
        );
        let mut empty = view("draft");
        empty.task.commit = Some("abc".into());
        empty.task.diffstat = Some(String::new());
        let page = task(&empty, NOW);
        assert!(
            page.contains("<code class=\"commit\">abc</code> on the goal branch holds this task's work.</p><p class=\"muted\">It changed no file.</p>"),
            "{page}"
        );
    }

    #[test]
    fn a_task_says_its_rank_and_where_its_estimate_came_from() {
        let unranked = task(&view("layout"), NOW);
        assert!(
            unranked
                .contains("<tr><th>rank</th><td>–</td></tr><tr><th>estimate</th><td>–</td></tr>"),
            "{unranked}"
        );
        let mut ranked = view("layout");
        ranked.task.rank_ms = Some(250_000);
        ranked.task.estimate_ms = Some(50_000);
        for (source, says) in [
            (
                EstimateSource::Plan,
                "(from the plan: its size times the goal's typical task)",
            ),
            (
                EstimateSource::Measured,
                "(measured: the mean of the goal's finished tasks of its role and kind)",
            ),
            (
                EstimateSource::Default,
                "(default: one typical task of the goal)",
            ),
        ] {
            ranked.task.estimate_source = Some(source);
            let page = task(&ranked, NOW);
            for part in [
                "<tr><th>rank</th><td>4m 10s <span class=\"muted\">(the longest estimated path",
                &format!(
                    "<tr><th>estimate</th><td>50s <span class=\"muted\">{says}</span></td></tr>"
                ),
            ] {
                assert!(page.contains(part), "no {part:?} in:\n{page}");
            }
        }
    }
}
