//! The front page: every goal with its progress, counts and spending, then the agents.

use std::fmt::Write as _;

use super::super::fetch::Overview;
use super::super::html::{countdown, counts, escape, goal_badge, goal_href, link, progress_bar};
use super::{agents_table, callout};
use crate::domain::TaskStatus;
use crate::report::progress;

/// The front page's live part.
pub(in crate::web) fn overview(view: &Overview, now_ms: u64) -> String {
    let mut out = String::from("<h1>Goals</h1>");
    if view.goals.is_empty() {
        out.push_str(
            "<p class=\"muted\">No goals in the store yet: start the orchestrator \
(<code>porki run</code>, or <code>porki demo --http …</code>) so it plans them.</p>",
        );
    } else {
        out.push_str(
            "<table class=\"goals\"><thead><tr><th>goal</th><th>state</th><th>progress</th>\
<th>tasks</th><th>tokens</th><th>cost</th><th>waits</th></tr></thead><tbody>",
        );
        for goal in &view.goals {
            let status = &goal.status;
            let (done, counted) = progress(status);
            let awaiting = status.count(TaskStatus::AwaitingApproval);
            let failed = status
                .count(TaskStatus::Failed)
                .saturating_sub(status.superseded);
            let title = if status.title.is_empty() || status.title == status.goal {
                String::new()
            } else {
                format!("<div class=\"muted\">{}</div>", escape(&status.title))
            };
            let waits = match status.backoff.as_ref() {
                Some(b) if b.remaining_ms(now_ms).is_some() => format!(
                    "<span class=\"warn\">rate limit: {} left</span>",
                    countdown(b.until_ms, now_ms)
                ),
                _ if failed > 0 => "<span class=\"bad\">failed tasks</span>".to_string(),
                _ if awaiting > 0 => {
                    format!("<span class=\"ask\">{awaiting} awaiting approval</span>")
                }
                _ => "–".to_string(),
            };
            let _ = write!(
                out,
                "<tr data-goal=\"{id}\"><td>{link}{title}</td><td>{badge}</td>\
<td>{bar} <span class=\"num\">{done}/{counted}</span></td><td>{counts}</td>\
<td class=\"num\">{tokens}</td><td class=\"num\">${cost:.4}</td><td>{waits}</td></tr>",
                id = escape(&status.goal),
                link = link(&goal_href(&status.goal), &status.goal),
                badge = goal_badge(status.state),
                bar = progress_bar(status),
                counts = counts(status),
                tokens = status.tokens,
                cost = status.cost_usd,
            );
        }
        out.push_str("</tbody></table>");
    }
    let paused = view.agents.iter().filter(|a| a.paused.is_some()).count();
    out.push_str("<h2>Agents</h2>");
    if paused > 0 {
        out.push_str(&callout(
            "warn",
            &format!("{paused} agent(s) paused: they claim nothing until RESUME."),
        ));
    }
    out.push_str(&agents_table(&view.agents));
    out
}
