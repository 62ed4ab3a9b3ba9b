//! A team's loops on a running plan: review verdicts (fixes, escalations), a
//! person's approval or rejection, and handing soft-assigned tasks to another
//! builder. Each change is one atomic step that adds the tasks it needs and
//! rewires what waits for what (`lua/settle_review.lua`, `approve.lua`,
//! `reject.lua`, `reassign.lua`).

use async_trait::async_trait;

use super::{CompleteOutcome, Lease, StoreError, TaskResult};
use crate::domain::TeamLimits;

/// APPROVE-TASK and REJECT-TASK as a `WrongState` error names them.
pub(super) const APPROVING: (&str, &str) = ("approving", "AWAITING_APPROVAL");
/// Soft reassignment as a `WrongState` error names it.
pub(super) const REASSIGNING: (&str, &str) = ("reassigning", "READY");

/// A reviewer's (or, on an escalation, a manager's) decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// The work passes.
    Approved,
    /// The work needs changes; `notes` say which.
    ChangesRequested {
        /// What to change.
        notes: String,
    },
}

/// What settling a review or an escalation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The review passed (for an escalation: the manager passed it): as a completion.
    Approved(CompleteOutcome),
    /// A fix task was added for the reviewed task's role; the review runs again after it.
    FixRequested {
        /// The fix task's id (`<id>.fix-<n>`).
        fix: String,
    },
    /// The review asked for changes once more than its cycles allow: a manager's task was added.
    Escalated {
        /// The escalation task's id (`<id>.escalate`).
        task: String,
    },
    /// The review failed with its notes (no manager to escalate to, or the manager
    /// rejected the work): the review is FAILED, and the goal with it.
    Failed {
        /// The failed review's id.
        review: String,
    },
    /// An escalation whose review no longer waited for it (a person dropped the
    /// review meanwhile): the escalation is DONE, and the review is left as it is
    /// (retried, it runs again).
    Moot {
        /// The review the escalation was about.
        review: String,
    },
}

/// What a person's rejection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The fix task added for the rejected work's role, carrying the reason.
    pub fix: String,
}

/// The team loops on a running plan. Every method is atomic with respect to
/// every other caller.
#[async_trait]
pub trait TeamStore: Send + Sync + 'static {
    /// Finishes a held review or escalation task with its verdict. On a review,
    /// `changes_requested` adds `<id>.fix-<n>` (and the review waits for it)
    /// while the review has asked for changes fewer than
    /// `limits.max_review_cycles` times; then it escalates to `limits.manager_role`
    /// (`<id>.escalate`, once), else fails. Added ids are named after the planned
    /// task (a review of `x.recover` asks for `x.fix-<n>`). On an escalation,
    /// approval completes the review, and rejection fails it, while the review
    /// waits for the escalation (else [`ReviewOutcome::Moot`]). `LeaseLost` if the
    /// lease is stale; the same request sent again gets the answer it had.
    async fn settle_review(
        &self,
        lease: &Lease,
        result: &TaskResult,
        verdict: &ReviewVerdict,
        limits: &TeamLimits,
    ) -> Result<ReviewOutcome, StoreError>;

    /// A person approves a task AWAITING_APPROVAL: it is DONE, and its dependents
    /// move on as after a completion.
    async fn approve(&self, goal: &str, task: &str) -> Result<CompleteOutcome, StoreError>;

    /// A person rejects a task AWAITING_APPROVAL with `reason`: as a review asking
    /// for changes, a fix task (`x.fix-<n>`, named after the planned task `x`)
    /// carries the reason; then the task awaits approval again (a review task runs
    /// again first).
    async fn reject(&self, goal: &str, task: &str, reason: &str) -> Result<Rejected, StoreError>;

    /// Hands a READY task to agents of `role` (`None`: any builder), keeping the
    /// role the plan gave it; for soft-assigned tasks whose role no live agent has.
    async fn reassign(&self, goal: &str, task: &str, role: Option<&str>) -> Result<(), StoreError>;
}
