//! [`TeamStore`] on Redis: `settle_review.lua`, `approve.lua`, `reject.lua`,
//! `reassign.lua`. Each declares the tasks it expects to add or finish (their ids
//! are derived from the task's), and `need` answers cover the rest.

use async_trait::async_trait;

use super::control::control_reply;
use super::declare::GoalCall;
use super::tasks::{complete_reply, merged};
use super::{RedisStore, artifacts_json, unexpected};
use crate::domain::{TeamLimits, escalation_id, fix_id, recovery_id, review_id};
use crate::store::team::{APPROVING, REASSIGNING};
use crate::store::{
    CompleteOutcome, Lease, Rejected, ReviewOutcome, ReviewVerdict, StoreError, TaskResult,
    TeamStore, new_token,
};

/// The work task a review, escalation or fix id is about, by its suffix.
pub(super) fn base_of(task: &str) -> &str {
    crate::domain::reserved_suffix(task)
        .map_or(task, |suffix| &task[..task.len() - suffix.len() - 1])
}

/// The ids worth declaring for a team change on `task`: its planned task, that
/// task's recovery, review and escalation, and its first fixes.
fn likely_ids(task: &str, fixes: u32) -> Vec<String> {
    let base = base_of(task);
    let mut ids = vec![
        task.to_string(),
        base.to_string(),
        recovery_id(base),
        review_id(base),
        escalation_id(base),
    ];
    ids.extend((1..=fixes).map(|n| fix_id(base, n)));
    ids
}

#[async_trait]
impl TeamStore for RedisStore {
    async fn settle_review(
        &self,
        lease: &Lease,
        result: &TaskResult,
        verdict: &ReviewVerdict,
        limits: &TeamLimits,
    ) -> Result<ReviewOutcome, StoreError> {
        let (approved, notes) = match verdict {
            ReviewVerdict::Approved => ("approved", ""),
            ReviewVerdict::ChangesRequested { notes } => ("changes", notes.as_str()),
        };
        let fence = lease.fence.to_string();
        let artifacts = artifacts_json(result);
        let request = new_token();
        let cycles = limits.max_review_cycles.to_string();
        let manager = limits.manager_role.as_deref().unwrap_or("");
        let (commit, diffstat) = merged(result);
        let args = [
            lease.task.as_str(),
            &lease.token,
            &fence,
            &result.progress,
            &artifacts,
            &request,
            approved,
            notes,
            &cycles,
            manager,
            commit,
            &diffstat,
        ];
        let mut call = GoalCall::new(&lease.goal, &[], &args);
        call.tasks = likely_ids(&lease.task, limits.max_review_cycles + 1);
        call.tasks
            .extend(self.hints.dependents(&lease.goal, &lease.task));
        if !manager.is_empty() {
            call.roles.push(manager.to_string());
        }
        call.durable = true;
        let reply = self.run_goal(&self.scripts.settle_review, call).await;
        let reply = self.finished(lease, reply)?;
        let id = || {
            reply
                .get(1)
                .cloned()
                .ok_or_else(|| unexpected("settle_review", &reply))
        };
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let outcome = complete_reply(reply.clone())?;
                self.hints
                    .finished(&lease.goal, &lease.task, &outcome.promoted);
                Ok(ReviewOutcome::Approved(outcome))
            }
            Some("fix") => Ok(ReviewOutcome::FixRequested { fix: id()? }),
            Some("escalated") => Ok(ReviewOutcome::Escalated { task: id()? }),
            Some("failed") => Ok(ReviewOutcome::Failed { review: id()? }),
            Some("moot") => Ok(ReviewOutcome::Moot { review: id()? }),
            Some("not_review") => Err(StoreError::NotAReview {
                goal: lease.goal.clone(),
                task: lease.task.clone(),
                kind: id()?,
            }),
            _ => Err(unexpected("settle_review", &reply)),
        }
    }

    async fn approve(&self, goal: &str, task: &str) -> Result<CompleteOutcome, StoreError> {
        let reply = self
            .run_task_script(&self.scripts.approve, goal, &[task], &[task])
            .await?;
        let reply = control_reply(reply, goal, task, APPROVING)?;
        complete_reply(reply)
    }

    async fn reject(&self, goal: &str, task: &str, reason: &str) -> Result<Rejected, StoreError> {
        let mut call = GoalCall::new(goal, &[], &[task, reason]);
        call.tasks = likely_ids(task, 1);
        let reply: Vec<String> = self.run_goal(&self.scripts.reject, call).await?;
        let reply = control_reply(reply, goal, task, APPROVING)?;
        let fix = reply
            .get(1)
            .cloned()
            .ok_or_else(|| unexpected("reject", &reply))?;
        Ok(Rejected { fix })
    }

    async fn reassign(&self, goal: &str, task: &str, role: Option<&str>) -> Result<(), StoreError> {
        let role = role.unwrap_or("");
        let mut call = GoalCall::new(goal, &[task], &[task, role]);
        if !role.is_empty() {
            call.roles.push(role.to_string());
        }
        let reply: Vec<String> = self.run_goal(&self.scripts.reassign, call).await?;
        control_reply(reply, goal, task, REASSIGNING).map(drop)
    }
}
