//! [`TeamStore`] in memory: the rules of `settle_review.lua`, `approve.lua`,
//! `reject.lua` and `reassign.lua`, on [`GoalData`].

use async_trait::async_trait;

use super::{GoalData, MemoryStore, NewTask, now_ms};
use crate::domain::{TaskKind, TaskStatus, TeamLimits, escalation_id};
use crate::store::team::{APPROVING, REASSIGNING};
use crate::store::{
    CompleteOutcome, EventKind, Lease, Rejected, ReviewOutcome, ReviewVerdict, StoreError,
    TaskResult, TeamStore,
};

impl GoalData {
    /// Settles a held review or escalation (see [`TeamStore::settle_review`]).
    fn settle(
        &mut self,
        lease: &Lease,
        result: &TaskResult,
        verdict: &ReviewVerdict,
        limits: &TeamLimits,
    ) -> Result<ReviewOutcome, StoreError> {
        let id = lease.task.as_str();
        let task = &self.tasks[id].state;
        let (kind, of, cycle) = (task.kind, task.of.clone().unwrap_or_default(), task.cycle);
        let notes = match verdict {
            ReviewVerdict::Approved => None,
            ReviewVerdict::ChangesRequested { notes } => Some(notes.as_str()),
        };
        match (kind, notes) {
            (TaskKind::Escalate, notes) => {
                let review = of;
                // Only porki adds escalations (a plan may not), always of a
                // review that then waits for them: BLOCKED, unless a person
                // dropped it meanwhile.
                let waiting = self.tasks[&review].state.status == TaskStatus::Blocked;
                self.complete(lease, result);
                if !waiting {
                    // Nothing to settle: the review stays as it is, waiting for
                    // the escalation no more (retried, it runs again).
                    let pending = &mut self.task_mut(&review).state.pending_deps;
                    *pending = pending.saturating_sub(1);
                    return Ok(ReviewOutcome::Moot { review });
                }
                let Some(notes) = notes else {
                    let progress = format!(
                        "approved by the manager on escalation {id}: {}",
                        result.progress
                    );
                    let entry = self.task_mut(&review);
                    entry.state.pending_deps = 0;
                    entry.state.progress = progress;
                    if entry.state.needs_approval {
                        self.set_status(&review, TaskStatus::AwaitingApproval);
                        return Ok(ReviewOutcome::Approved(CompleteOutcome {
                            awaiting_approval: true,
                            ..CompleteOutcome::default()
                        }));
                    }
                    return Ok(ReviewOutcome::Approved(self.finish_done(&review)));
                };
                self.task_mut(&review).state.pending_deps = 0;
                self.fail_for_good(
                    &review,
                    format!(
                        "the manager rejected the work after the review asked for changes {cycle} time(s): {notes}"
                    ),
                );
                Ok(ReviewOutcome::Failed { review })
            }
            (_, None) => Ok(ReviewOutcome::Approved(self.complete(lease, result))),
            (TaskKind::Review, Some(notes)) => {
                let base = of;
                let escalation = escalation_id(&self.planned_of(&base));
                let manager = limits.manager_role.as_deref();
                let escalate = manager.filter(|_| !self.tasks.contains_key(&escalation));
                if cycle >= limits.max_review_cycles && escalate.is_none() {
                    self.fail_for_good(
                        id,
                        format!(
                            "the review asked for changes {} time(s), more than the {} review cycle(s) allowed, and no manager settled it: {notes}",
                            cycle + 1,
                            limits.max_review_cycles
                        ),
                    );
                    return Ok(ReviewOutcome::Failed {
                        review: id.to_string(),
                    });
                }
                // The review waits (BLOCKED, attempts reset) for the fix or the escalation.
                self.set_status(id, TaskStatus::Blocked);
                let entry = self.task_mut(id);
                entry.lock = None;
                entry.state.attempt = 0;
                entry.state.lease_expires_ms = None;
                entry.state.progress = result.progress.clone();
                entry.state.notes = Some(notes.to_string());
                entry.state.cycle = cycle + 1;
                if cycle < limits.max_review_cycles {
                    let fix = self.add_fix(&base, notes, id);
                    return Ok(ReviewOutcome::FixRequested { fix });
                }
                let base_state = &self.tasks[&base].state;
                let spec = NewTask {
                    title: format!("Settle the review of: {}", base_state.title),
                    kind: TaskKind::Escalate,
                    of: id.to_string(),
                    notes: notes.to_string(),
                    role: escalate.map(str::to_string),
                    priority: base_state.priority,
                    cycle: cycle + 1,
                    approval: false,
                };
                self.add_task(&escalation, spec, id, false);
                self.wait_for(id, &escalation, false);
                Ok(ReviewOutcome::Escalated { task: escalation })
            }
            (kind, Some(_)) => Err(StoreError::NotAReview {
                goal: lease.goal.clone(),
                task: id.to_string(),
                kind: kind.to_string(),
            }),
        }
    }

    /// The state of a task an approval or rejection applies to, checked.
    fn awaiting(&self, goal: &str, task: &str) -> Result<(), StoreError> {
        match self.tasks[task].state.status {
            TaskStatus::AwaitingApproval => Ok(()),
            status => Err(StoreError::wrong_state(goal, task, status, APPROVING)),
        }
    }
}

#[async_trait]
impl TeamStore for MemoryStore {
    async fn settle_review(
        &self,
        lease: &Lease,
        result: &TaskResult,
        verdict: &ReviewVerdict,
        limits: &TeamLimits,
    ) -> Result<ReviewOutcome, StoreError> {
        let mut state = self.lock();
        let outcome = state.held(lease)?.settle(lease, result, verdict, limits)?;
        drop(state);
        match &outcome {
            ReviewOutcome::Approved(completed) => self.emit_completion(&lease.goal, completed),
            ReviewOutcome::Failed { .. } => self.emit_failed(&lease.goal),
            ReviewOutcome::FixRequested { .. } | ReviewOutcome::Escalated { .. } => {
                self.emit(&lease.goal, EventKind::Ready)
            }
            ReviewOutcome::Moot { .. } => {}
        }
        Ok(outcome)
    }

    async fn approve(&self, goal: &str, task: &str) -> Result<CompleteOutcome, StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        data.awaiting(goal, task)?;
        let outcome = data.finish_done(task);
        drop(state);
        self.emit_completion(goal, &outcome);
        Ok(outcome)
    }

    async fn reject(&self, goal: &str, task: &str, reason: &str) -> Result<Rejected, StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        data.awaiting(goal, task)?;
        let entry = &data.tasks[task].state;
        let review = entry.kind == TaskKind::Review;
        let base = if review {
            entry.of.clone().unwrap_or_default()
        } else {
            task.to_string()
        };
        data.set_status(task, TaskStatus::Blocked);
        let entry = data.task_mut(task);
        entry.state.notes = Some(reason.to_string());
        if review {
            entry.state.attempt = 0;
        } else {
            entry.return_to_approval = true;
        }
        let fix = data.add_fix(&base, reason, task);
        drop(state);
        self.emit(goal, EventKind::Ready);
        Ok(Rejected { fix })
    }

    async fn reassign(&self, goal: &str, task: &str, role: Option<&str>) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        let status = data.tasks[task].state.status;
        if status != TaskStatus::Ready {
            return Err(StoreError::wrong_state(goal, task, status, REASSIGNING));
        }
        let old = data.tasks[task].state.role.clone();
        if old.as_deref() == role {
            return Ok(());
        }
        let indexed = data.remove_ready(task);
        let entry = data.task_mut(task);
        entry.state.planned_role = entry.state.planned_role.take().or(old);
        entry.state.role = role.map(str::to_string);
        entry.state.updated_ms = now_ms();
        if indexed {
            data.index_ready(task);
        }
        drop(state);
        self.emit(goal, EventKind::Ready);
        Ok(())
    }
}
