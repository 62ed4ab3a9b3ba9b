//! [`MergeStore`] on Redis: `goal_branch.lua` (the goal hash), the merge lock
//! scripts (`merge_lock*.lua`, on `goal:{G}:merge` and the task's lock, one
//! slot) and the goal script `merge_conflict.lua`.

use std::time::Duration;

use async_trait::async_trait;

use super::declare::GoalCall;
use super::team::base_of;
use super::{RedisStore, artifacts_json, millis, unexpected};
use crate::domain::{MAX_MERGES_PER_TASK, MergeConflict, ids::MAX_ID_LEN, merge_id};
use crate::store::{
    ConflictOutcome, GoalBranch, Lease, MergeLock, MergeLockOutcome, MergeStore, StoreError,
    TaskResult, keys, new_token,
};

#[async_trait]
impl MergeStore for RedisStore {
    async fn set_goal_branch(
        &self,
        goal: &str,
        branch: &GoalBranch,
    ) -> Result<GoalBranch, StoreError> {
        let reply: Vec<String> = self
            .scripts
            .goal_branch
            .key(keys::goal(goal))
            .arg(&branch.branch)
            .arg(&branch.repository)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match reply.as_slice() {
            [ok, branch, repository] if ok == "ok" => Ok(GoalBranch {
                branch: branch.clone(),
                repository: repository.clone(),
            }),
            [no] if no == "no_goal" => Err(StoreError::UnknownGoal {
                goal: goal.to_string(),
            }),
            _ => Err(unexpected("goal_branch", &reply)),
        }
    }

    async fn acquire_merge_lock(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<MergeLockOutcome, StoreError> {
        let token = new_token();
        let reply: Vec<String> = self
            .scripts
            .merge_lock
            .key(keys::merge_lock(&lease.goal))
            .key(keys::task_lock(&lease.goal, &lease.task))
            .arg(&lease.token)
            .arg(lease.fence)
            .arg(&lease.task)
            .arg(&token)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await?;
        match reply.as_slice() {
            [acquired, token] if acquired == "acquired" => {
                Ok(MergeLockOutcome::Acquired(MergeLock {
                    goal: lease.goal.clone(),
                    task: lease.task.clone(),
                    token: token.clone(),
                }))
            }
            [busy, holder, ms] if busy == "busy" => Ok(MergeLockOutcome::Busy {
                holder: holder.clone(),
                // PTTL answers -1 for a lock without a TTL, which porki never sets.
                expires_in: Duration::from_millis(ms.parse::<i64>().unwrap_or(0).max(0) as u64),
            }),
            [lost] if lost == "lost" => Err(StoreError::lease_lost(lease)),
            _ => Err(unexpected("merge_lock", &reply)),
        }
    }

    async fn renew_merge_lock(&self, lock: &MergeLock, ttl: Duration) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .merge_lock_renew
                .key(keys::merge_lock(&lock.goal))
                .arg(&lock.token)
                .arg(millis(ttl)),
        )
        .await
    }

    async fn release_merge_lock(&self, lock: &MergeLock) -> Result<bool, StoreError> {
        self.run_flag_script(
            self.scripts
                .merge_lock_release
                .key(keys::merge_lock(&lock.goal))
                .arg(&lock.token),
        )
        .await
    }

    async fn merge_conflict(
        &self,
        lease: &Lease,
        result: &TaskResult,
        conflict: &MergeConflict,
    ) -> Result<ConflictOutcome, StoreError> {
        let conflict = conflict.capped();
        let fence = lease.fence.to_string();
        let json = serde_json::to_string(&conflict).expect("a conflict serializes");
        let max_merges = MAX_MERGES_PER_TASK.to_string();
        let max_len = MAX_ID_LEN.to_string();
        let args = [
            lease.task.as_str(),
            &lease.token,
            &fence,
            &result.progress,
            &artifacts_json(result),
            &conflict.describe(),
            &json,
            &conflict.failure(),
            &max_merges,
            &max_len,
        ];
        // Declared up front: the task, the planned task it is named after (the
        // task a merge task merges, most often) and that task's merge tasks.
        let base = base_of(&lease.task);
        let mut tasks = vec![lease.task.clone(), base.to_string()];
        tasks.extend((1..=MAX_MERGES_PER_TASK + 1).map(|n| merge_id(base, n)));
        let mut call = GoalCall::new(&lease.goal, &[], &args);
        call.tasks = tasks;
        call.durable = true;
        let reply = self.run_goal(&self.scripts.merge_conflict, call).await;
        let reply = self.finished(lease, reply)?;
        match reply.as_slice() {
            [merging, task, subject] if merging == "merging" => Ok(ConflictOutcome::Merging {
                task: task.clone(),
                subject: subject.clone(),
            }),
            [failed, subject] if failed == "failed" => Ok(ConflictOutcome::Failed {
                subject: subject.clone(),
            }),
            _ => Err(unexpected("merge_conflict", &reply)),
        }
    }
}
