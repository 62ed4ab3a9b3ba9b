//! Recording the answer of a review or an escalation: its verdict settles the
//! review (passed; a fix asked for; escalated to a manager; failed), in one store
//! step that adds whatever task comes next. An answer without a verdict is a
//! failed attempt, retried like any other.

use crate::domain::TeamLimits;
use crate::llm::answer::{AnswerVerdict, TaskAnswer};
use crate::store::{Lease, ReviewOutcome, ReviewVerdict, TaskResult};

use super::lease::LeaseKeeper;
use super::prompts::capped;
use super::record::{PROGRESS_CAP, Written, until_deadline};
use super::worker::Worker;

/// What a fix is told when a reviewer asked for changes without saying which.
const NO_NOTES: &str =
    "the reviewer asked for changes without saying which: check the task against what it asks for";

impl Worker {
    /// Settles the held review or escalation with the verdict in `answer`.
    pub(super) async fn settle(&mut self, lease: &Lease, keeper: &LeaseKeeper, answer: TaskAnswer) {
        let Some(verdict) = answer.verdict else {
            let error = "the answer has no verdict: a review answers with \"verdict\": \"approved\" or \"changes_requested\"";
            self.record_failure(lease, keeper, error, true, true).await;
            return;
        };
        let notes = capped(&answer.notes, PROGRESS_CAP);
        let verdict = match verdict {
            AnswerVerdict::Approved => ReviewVerdict::Approved,
            AnswerVerdict::ChangesRequested => ReviewVerdict::ChangesRequested {
                notes: if notes.trim().is_empty() {
                    NO_NOTES.to_string()
                } else {
                    notes.clone()
                },
            },
        };
        let result = TaskResult {
            progress: notes,
            artifacts: answer.outputs,
            ..TaskResult::default()
        };
        let limits = TeamLimits {
            max_review_cycles: self.deps.settings.max_review_cycles,
            manager_role: self.config.manager_role.clone(),
        };
        let store = self.deps.store.clone();
        let written = until_deadline(keeper, "record the verdict", async || {
            store.settle_review(lease, &result, &verdict, &limits).await
        })
        .await;
        let what = match written {
            Written::Done(ReviewOutcome::Approved(done)) => {
                tracing::info!(promoted = ?done.promoted, awaiting_approval = done.awaiting_approval, "review passed");
                self.deps.settings.metrics.task_completed(&lease.goal);
                "approved"
            }
            Written::Done(ReviewOutcome::FixRequested { fix }) => {
                tracing::info!(%fix, "review asked for changes; a fix task was added");
                "asked for changes"
            }
            Written::Done(ReviewOutcome::Escalated { task }) => {
                tracing::warn!(escalation = %task, "review asked for changes once more than its cycles allow; escalated to a manager");
                "escalated"
            }
            Written::Done(ReviewOutcome::Moot { review }) => {
                tracing::warn!(%review, "the review no longer waited for this escalation (dropped meanwhile); the escalation is done and the review left as it is");
                self.deps.settings.metrics.task_completed(&lease.goal);
                "nothing left to settle"
            }
            Written::Done(ReviewOutcome::Failed { review }) => {
                tracing::error!(%review, "review FAILED: the work was not accepted");
                self.deps.settings.metrics.task_failed(&lease.goal, false);
                "rejected for good"
            }
            Written::Lost => {
                self.reject_stale(lease, "stale verdict rejected: the lease was lost and the review reclaimed; this verdict is dropped");
                return;
            }
            Written::Deadline => {
                self.reject_stale(lease, "stale verdict rejected: the lease's deadline passed before the store recorded it; the review will run again");
                return;
            }
        };
        self.remember(format!(
            "reviewed {}: {what}: {}",
            lease.task, result.progress
        ))
        .await;
    }
}
