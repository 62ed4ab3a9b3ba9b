//! What the team loops add to a report, in words every output shares: what a
//! task porki added is (a review, fix, recovery or escalation of which task, in
//! which cycle), what a task waits for, and which tasks wait for a person.

use std::collections::{HashMap, HashSet};

use super::GoalReport;
use crate::domain::{Edge, TaskKind, TaskState, TaskStatus};
use crate::store::GoalStatus;

/// Unfinished dependencies named in a note before the rest are counted.
const WAITS_NAMED: usize = 3;

/// What each task of a goal waits for: its dependencies not yet DONE, as the
/// plan's edges say now (a review waiting for a fix, a rejected task for its fix).
#[derive(Debug, Clone, Default)]
pub struct Waits<'a> {
    unfinished: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Waits<'a> {
    /// What each of `tasks` waits for by the plan's `edges`. A dependency
    /// without a stored state counts as unfinished: nothing says it is DONE.
    pub fn new(edges: &'a [Edge], tasks: &'a [TaskState]) -> Self {
        let done: HashSet<&str> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .map(|t| t.id.as_str())
            .collect();
        let mut unfinished: HashMap<&str, Vec<&str>> = HashMap::new();
        for edge in edges.iter().filter(|e| !done.contains(e.source.as_str())) {
            unfinished
                .entry(edge.target.as_str())
                .or_default()
                .push(edge.source.as_str());
        }
        for sources in unfinished.values_mut() {
            sources.sort_unstable();
            sources.dedup();
        }
        Waits { unfinished }
    }

    /// The dependencies of `task` not yet DONE, sorted by id; empty when it waits for none.
    pub fn of(&self, task: &str) -> &[&'a str] {
        self.unfinished.get(task).map_or(&[], Vec::as_slice)
    }
}

impl GoalReport {
    /// What each task waits for (see [`Waits::new`]).
    pub fn waits(&self) -> Waits<'_> {
        Waits::new(&self.edges, &self.tasks)
    }

    /// The tasks AWAITING_APPROVAL, sorted by id.
    pub fn awaiting_approval(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::AwaitingApproval)
            .map(|t| t.id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The goal's progress as (DONE, tasks that count): FAILED tasks whose work a
/// recovery took over are left out, since the goal completes without them (and
/// their recoveries count instead).
pub fn progress(status: &GoalStatus) -> (u64, u64) {
    let counted = status.total.saturating_sub(status.superseded);
    (status.count(TaskStatus::Done).min(counted), counted)
}

/// How a person answers the tasks of `goal` that await approval.
pub fn approval_hint(goal: &str) -> String {
    format!(
        "porki approve|reject --goal {goal} --task T, or APPROVE-TASK T / REJECT-TASK T REASON in a heartbeat file of the goal"
    )
}

/// What a task porki added is, in words: `review of draft, cycle 2`, `fix 1 of
/// draft`, `recovery of draft`, `escalation of draft.review`; `None` for
/// planned work. A review's cycle is how many times it asked for changes, shown
/// once it did.
pub fn task_subject(task: &TaskState) -> Option<String> {
    let of = task.of.as_deref().unwrap_or("?");
    Some(match task.kind {
        TaskKind::Work => return None,
        TaskKind::Review if task.cycle > 0 => format!("review of {of}, cycle {}", task.cycle),
        TaskKind::Review => format!("review of {of}"),
        TaskKind::Fix => format!("fix {} of {of}", task.cycle),
        TaskKind::Recover => format!("recovery of {of}"),
        TaskKind::Escalate => format!("escalation of {of}"),
        TaskKind::Merge => format!("merge of {of}"),
    })
}

/// The short kind line of a graph node: `review`, `review · cycle 2`, `fix 1`,
/// `recovery`, `escalation`; `None` for planned work.
pub fn kind_line(kind: TaskKind, cycle: u32) -> Option<String> {
    Some(match kind {
        TaskKind::Work => return None,
        TaskKind::Review if cycle > 0 => format!("review · cycle {cycle}"),
        TaskKind::Review => "review".to_string(),
        TaskKind::Fix => format!("fix {cycle}"),
        TaskKind::Recover => "recovery".to_string(),
        TaskKind::Escalate => "escalation".to_string(),
        TaskKind::Merge => "merge".to_string(),
    })
}

/// What a task is and what it waits for, the parts joined with `; `: its
/// subject ([`task_subject`]); while BLOCKED, the unfinished tasks it waits for
/// (`waits`, the first three named); `awaits a person's approval`; `needs
/// approval` before it ran; `recovered by x.recover` for a FAILED task taken
/// over; `planned for role X` for a soft task handed to another agent. Empty
/// when there is nothing to say.
pub fn task_note(task: &TaskState, waits: &[&str]) -> String {
    let mut parts: Vec<String> = task_subject(task).into_iter().collect();
    match task.status {
        TaskStatus::Blocked if !waits.is_empty() => {
            let mut named = waits
                .iter()
                .take(WAITS_NAMED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if waits.len() > WAITS_NAMED {
                named += &format!(" +{} more", waits.len() - WAITS_NAMED);
            }
            parts.push(format!("waits for {named}"));
        }
        TaskStatus::AwaitingApproval => parts.push("awaits a person's approval".to_string()),
        _ => {}
    }
    if task.needs_approval
        && matches!(
            task.status,
            TaskStatus::Blocked | TaskStatus::Ready | TaskStatus::Running
        )
    {
        parts.push("needs approval".to_string());
    }
    if task.status == TaskStatus::Failed
        && let Some(recovery) = &task.recovered_by
    {
        parts.push(format!("recovered by {recovery}"));
    }
    if let Some(role) = &task.planned_role {
        parts.push(format!("planned for role {role}"));
    }
    if let Some(commit) = &task.commit {
        parts.push(format!("commit {}", crate::domain::merge::short(commit)));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{NOW, task, team, team_report};

    #[test]
    fn subjects_name_the_kind_the_task_and_the_cycle() {
        let subject = |id: &str| {
            let (_, tasks) = team();
            task_subject(tasks.iter().find(|t| t.id == id).unwrap())
        };
        assert_eq!(subject("draft"), None);
        assert_eq!(
            subject("draft.review").as_deref(),
            Some("review of draft, cycle 1")
        );
        assert_eq!(subject("draft.fix-1").as_deref(), Some("fix 1 of draft"));
        assert_eq!(subject("scan.recover").as_deref(), Some("recovery of scan"));
        assert_eq!(
            subject("copy.escalate").as_deref(),
            Some("escalation of copy.review")
        );
        let mut fresh = task("x.review", "", TaskStatus::Ready, NOW);
        fresh.kind = TaskKind::Review;
        fresh.of = Some("x".into());
        assert_eq!(task_subject(&fresh).as_deref(), Some("review of x"));
        assert_eq!(
            kind_line(TaskKind::Review, 2).as_deref(),
            Some("review · cycle 2")
        );
        assert_eq!(kind_line(TaskKind::Fix, 1).as_deref(), Some("fix 1"));
        assert_eq!(kind_line(TaskKind::Work, 0), None);
    }

    #[test]
    fn waits_are_the_unfinished_dependencies() {
        let report = team_report();
        let waits = report.waits();
        // The review waits for its fix, not for the DONE task it reviews.
        assert_eq!(waits.of("draft.review"), ["draft.fix-1"]);
        assert_eq!(
            waits.of("publish"),
            ["copy.review", "draft.review", "scan.recover"]
        );
        assert!(waits.of("draft").is_empty());
        assert_eq!(report.awaiting_approval(), ["logo", "sign-off"]);
    }

    #[test]
    fn notes_say_what_a_task_is_and_what_it_waits_for() {
        let report = team_report();
        let waits = report.waits();
        let note = |id: &str| {
            let t = report.tasks.iter().find(|t| t.id == id).unwrap();
            task_note(t, waits.of(id))
        };
        assert_eq!(note("draft"), "");
        assert_eq!(
            note("draft.review"),
            "review of draft, cycle 1; waits for draft.fix-1"
        );
        assert_eq!(note("scan"), "recovered by scan.recover");
        assert_eq!(note("sign-off"), "awaits a person's approval");
        assert_eq!(note("scan.recover"), "recovery of scan; needs approval");
        assert_eq!(note("layout"), "planned for role designer");
        let mut many = task("m", "", TaskStatus::Blocked, NOW);
        many.needs_approval = true;
        assert_eq!(
            task_note(&many, &["a", "b", "c", "d", "e"]),
            "waits for a, b, c +2 more; needs approval"
        );
    }

    #[test]
    fn progress_leaves_out_failed_tasks_a_recovery_took_over() {
        let report = team_report();
        // 12 tasks, scan superseded: 2 DONE of the 11 that count.
        assert_eq!(report.status.total, 12);
        assert_eq!(progress(&report.status), (2, 11));
        let mut plain = report.status.clone();
        plain.superseded = 0;
        assert_eq!(progress(&plain), (2, 12));
    }
}
