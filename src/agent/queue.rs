//! The goal's merge queue (docs/isolation.md): one merge at a time per goal
//! across every process, under a lock fenced by the task's lease, the lease
//! checked again inside the critical section, the branch moved by a
//! compare-and-set.

use std::time::Duration;

use crate::domain::MergeConflict;
use crate::git::{CommitId, GitError, GoalRepo, MergeOutcome};
use crate::store::{Lease, MergeLockOutcome, Store, StoreError};

use super::isolate::IsolationError;
use super::lease::LeaseKeeper;

/// Longest a merge waits for the goal's merge lock between tries.
const MERGE_LOCK_POLL: Duration = Duration::from_millis(25);

/// How long a merge lock lasts unless released: a merge takes milliseconds;
/// this only bounds the wait behind a holder that died.
const MERGE_LOCK_TTL: Duration = Duration::from_secs(10);

/// Merges retried when the goal branch moved under one (another machine
/// pushed in between).
const MERGE_TRIES: u32 = 5;

/// What merging an attempt's commit came to.
pub(super) enum Merge {
    /// On the goal branch (now, or by an earlier attempt): the commit that
    /// brought it, and what it changed.
    Merged {
        /// The goal branch's commit holding the work.
        commit: CommitId,
        /// `git diff --stat` of that commit against its first parent.
        diffstat: String,
    },
    /// It conflicts with the goal branch.
    Conflict(MergeConflict),
    /// The lease ended before the merge could start: nothing was merged.
    LeaseLost,
}

/// Wakes this process's merges waiting for a goal's merge lock when one is
/// released, so a merge never idles behind a free lock; merges of other
/// processes find it free at their next poll.
static MERGE_LOCK_RELEASED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Merges `commit` (this attempt's, or an earlier attempt's of this task)
/// through the goal's merge queue: the lock, taken only while the lease
/// holds; the lease renewed right before the branch moves; the merge itself a
/// compare-and-set that a stale holder cannot win over a moved branch.
pub(super) async fn merge(
    repo: &GoalRepo,
    store: &dyn Store,
    lease: &Lease,
    keeper: &LeaseKeeper,
    commit: &CommitId,
    start: Option<&CommitId>,
) -> Result<Merge, IsolationError> {
    let asked = std::time::Instant::now();
    let acquire = async {
        loop {
            if keeper.remaining().is_zero() {
                return Ok(None);
            }
            // Registered before trying, so a release in between is not missed.
            let released = MERGE_LOCK_RELEASED.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match store.acquire_merge_lock(lease, MERGE_LOCK_TTL).await {
                Ok(MergeLockOutcome::Acquired(lock)) => return Ok(Some(lock)),
                Ok(MergeLockOutcome::Busy { expires_in, .. }) => {
                    let wait = MERGE_LOCK_POLL.min(expires_in).min(keeper.remaining());
                    let _ =
                        tokio::time::timeout(wait.max(Duration::from_millis(1)), released).await;
                }
                Err(StoreError::LeaseLost { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    };
    // Waiting behind other merges (or a dead holder's lock until it expires)
    // can outlast a lease: it is renewed meanwhile.
    let lock = tokio::select! {
        lock = acquire => match lock? {
            Some(lock) => lock,
            None => return Ok(Merge::LeaseLost),
        },
        _ = keeper.keep() => return Ok(Merge::LeaseLost),
    };
    let taken = std::time::Instant::now();
    let merged = merge_locked(repo, lease, keeper, commit, start).await;
    if let Err(e) = store.release_merge_lock(&lock).await {
        tracing::debug!(error = %e, "could not release the merge lock; it expires on its own");
    }
    MERGE_LOCK_RELEASED.notify_waiters();
    // How long the queue made this merge wait, and how long it held the
    // queue: what `cargo bench --bench isolation` reads.
    tracing::debug!(
        waited_us = taken.duration_since(asked).as_micros() as u64,
        held_us = taken.elapsed().as_micros() as u64,
        "merge lock released"
    );
    // What the merge changed is read after the lock is released: the queue
    // waits for nothing but the merge.
    match merged? {
        Ok(commit) => merged_with_stat(repo, commit).await,
        Err(outcome) => Ok(outcome),
    }
}

/// The merge under the lock: the goal branch's commit holding the work, or
/// how it ended otherwise.
async fn merge_locked(
    repo: &GoalRepo,
    lease: &Lease,
    keeper: &LeaseKeeper,
    commit: &CommitId,
    start: Option<&CommitId>,
) -> Result<Result<CommitId, Merge>, IsolationError> {
    for _ in 0..MERGE_TRIES {
        // The check inside the critical section: a holder whose lease was lost
        // does not move the branch.
        if keeper.renew_now().await.is_some() {
            return Ok(Err(Merge::LeaseLost));
        }
        match repo.merge(commit, &lease.task, lease.attempt).await? {
            MergeOutcome::Merged {
                commit, checkout, ..
            } => {
                if let crate::git::Checkout::Behind { message } = &checkout {
                    tracing::warn!(%message, "the workspace folder's checkout did not follow the goal branch");
                }
                return Ok(Ok(commit));
            }
            MergeOutcome::AlreadyMerged { commit } => return Ok(Ok(commit)),
            MergeOutcome::Conflict { files, tip } => {
                let theirs = match start {
                    Some(start) => repo.tasks_changing(start, &tip, &files).await?,
                    None => Vec::new(),
                };
                return Ok(Err(Merge::Conflict(MergeConflict {
                    commit: commit.as_str().to_string(),
                    files,
                    ours: vec![lease.task.clone()],
                    theirs,
                })));
            }
            MergeOutcome::TipMoved { expected } => {
                tracing::info!(%expected, "the goal branch moved while merging; merging again");
            }
        }
    }
    Err(GitError::Unexpected {
        command: "merge".into(),
        output: format!("the goal branch kept moving over {MERGE_TRIES} merges"),
    }
    .into())
}

/// The goal branch's `commit` holding a task's work, with what it changed.
pub(super) async fn merged_with_stat(
    repo: &GoalRepo,
    commit: CommitId,
) -> Result<Merge, IsolationError> {
    let diffstat = repo
        .commit_stat(&commit, crate::domain::merge::DIFFSTAT_CAP)
        .await?;
    Ok(Merge::Merged { commit, diffstat })
}
