//! A task's lifecycle state as the store keeps it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rank::EstimateSource;
use super::{MergeConflict, TaskKind};

/// Where a task is in `BLOCKED → READY → RUNNING → [AWAITING_APPROVAL →] DONE | FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    /// Waiting for a dependency to finish.
    Blocked,
    /// May be claimed (possibly after a retry backoff).
    Ready,
    /// Held by an agent under a lease.
    Running,
    /// Ran, and waits for a person to approve or reject it; holds no lease.
    #[serde(rename = "AWAITING_APPROVAL")]
    AwaitingApproval,
    /// Finished successfully.
    Done,
    /// Finished unsuccessfully and will not run again unless retried.
    Failed,
}

impl TaskStatus {
    /// All states, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Blocked,
        TaskStatus::Ready,
        TaskStatus::Running,
        TaskStatus::AwaitingApproval,
        TaskStatus::Done,
        TaskStatus::Failed,
    ];

    /// The name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Blocked => "BLOCKED",
            TaskStatus::Ready => "READY",
            TaskStatus::Running => "RUNNING",
            TaskStatus::AwaitingApproval => "AWAITING_APPROVAL",
            TaskStatus::Done => "DONE",
            TaskStatus::Failed => "FAILED",
        }
    }

    /// DONE or FAILED.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so a table's `{:<8}` lines columns up.
        f.pad(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown task status {s:?}"))
    }
}

/// Everything the store keeps about one task (the `task:{G}:T` hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// Goal id.
    pub goal: String,
    /// Task id.
    pub id: String,
    /// Title from the plan.
    pub title: String,
    /// Role restriction from the plan, if any.
    pub role: Option<String>,
    /// Current priority (plan priority, or as elevated).
    pub priority: i32,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Agent holding or last holding the task.
    pub owner: Option<String>,
    /// Claims counted so far.
    pub attempt: u32,
    /// Incremented on every claim; a holder's fence must match to finish.
    pub fence: u64,
    /// When the current lease runs out (ms since the Unix epoch), while RUNNING.
    pub lease_expires_ms: Option<u64>,
    /// Progress or result text.
    pub progress: String,
    /// Artifacts produced.
    pub artifacts: Vec<String>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Dependencies not yet DONE.
    pub pending_deps: u32,
    /// When a retry becomes claimable (ms since the Unix epoch), while backing off.
    pub retry_at_ms: Option<u64>,
    /// When the task was written (ms since the Unix epoch).
    pub created_ms: u64,
    /// Last change (ms since the Unix epoch).
    pub updated_ms: u64,
    /// Last claim (ms since the Unix epoch).
    pub started_ms: Option<u64>,
    /// When it became DONE or FAILED (ms since the Unix epoch).
    pub finished_ms: Option<u64>,
    /// Planned work, or a task porki added (review, fix, recovery, escalation).
    pub kind: TaskKind,
    /// The task an added task is about (the reviewed, fixed, recovered task; an
    /// escalation's review).
    pub of: Option<String>,
    /// A review: how many times it asked for changes. A fix: its number.
    pub cycle: u32,
    /// What an added task is asked to address (review notes, a rejection's
    /// reason, the error a recovery starts from).
    pub notes: Option<String>,
    /// Waits for a person's approval once it ran.
    pub needs_approval: bool,
    /// May go to another builder when no live agent has its role.
    pub soft: bool,
    /// The role the plan gave it, when it was handed to another builder.
    pub planned_role: Option<String>,
    /// A FAILED task whose work a recovery task took over (or a merge task
    /// whose conflicting merge the next merge task took over).
    pub recovered_by: Option<String>,
    /// The goal branch's commit that holds the task's work, once it is DONE
    /// under worktree isolation (docs/isolation.md).
    pub commit: Option<String>,
    /// What that commit changed (`git diff --stat`, capped).
    pub diffstat: Option<String>,
    /// A merge task: the conflict it resolves.
    pub conflict: Option<MergeConflict>,
    /// How long the task is expected to run, ms (see [`super::rank`]).
    pub estimate_ms: Option<u64>,
    /// Where that estimate came from.
    pub estimate_source: Option<EstimateSource>,
    /// The longest estimated path from the task's start to the end of the plan,
    /// ms: of READY tasks of one priority, the highest rank is claimed first.
    pub rank_ms: Option<u64>,
}

impl TaskState {
    /// A task of `goal` as a plan writes it at `now_ms`: `status`, nothing claimed,
    /// nothing produced.
    pub fn new(goal: &str, id: &str, title: &str, status: TaskStatus, now_ms: u64) -> Self {
        Self {
            goal: goal.to_string(),
            id: id.to_string(),
            title: title.to_string(),
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
            created_ms: now_ms,
            updated_ms: now_ms,
            started_ms: None,
            finished_ms: None,
            kind: TaskKind::Work,
            of: None,
            cycle: 0,
            notes: None,
            needs_approval: false,
            soft: false,
            planned_role: None,
            recovered_by: None,
            commit: None,
            diffstat: None,
            conflict: None,
            estimate_ms: None,
            estimate_source: None,
            rank_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_fills_a_table_column_and_reads_back() {
        assert_eq!(format!("{:<8}|", TaskStatus::Done), "DONE    |");
        for state in TaskStatus::ALL {
            assert_eq!(state.to_string().parse::<TaskStatus>(), Ok(state));
        }
    }
}
