//! A goal's page: its summary (with its branch under worktree isolation) and
//! waits (approvals, recoveries included), the DAG drawn, the task table (what
//! each task is, waits for and merged as) and its agents.

use std::fmt::Write as _;

use super::super::fetch::GoalView;
use super::super::html::{
    countdown, counts, duration, escape, goal_badge, kind_badge, lease_left, link, progress_bar,
    shorten, state_badge, task_href, time,
};
use super::super::svg::{MAX_DRAWN, dag_svg};
use super::{agents_table, callout};
use crate::domain::{TaskState, TaskStatus};
use crate::report::{CriticalPath, GoalReport, approval_hint, progress, task_note};

/// Characters of a last error shown in the table (the task page has all of it).
const ERROR_SHOWN: usize = 120;
/// Rows of the task table: a page that refreshes on every change stays small
/// for plans of thousands of tasks (the most recently changed come first).
const ROWS_SHOWN: usize = 500;

/// A goal page's live part.
pub(in crate::web) fn goal(view: &GoalView, now_ms: u64) -> String {
    let status = &view.report.status;
    let mut out = format!(
        "<p class=\"crumbs\"><a href=\"/\">goals</a> / {goal}</p><h1>{goal} {badge}</h1>",
        goal = escape(&status.goal),
        badge = goal_badge(status.state),
    );
    if !status.title.is_empty() && status.title != status.goal {
        let _ = write!(out, "<p class=\"subtitle\">{}</p>", escape(&status.title));
    }
    let (done, counted) = progress(status);
    let recovered = match status.superseded {
        0 => String::new(),
        n => format!(
            " <span class=\"muted\">(not counting {n} FAILED task(s) a recovery took over)</span>"
        ),
    };
    let _ = write!(
        out,
        "<p class=\"summary\">{bar} <span class=\"num\">{done}/{counted} done</span>{recovered} {counts}</p>\
<p class=\"summary muted\">{tokens} tokens · ${cost:.4} · planned {created}{finished}</p>",
        bar = progress_bar(status),
        counts = counts(status),
        tokens = status.tokens,
        cost = status.cost_usd,
        created = time(status.created_ms),
        finished = status
            .finished_ms
            .map(|f| format!(" · finished {}", time(f)))
            .unwrap_or_default(),
    );
    if let Some(branch) = &status.branch {
        // Worktree isolation: where the DONE tasks' work is, and how to see it.
        let _ = write!(
            out,
            "<p class=\"branch\">branch <code>{name}</code> in <code>{repository}</code>: \
every DONE task's work, merged (<code>git log --graph {name}</code>)</p>",
            name = escape(&branch.branch),
            repository = escape(&branch.repository),
        );
    }
    out.push_str(&waits(&view.report, view, now_ms));
    out.push_str("<h2>Plan</h2>");
    let critical = CriticalPath::of(&view.dag, &view.report.tasks);
    if !critical.ids.is_empty() {
        let steps: Vec<String> = critical
            .ids
            .iter()
            .map(|id| link(&task_href(&status.goal, id), id))
            .collect();
        let _ = write!(
            out,
            "<p class=\"critical-path\">Critical path (the chain of tasks that holds the goal up longest): {}</p>",
            steps.join(" → ")
        );
    }
    match dag_svg(&view.dag, &view.report.tasks) {
        Some(svg) => {
            let _ = write!(out, "<div class=\"dag-box\">{svg}</div>");
            out.push_str(LEGEND);
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"muted\">The plan has {} tasks; it is drawn up to {MAX_DRAWN}. The table lists them all.</p>",
                view.dag.nodes.len()
            );
        }
    }
    out.push_str("<h2>Tasks</h2>");
    out.push_str(&task_table(&view.report, &critical, now_ms));
    out.push_str("<h2>Agents</h2>");
    out.push_str(&agents_table(&view.agents));
    out
}

const LEGEND: &str = "<p class=\"legend\"><span class=\"state s-blocked\">BLOCKED</span> \
<span class=\"state s-ready\">READY</span> <span class=\"state s-running\">RUNNING</span> \
<span class=\"state s-awaiting_approval\">AWAITING_APPROVAL</span> <span class=\"state s-done\">DONE</span> <span class=\"state s-failed\">FAILED</span> · \
dashed borders: <span class=\"kind k-review\">review</span> <span class=\"kind k-fix\">fix</span> \
<span class=\"kind k-recover\">recover</span> <span class=\"kind k-escalate\">escalate</span> tasks porki added · \
dotted arrows: a FAILED task to the recovery that took its work over · \
thick borders and bold <span class=\"crit\">pink</span> arrows: the critical path</p>";

/// Call-outs for whatever holds the goal up: a goal-wide backoff, tasks waiting
/// for a person's approval, tasks waiting for a retry, expired leases, FAILED
/// tasks (and those a recovery took over), paused agents.
fn waits(report: &GoalReport, view: &GoalView, now_ms: u64) -> String {
    let status = &report.status;
    let mut out = String::new();
    if let Some(backoff) = &status.backoff
        && backoff.remaining_ms(now_ms).is_some()
    {
        out.push_str(&callout(
            "warn",
            &format!(
                "Waiting for a rate or usage limit: nothing of this goal is claimed for {} (until {}). {}",
                countdown(backoff.until_ms, now_ms),
                time(backoff.until_ms),
                escape(&backoff.reason)
            ),
        ));
    }
    if let Some(error) = &status.last_error {
        out.push_str(&callout(
            "bad",
            &format!("The goal failed: {}", escape(error)),
        ));
    }
    let awaiting: Vec<String> = report
        .awaiting_approval()
        .into_iter()
        .map(|id| link(&task_href(&status.goal, id), id))
        .collect();
    if !awaiting.is_empty() {
        out.push_str(&callout(
            "ask",
            &format!(
                "Awaiting a person's approval: {}. Answer with {}.",
                awaiting.join(", "),
                escape(&approval_hint(&status.goal))
            ),
        ));
    }
    let retrying: Vec<_> = report
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Ready && t.retry_at_ms.is_some_and(|at| at > now_ms))
        .collect();
    if !retrying.is_empty() {
        let list: Vec<String> = retrying
            .iter()
            .map(|t| {
                format!(
                    "{} in {}",
                    link(&task_href(&status.goal, &t.id), &t.id),
                    countdown(t.retry_at_ms.unwrap_or(now_ms), now_ms)
                )
            })
            .collect();
        out.push_str(&callout(
            "warn",
            &format!("Backing off before a retry: {}.", list.join(", ")),
        ));
    }
    let expired: Vec<String> = report
        .tasks
        .iter()
        .filter(|t| {
            t.status == TaskStatus::Running && t.lease_expires_ms.is_some_and(|e| e <= now_ms)
        })
        .map(|t| link(&task_href(&status.goal, &t.id), &t.id))
        .collect();
    if !expired.is_empty() {
        out.push_str(&callout(
            "warn",
            &format!(
                "Lease expired (the reaper puts these back to READY): {}.",
                expired.join(", ")
            ),
        ));
    }
    let recovered: Vec<String> = report
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .filter_map(|t| {
            let recovery = t.recovered_by.as_deref()?;
            Some(format!(
                "{} by {}",
                link(&task_href(&status.goal, &t.id), &t.id),
                link(&task_href(&status.goal, recovery), recovery)
            ))
        })
        .collect();
    if !recovered.is_empty() {
        out.push_str(&callout(
            "info",
            &format!(
                "FAILED, and taken over by a recovery (what waited for them waits for it): {}.",
                recovered.join(", ")
            ),
        ));
    }
    let failed = status
        .count(TaskStatus::Failed)
        .saturating_sub(status.superseded);
    if failed > 0 {
        out.push_str(&callout(
            "bad",
            &format!(
                "{failed} task(s) FAILED: their dependents stay BLOCKED until an operator writes RETRY-TASK &lt;id&gt; into a heartbeat file."
            ),
        ));
    }
    let paused: Vec<String> = view
        .agents
        .iter()
        .filter(|a| a.paused.is_some())
        .map(|a| escape(&a.record.name))
        .collect();
    if !paused.is_empty() {
        out.push_str(&callout(
            "warn",
            &format!(
                "Paused (no new claims until RESUME): {}.",
                paused.join(", ")
            ),
        ));
    }
    out
}

/// Every task: state, rank (those on the critical path marked), what it is
/// and waits for, owner, attempt, lease left, last error, outputs.
fn task_table(report: &GoalReport, critical: &CriticalPath, now_ms: u64) -> String {
    let waits = report.waits();
    let mut tasks: Vec<_> = report.tasks.iter().collect();
    tasks.sort_by(|a, b| {
        b.updated_ms
            .cmp(&a.updated_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out = String::new();
    if tasks.len() > ROWS_SHOWN {
        let _ = write!(
            out,
            "<p class=\"muted\">The {ROWS_SHOWN} most recently changed of {} tasks; <a href=\"/api/status\">the status JSON</a> has them all.</p>",
            tasks.len()
        );
    }
    out.push_str(
        "<table class=\"tasks\"><thead><tr><th>task</th><th>title</th><th>state</th><th>rank</th><th>note</th><th>owner</th>\
<th>attempt</th><th>lease left</th><th>time</th><th>last error</th><th>outputs</th></tr></thead><tbody>",
    );
    for t in tasks.into_iter().take(ROWS_SHOWN) {
        let time_taken = match (t.started_ms, t.finished_ms, t.status) {
            (Some(s), Some(f), _) => duration(f.saturating_sub(s)),
            (Some(s), None, TaskStatus::Running) => duration(now_ms.saturating_sub(s)),
            _ => "–".into(),
        };
        let error = t
            .last_error
            .as_deref()
            .map(|e| escape(&shorten(e, ERROR_SHOWN)))
            .unwrap_or_else(|| "<span class=\"muted\">–</span>".into());
        let outputs = if t.artifacts.is_empty() {
            "–".to_string()
        } else {
            t.artifacts
                .iter()
                .map(|a| format!("<code>{}</code>", escape(a)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = write!(
            out,
            "<tr data-task=\"{id}\" data-state=\"{state}\"{on_path}><td>{link}{kind}</td><td>{title}</td><td>{badge}</td><td class=\"num\">{rank}</td><td class=\"note\">{note}</td>\
<td>{owner}</td><td class=\"num\">{attempt}</td><td class=\"num\">{lease}</td><td class=\"num\">{time_taken}</td>\
<td class=\"error\">{error}</td><td>{outputs}</td></tr>",
            id = escape(&t.id),
            state = t.status.as_str(),
            on_path = if critical.has(&t.id) {
                " class=\"critical\""
            } else {
                ""
            },
            rank = rank_cell(t, critical.has(&t.id)),
            link = link(&task_href(&t.goal, &t.id), &t.id),
            kind = kind_badge(t.kind),
            note = escape(&task_note(t, waits.of(&t.id))),
            title = escape(&t.title),
            badge = state_badge(t.status),
            owner = escape(t.owner.as_deref().unwrap_or("–")),
            attempt = t.attempt,
            lease = lease_left(t, now_ms),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A task's rank (its estimate, and where that came from, as a tooltip), and a
/// `critical` badge when it is on the critical path.
fn rank_cell(task: &TaskState, on_path: bool) -> String {
    let mut out = match (task.rank_ms, task.estimate_ms) {
        (Some(rank), Some(estimate)) => format!(
            "<span title=\"estimate {}{}\">{}</span>",
            duration(estimate),
            task.estimate_source
                .map(|s| format!(" ({})", s.as_str()))
                .unwrap_or_default(),
            duration(rank)
        ),
        (Some(rank), None) => duration(rank),
        (None, _) => "–".to_string(),
    };
    if on_path {
        out.push_str(" <span class=\"crit\">critical</span>");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{Dag, Node, TaskState};
    use crate::report::fixtures;
    use crate::store::{GoalState, GoalStatus};
    use crate::web::fetch::GoalView;

    fn view(tasks: usize) -> GoalView {
        let ids: Vec<String> = (0..tasks).map(|i| format!("t{i:04}")).collect();
        let nodes = ids.iter().map(|id| Node::new(id.clone(), "")).collect();
        let tasks: Vec<TaskState> = ids
            .iter()
            .map(|id| TaskState::new("g", id, "", TaskStatus::Ready, 1))
            .collect();
        GoalView {
            report: GoalReport {
                status: GoalStatus {
                    goal: "g".into(),
                    state: GoalState::Active,
                    title: String::new(),
                    fingerprint: String::new(),
                    source: String::new(),
                    max_attempts: 3,
                    counts: BTreeMap::from([(TaskStatus::Ready, tasks.len() as u64)]),
                    total: tasks.len() as u64,
                    superseded: 0,
                    created_ms: 1,
                    finished_ms: None,
                    last_error: None,
                    tokens: 0,
                    cost_usd: 0.0,
                    backoff: None,
                    ready_by_role: BTreeMap::new(),
                    branch: None,
                    ranked: true,
                },
                tasks,
                edges: Vec::new(),
            },
            dag: Dag::new("g", nodes, &[]),
            agents: Vec::new(),
        }
    }

    /// The team fixture of the report tests as a goal page.
    fn team_view() -> GoalView {
        let (dag, _) = fixtures::team();
        GoalView {
            report: fixtures::team_report(),
            dag,
            agents: Vec::new(),
        }
    }

    #[test]
    fn a_team_goal_says_who_awaits_approval_and_what_each_task_is() {
        let page = goal(&team_view(), fixtures::NOW);
        for part in [
            "Awaiting a person's approval: <a href=\"/goals/g/tasks/logo\">logo</a>, \
<a href=\"/goals/g/tasks/sign-off\">sign-off</a>. Answer with porki approve|reject --goal g --task T, \
or APPROVE-TASK T / REJECT-TASK T REASON in a heartbeat file of the goal.",
            "FAILED, and taken over by a recovery (what waited for them waits for it): \
<a href=\"/goals/g/tasks/scan\">scan</a> by <a href=\"/goals/g/tasks/scan.recover\">scan.recover</a>.",
            // Progress leaves the superseded task out.
            "<span class=\"num\">2/11 done</span> <span class=\"muted\">(not counting 1 FAILED task(s)",
            "aria-label=\"2 of 11 tasks done\"",
            // Nothing is ranked: the critical path goes by the plan, fix, review, publish.
            "<tr data-task=\"draft.review\" data-state=\"BLOCKED\" class=\"critical\"><td><a href=\"/goals/g/tasks/draft.review\">draft.review</a> \
<span class=\"kind k-review\">review</span></td>",
            "<td class=\"note\">review of draft, cycle 1; waits for draft.fix-1</td>",
            "<span class=\"kind k-escalate\">escalate</span></td>",
            "<td class=\"note\">recovered by scan.recover</td>",
            "<td class=\"note\">awaits a person&#39;s approval</td>",
            "<td class=\"note\">planned for role designer</td>",
            ">review · cycle 2</text>",
            "class=\"edge recovery\"",
        ] {
            assert!(page.contains(part), "no {part:?} in:\n{page}");
        }
        // The only FAILED task was taken over: nothing calls for RETRY-TASK.
        assert!(!page.contains("RETRY-TASK"), "{page}");
        // A planned task is not badged, whatever its id.
        assert!(
            page.contains("<td><a href=\"/goals/g/tasks/draft\">draft</a></td>"),
            "{page}"
        );
    }

    #[test]
    fn a_huge_plan_keeps_the_page_small() {
        let small = goal(&view(3), 1);
        assert_eq!(small.matches("<tr data-task=").count(), 3);
        assert!(small.contains("<svg"));
        let huge = goal(&view(ROWS_SHOWN + 1), 1);
        assert_eq!(huge.matches("<tr data-task=").count(), ROWS_SHOWN);
        assert!(huge.contains("The 500 most recently changed of 501 tasks"));
        assert!(!huge.contains("<svg xmlns"), "not drawn past MAX_DRAWN");
    }

    #[test]
    fn the_critical_path_is_named_drawn_and_marked_in_the_task_table() {
        let mut view = team_view();
        for task in &mut view.report.tasks {
            task.rank_ms = Some(match task.id.as_str() {
                "copy.escalate" => 250_000,
                "copy.review" => 130_000,
                "publish" => 60_000,
                _ => 1_000,
            });
            task.estimate_ms = Some(60_000);
            task.estimate_source = Some(crate::domain::rank::EstimateSource::Measured);
        }
        let page = goal(&view, fixtures::NOW);
        for part in [
            "<p class=\"critical-path\">Critical path (the chain of tasks that holds the goal up longest): \
<a href=\"/goals/g/tasks/copy.escalate\">copy.escalate</a> → <a href=\"/goals/g/tasks/copy.review\">copy.review</a> → \
<a href=\"/goals/g/tasks/publish\">publish</a></p>",
            "class=\"node s-ready k-escalate critical\"",
            "<tr data-task=\"copy.escalate\" data-state=\"READY\" class=\"critical\">",
            "<td class=\"num\"><span title=\"estimate 1m 00s (measured)\">4m 10s</span> <span class=\"crit\">critical</span></td>",
            "<tr data-task=\"draft.fix-1\" data-state=\"RUNNING\"><td>",
            "<td class=\"num\"><span title=\"estimate 1m 00s (measured)\">1s</span></td>",
            "bold <span class=\"crit\">pink</span> arrows: the critical path",
        ] {
            assert!(page.contains(part), "no {part:?} in:\n{page}");
        }
        assert_eq!(page.matches(" class=\"critical\">").count(), 3, "{page}");
        assert_eq!(page.matches("class=\"edge critical\"").count(), 2, "{page}");
    }
}
