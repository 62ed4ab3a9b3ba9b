//! Worktree isolation's side of the store (docs/isolation.md): the goal's
//! branch, the per-goal merge lock that serialises merges into it, and the
//! `.merge` task a conflicting merge becomes. The merged commit itself is
//! recorded by the completion ([`super::TaskResult::commit`]).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Lease, StoreError, TaskResult};
use crate::domain::MergeConflict;

/// Where a goal's work is merged: its branch, and the repository that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalBranch {
    /// The goal branch (`porki/<goal>`).
    pub branch: String,
    /// The repository, as the process that prepared it describes it (a path
    /// or a remote URL).
    pub repository: String,
}

/// A held merge lock of a goal (`goal:{G}:merge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeLock {
    /// Goal id.
    pub goal: String,
    /// The task whose attempt holds it.
    pub task: String,
    /// Random token stored in the lock: only its holder renews or releases it.
    pub token: String,
}

/// What asking for a goal's merge lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeLockOutcome {
    /// The lock is held by the caller (taken now, or already by this attempt).
    Acquired(MergeLock),
    /// Another attempt holds it.
    Busy {
        /// The task whose attempt holds it.
        holder: String,
        /// When its TTL runs out, unless it is released or renewed first.
        expires_in: Duration,
    },
}

/// What a conflicting merge did to its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictOutcome {
    /// A merge task was added, READY; the task (`subject`) waits BLOCKED for
    /// it and is DONE when it is.
    Merging {
        /// The merge task's id (`<id>.merge`, `<id>.merge-2`…).
        task: String,
        /// The task whose work it merges.
        subject: String,
    },
    /// The task had as many merge tasks as it may: it is FAILED, naming the
    /// conflicting files, and the goal with it.
    Failed {
        /// The failed task.
        subject: String,
    },
}

/// The merge queue of worktree isolation. Every method is atomic with respect
/// to every other caller.
#[async_trait]
pub trait MergeStore: Send + Sync + 'static {
    /// Records the goal's branch and repository once: the first call's stay,
    /// and every call answers what is stored. `UnknownGoal` without a plan.
    async fn set_goal_branch(
        &self,
        goal: &str,
        branch: &GoalBranch,
    ) -> Result<GoalBranch, StoreError>;

    /// Takes the goal's merge lock for `ttl`, only while `lease` still holds
    /// its task (`LeaseLost` otherwise, so a holder whose lease was lost never
    /// starts a merge). The same attempt asking again gets the lock it holds.
    async fn acquire_merge_lock(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<MergeLockOutcome, StoreError>;

    /// Extends a held merge lock; false if it is no longer this one.
    async fn renew_merge_lock(&self, lock: &MergeLock, ttl: Duration) -> Result<bool, StoreError>;

    /// Releases a merge lock by its token; false if it was no longer this one
    /// (it expired, and maybe another attempt holds it now).
    async fn release_merge_lock(&self, lock: &MergeLock) -> Result<bool, StoreError>;

    /// The held task's merge conflicted: it leaves RUNNING (the attempt is not
    /// a failure), keeping `result`, and waits BLOCKED for a merge task of its
    /// role carrying `conflict` (READY at once), which takes its place; a merge
    /// task that conflicts is taken over by the next one. Past
    /// [`crate::domain::MAX_MERGES_PER_TASK`] merge tasks the task is FAILED,
    /// naming the files. `LeaseLost` if stale; the same request sent again
    /// (same lease) gets the answer it had.
    async fn merge_conflict(
        &self,
        lease: &Lease,
        result: &TaskResult,
        conflict: &MergeConflict,
    ) -> Result<ConflictOutcome, StoreError>;
}
