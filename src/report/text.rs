//! The text of `porki status`: progress, counts and a task table per goal, then
//! the agents, fitted to the terminal width.

use std::fmt::Write as _;

use super::table::{INDENT, fit, natural_widths, or_dash, share, table, table_width, wrap};
use super::{AgentReport, GoalReport, clean, percent};
use crate::domain::{TaskState, TaskStatus};
use crate::store::GoalSpending;

/// Narrowest layout the text renderer packs columns into.
const MIN_WIDTH: usize = 60;
/// Width of the progress bar, in cells.
const BAR_WIDTH: usize = 30;

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
    status_text_with(goals, &[], agents, now_ms, width)
}

/// [`status_text`] with what each goal's calls under a money budget told of
/// their cost (`spending[i]` is `goals[i]`'s; missing: nothing told).
pub fn status_text_with(
    goals: &[GoalReport],
    spending: &[GoalSpending],
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
        let unknown = spending.get(i).map_or(0, |s| s.cost_unknown);
        goal_text(&mut out, goal, unknown, agents, now_ms, width);
    }
    if !agents.is_empty() {
        out.push('\n');
        agents_text(&mut out, agents, width);
    }
    out
}

fn goal_text(
    out: &mut String,
    goal: &GoalReport,
    cost_unknown: u64,
    agents: &[AgentReport],
    now_ms: u64,
    width: usize,
) {
    let status = &goal.status;
    let mut header = format!("goal {}  {}", status.goal, status.state.as_str());
    if !status.title.is_empty() && status.title != status.goal {
        header.push_str("  ");
        header.push_str(&clean(&status.title));
    }
    let _ = writeln!(out, "{}", fit(&header, width));
    let (done, counted) = super::progress(status);
    let mut line = format!(
        "{INDENT}{} {done}/{counted} done ({}%)",
        progress_bar(done, counted, BAR_WIDTH),
        percent(done, counted)
    );
    // A FAILED task whose work a recovery took over is neither to do nor done:
    // said, so that the FAILED count does not read as the goal's failure.
    match status.superseded {
        0 => {}
        1 => line.push_str(", not counting 1 FAILED task a recovery took over"),
        n => {
            let _ = write!(line, ", not counting {n} FAILED tasks recoveries took over");
        }
    }
    let _ = writeln!(out, "{}", fit(&line, width));
    let counts: Vec<String> = TaskStatus::ALL
        .iter()
        .map(|s| {
            let name = s.as_str().to_lowercase().replace('_', " ");
            format!("{name} {}", status.count(*s))
        })
        .collect();
    let _ = writeln!(out, "{INDENT}{}", counts.join("  "));
    if let Some(branch) = &status.branch {
        let line = format!(
            "{INDENT}branch {} in {}",
            clean(&branch.branch),
            clean(&branch.repository)
        );
        let _ = writeln!(out, "{}", fit(&line, width));
    }
    if status.tokens > 0 || status.cost_usd > 0.0 || cost_unknown > 0 {
        // Calls whose cost no provider reported are said, never a silent $0.
        let unknown = match cost_unknown {
            0 => String::new(),
            n => format!(" + {n} call(s) of unknown cost"),
        };
        let _ = writeln!(
            out,
            "{INDENT}llm: {} tokens, ${:.4}{unknown}",
            status.tokens, status.cost_usd
        );
    }
    let awaiting = goal.awaiting_approval();
    if !awaiting.is_empty() {
        // Wrapped, not cut: the commands at its end are what the line is for.
        let line = format!(
            "awaiting approval: {} ({})",
            awaiting.join(", "),
            super::approval_hint(&status.goal)
        );
        for part in wrap(&line, width) {
            let _ = writeln!(out, "{part}");
        }
    }
    if let Some(backoff) = &status.backoff
        && let Some(left) = backoff.remaining_ms(now_ms)
    {
        let line = format!(
            "{INDENT}waiting {:.0}s (until {} UTC) for a rate or usage limit: {}",
            (left as f64 / 1000.0).ceil(),
            crate::llm::limits::utc_text(backoff.until_ms / 1000),
            clean(&backoff.reason)
        );
        let _ = writeln!(out, "{}", fit(&line, width));
    }
    let unserved = super::unserved(status, agents);
    if !unserved.is_empty() && !status.state.is_terminal() {
        let line = format!(
            "{INDENT}no live agent can take: {} (declare or start an agent of that role)",
            super::unserved_text(&unserved)
        );
        let _ = writeln!(out, "{}", fit(&line, width));
    }
    if let Some(error) = &status.last_error {
        let _ = writeln!(
            out,
            "{}",
            fit(&format!("{INDENT}error: {}", clean(error)), width)
        );
    }
    if goal.tasks.is_empty() {
        let _ = writeln!(out, "{INDENT}(no tasks)");
        return;
    }
    task_table(out, goal, now_ms, width);
}

/// The goal's tasks, most recent activity first: their rank and estimate (see
/// [`crate::domain::rank`]), what each is and waits for in NOTE
/// ([`super::task_note`]).
fn task_table(out: &mut String, goal: &GoalReport, now_ms: u64, width: usize) {
    let waits = goal.waits();
    let rows: Vec<[String; 10]> = goal
        .tasks_newest_first()
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                clean(&t.title),
                t.status.as_str().to_string(),
                rank_cell(t),
                estimate_cell(t),
                or_dash(Some(&super::task_note(t, waits.of(&t.id)))),
                or_dash(t.owner.as_deref()),
                t.attempt.to_string(),
                lease_left(t, now_ms),
                or_dash(t.last_error.as_deref()),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TITLE",
        "STATE",
        "RANK",
        "ESTIMATE",
        "NOTE",
        "OWNER",
        "ATTEMPT",
        "LEASE",
        "LAST ERROR",
    ];
    // A goal none of whose tasks is ranked (planned before porki ranked them)
    // keeps its room for the rest.
    if goal
        .tasks
        .iter()
        .any(|t| t.rank_ms.is_some() || t.estimate_ms.is_some())
    {
        fitted_table(out, &header, &rows, width);
    } else {
        const KEPT: [usize; 8] = [0, 1, 2, 5, 6, 7, 8, 9];
        let rows: Vec<[String; 8]> = rows
            .into_iter()
            .map(|row| KEPT.map(|i| row[i].clone()))
            .collect();
        fitted_table(out, &KEPT.map(|i| header[i]), &rows, width);
    }
}

/// The task table fitted to `width`: fixed columns as wide as their content
/// (ID and OWNER capped); TITLE, NOTE and LAST ERROR share what is left, the
/// note twice as much as the others (it says what a task waits for). On a
/// narrow terminal the last error's header may be cut (`LAST…`) rather than
/// the lines wrap.
fn fitted_table<const N: usize>(
    out: &mut String,
    header: &[&str; N],
    rows: &[[String; N]],
    width: usize,
) {
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or(0);
    let natural = natural_widths(header, rows);
    let mut widths = natural;
    widths[column("ID")] = natural[column("ID")].min(32);
    widths[column("OWNER")] = natural[column("OWNER")].min(20);
    let shared = ["TITLE", "NOTE", "LAST ERROR"].map(column);
    for i in shared {
        widths[i] = 0;
    }
    let rest = width.saturating_sub(table_width(&widths));
    let fitted = share(
        rest,
        shared.map(|i| natural[i]),
        [
            header[shared[0]].len(),
            header[shared[1]].len(),
            "LAST…".chars().count(),
        ],
        [1, 2, 1],
    );
    for (i, w) in shared.into_iter().zip(fitted) {
        widths[i] = w;
    }
    table(out, header, rows, &widths);
}

fn agents_text(out: &mut String, agents: &[AgentReport], width: usize) {
    out.push_str("agents\n");
    let rows: Vec<[String; 6]> = agents
        .iter()
        .map(|a| {
            [
                a.record.name.clone(),
                a.record.goal.clone(),
                or_dash(a.record.role.as_deref()),
                a.record.kind.to_string(),
                clean(&a.record.state.to_string()),
                or_dash(a.last_error.as_deref()),
            ]
        })
        .collect();
    let header = ["NAME", "GOAL", "ROLE", "KIND", "STATE", "LAST ERROR"];
    let natural = natural_widths(&header, &rows);
    let mut widths = [
        natural[0].min(32),
        natural[1].min(32),
        natural[2].min(20),
        natural[3],
        natural[4].min(30),
        0,
    ];
    widths[5] = width
        .saturating_sub(table_width(&widths))
        .max(header[5].len());
    table(out, &header, &rows, &widths);
}

/// `[######----]`: DONE out of total, `width` cells.
pub fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
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
        // Round up: a lease with 300 ms left is not shown as gone.
        Some(expires) => short_duration((expires - now_ms).div_ceil(1000) * 1000),
    }
}

/// A duration in ms, compactly: `850ms`, `12s`, `4m10s`, `1h02m`.
fn short_duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs == 0 {
        format!("{ms}ms")
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

/// A task's rank (`4m10s`), `-` while it has none.
fn rank_cell(task: &TaskState) -> String {
    task.rank_ms.map_or_else(|| "-".into(), short_duration)
}

/// A task's estimate and where it came from (`50s plan`), `-` while it has none.
fn estimate_cell(task: &TaskState) -> String {
    match (task.estimate_ms, task.estimate_source) {
        (Some(ms), Some(source)) => format!("{} {}", short_duration(ms), source.as_str()),
        (Some(ms), None) => short_duration(ms),
        (None, _) => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AgentKind;
    use crate::report::fixtures::{NOW, agent, goal_report, task, team_report};
    use crate::store::{AgentRecord, AgentState};

    #[test]
    fn status_text_shows_bar_counts_and_tasks_newest_first() {
        let agents = [AgentReport {
            record: AgentRecord {
                name: "w1".into(),
                goal: "g".into(),
                role: Some("research".into()),
                kind: AgentKind::Builder,
                process: "host:1".into(),
                state: AgentState::Running,
            },
            last_error: None,
            alive: true,
        }];
        let text = status_text(&[goal_report()], &agents, NOW, 80);
        let expected = "\
goal g  active  Diamond
  [#######-----------------------] 1/4 done (25%)
  blocked 1  ready 0  running 1  awaiting approval 0  done 1  failed 1
  ID  TITLE  STATE    NOTE            OWNER  ATTEMPT  LEASE  LAST ERROR
  c   Right  FAILED   -               w2     3        -      boom
  b   Left   RUNNING  -               w1     1        12s    -
  a   Start  DONE     -               w1     1        -      -
  d   Join   BLOCKED  waits for b, c  -      0        -      -

agents
  NAME  GOAL  ROLE      KIND     STATE    LAST ERROR
  w1    g     research  builder  running  -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn status_text_shows_the_goal_branch_and_each_tasks_short_commit() {
        let mut report = goal_report();
        report.status.branch = Some(crate::store::GoalBranch {
            branch: "porki/g".into(),
            repository: "/home/u/proj".into(),
        });
        report.tasks[0].commit = Some("0123456789abcdef0123456789abcdef01234567".into());
        let text = status_text(&[report], &[], NOW, 100);
        assert!(
            text.contains("\n  branch porki/g in /home/u/proj\n"),
            "{text}"
        );
        assert!(text.contains("commit 0123456"), "{text}");
        assert!(!text.contains("0123456789"), "the short form only: {text}");
        let plain = status_text(&[goal_report()], &[], NOW, 100);
        assert!(!plain.contains("branch") && !plain.contains("commit"));
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
    fn status_text_shows_each_tasks_rank_and_estimate_compactly() {
        let mut report = goal_report();
        let source = |name| crate::domain::rank::EstimateSource::parse(name);
        // c, b, a, d: newest first.
        (report.tasks[3].rank_ms, report.tasks[3].estimate_ms) = (Some(250_000), Some(50_000));
        report.tasks[3].estimate_source = source("plan");
        (report.tasks[1].rank_ms, report.tasks[1].estimate_ms) = (Some(3_723_000), Some(850));
        report.tasks[1].estimate_source = source("measured");
        report.tasks[0].rank_ms = Some(61_000);
        let text = status_text(&[report], &[], NOW, 100);
        let table: String = text
            .lines()
            .skip_while(|l| !l.starts_with("  ID"))
            .map(|l| format!("{l}\n"))
            .collect();
        // The first line written out: a `\` continuation would eat its indent.
        let expected = "  ID  TITLE  STATE    RANK   ESTIMATE        NOTE            OWNER  ATTEMPT  LEASE  LAST ERROR
  c   Right  FAILED   -      -               -               w2     3        -      boom
  b   Left   RUNNING  1h02m  850ms measured  -               w1     1        12s    -
  a   Start  DONE     1m01s  -               -               w1     1        -      -
  d   Join   BLOCKED  4m10s  50s plan        waits for b, c  -      0        -      -
";
        assert_eq!(table, expected, "\n{text}");
        // Without any rank or estimate the columns are left out (see the test above).
        assert!(!status_text(&[goal_report()], &[], NOW, 100).contains("RANK"));
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
    fn status_text_shows_llm_spending_and_a_goal_waiting_for_a_limit() {
        let mut report = goal_report();
        let quiet = status_text(std::slice::from_ref(&report), &[], NOW, 120);
        // "  waiting": the backoff line, not "awaiting approval" in the counts.
        assert!(
            !quiet.contains("llm:") && !quiet.contains("  waiting"),
            "{quiet}"
        );
        report.status.tokens = 4821;
        report.status.cost_usd = 0.0412;
        report.status.backoff = Some(crate::store::GoalBackoff {
            until_ms: NOW + 41_500,
            reason: "claude hit a rate or usage limit (429)".into(),
        });
        let text = status_text(std::slice::from_ref(&report), &[], NOW, 120);
        assert!(text.contains("llm: 4821 tokens, $0.0412"), "{text}");
        assert!(text.contains("waiting 42s"), "{text}");
        assert!(text.contains("rate or usage limit (429)"), "{text}");
        // Once the wait is over, it is no longer shown.
        let later = status_text(&[report], &[], NOW + 42_000, 120);
        assert!(!later.contains("  waiting"), "{later}");
    }

    #[test]
    fn status_text_says_how_many_calls_cost_an_unknown_amount() {
        let report = goal_report();
        let spending = crate::store::GoalSpending {
            cost_unknown: 2,
            ..Default::default()
        };
        let text = status_text_with(std::slice::from_ref(&report), &[spending], &[], NOW, 120);
        assert!(
            text.contains("llm: 0 tokens, $0.0000 + 2 call(s) of unknown cost"),
            "{text}"
        );
    }

    #[test]
    fn ready_tasks_no_live_agent_can_take_are_called_out() {
        let mut report = goal_report();
        report.status.ready_by_role = [("qa".to_string(), 3), (String::new(), 1)].into();
        let agent = |role: Option<&str>, alive| AgentReport {
            record: AgentRecord {
                name: "a".into(),
                goal: "g".into(),
                role: role.map(str::to_string),
                kind: AgentKind::Builder,
                process: "host:1".into(),
                state: AgentState::Running,
            },
            last_error: None,
            alive,
        };
        let none = status_text(std::slice::from_ref(&report), &[], NOW, 200);
        assert!(
            none.contains("no live agent can take: 1 READY task for any agent of the goal, 3 READY tasks of role qa"),
            "{none}"
        );
        let dev = status_text(
            std::slice::from_ref(&report),
            &[agent(Some("dev"), true)],
            NOW,
            200,
        );
        assert!(
            dev.contains("no live agent can take: 3 READY tasks of role qa ("),
            "{dev}"
        );
        let dead_qa = [agent(Some("qa"), false), agent(None, true)];
        assert!(
            status_text(std::slice::from_ref(&report), &dead_qa, NOW, 200)
                .contains("3 READY tasks of role qa")
        );
        let served = [agent(Some("qa"), true)];
        assert!(!status_text(&[report], &served, NOW, 200).contains("no live agent"));
    }

    #[test]
    fn status_text_shows_what_team_tasks_are_and_who_awaits_approval() {
        let agents = [
            ("w1", None, AgentKind::Builder),
            ("rev", Some("qa"), AgentKind::Reviewer),
            ("boss", Some("lead"), AgentKind::Manager),
        ]
        .map(|(name, role, kind)| agent(name, role, kind, true));
        let text = status_text(&[team_report()], &agents, NOW, 160);
        let expected = "\
goal g  active  Team
  [#####-------------------------] 2/11 done (18%), not counting 1 FAILED task a recovery took over
  blocked 3  ready 3  running 1  awaiting approval 2  done 2  failed 1
  awaiting approval: logo, sign-off (porki approve|reject --goal g --task T, or APPROVE-TASK T / REJECT-TASK T REASON in a heartbeat file of the goal)
  ID             TITLE                       STATE              NOTE                                               OWNER  ATTEMPT  LEASE  LAST ERROR
  draft.fix-1    Fix 1 of: Draft             RUNNING            fix 1 of draft                                     w1     1        30s    -
  draft.review   Review: Draft               BLOCKED            review of draft, cycle 1; waits for draft.fix-1    -      0        -      -
  copy.escalate  Settle the review of: Copy  READY              escalation of copy.review                          -      0        -      -
  copy.review    Review: Copy                BLOCKED            review of copy, cycle 2; waits for copy.escalate   -      0        -      -
  sign-off       Sign off                    AWAITING_APPROVAL  awaits a person's approval                         w2     1        -      -
  logo           Draw the logo               AWAITING_APPROVAL  awaits a person's approval                         w2     1        -      -
  scan           Scan the archive            FAILED             recovered by scan.recover                          w2     3        -      timeout
  scan.recover   Recover: Scan the archive   READY              recovery of scan; needs approval                   -      0        -      -
  layout         Lay out                     READY              planned for role designer                          -      0        -      -
  publish        Publish                     BLOCKED            waits for copy.review, draft.review, scan.recover  -      0        -      -
  draft          Draft                       DONE               -                                                  w1     1        -      -
  copy           Copy                        DONE               -                                                  w1     1        -      -

agents
  NAME  GOAL  ROLE  KIND      STATE    LAST ERROR
  w1    g     -     builder   running  -
  rev   g     qa    reviewer  running  -
  boss  g     lead  manager   running  -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn the_approval_line_wraps_instead_of_cutting_the_commands_off() {
        let text = status_text(&[team_report()], &[], NOW, 80);
        // The lines above the table (whose columns keep their headers).
        for line in text.lines().take_while(|l| !l.starts_with("  ID ")) {
            assert!(line.chars().count() <= 80, "{line:?} is wider than 80");
        }
        let joined = text.replace("\n    ", " ");
        assert!(
            joined.contains("  awaiting approval: logo, sign-off (porki approve|reject --goal g --task T, or APPROVE-TASK T / REJECT-TASK T REASON in a heartbeat file of the goal)\n"),
            "{text}"
        );
        let mut none = team_report();
        for t in &mut none.tasks {
            if t.status == TaskStatus::AwaitingApproval {
                t.status = TaskStatus::Done;
            }
        }
        assert!(!status_text(&[none], &[], NOW, 200).contains("awaiting approval:"));
    }

    #[test]
    fn status_text_without_goals_says_how_to_get_one() {
        assert!(status_text(&[], &[], NOW, 80).contains("porki run"));
    }
}
