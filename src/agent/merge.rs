//! Recording a DONE attempt under worktree isolation (docs/isolation.md): its
//! work committed, merged through the goal's merge queue, and the task
//! completed with the merged commit in the same write that marks it DONE; or,
//! when the merge conflicts, the task handed to a `.merge` task. Work an
//! earlier attempt finished (merged, or committed and never merged) is
//! completed or merged without running the task again.

use crate::git::{CommitId, GoalRepo};
use crate::store::{ConflictOutcome, Lease, TaskResult};

use super::execute::Claimed;
use super::isolate::{self, Earlier, Place};
use super::lease::LeaseKeeper;
use super::queue::{self, Merge};
use super::record::{Written, until_deadline};
use super::worker::Worker;

impl Worker {
    /// Records a DONE attempt whose work is in `place` (a worktree, or an
    /// earlier attempt's commit); returns the next task when the completion
    /// claimed one. A worktree whose lease was lost is taken out of `place`.
    pub(super) async fn record_isolated(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        result: TaskResult,
        place: &mut Place,
    ) -> Option<Claimed> {
        if matches!(place, Place::Worktree(_)) && keeper.renew_now().await.is_some() {
            // Stalled past its lease, this holder may find the next one working
            // in the task's worktree: it neither commits there nor removes it.
            self.reject_stale(lease, "stale completion rejected: the lease ran out before the task's work was committed; nothing is committed and its worktree is left to the task's next holder");
            place.take();
            return None;
        }
        match &*place {
            Place::Shared => self.complete(lease, keeper, &result).await,
            Place::Worktree(isolated) => {
                let title = self.task_title(&lease.task);
                match isolate::commit(isolated, lease, &title).await {
                    // Nothing changed: DONE with no commit of its own.
                    Ok(None) => self.complete(lease, keeper, &result).await,
                    Ok(Some(commit)) => {
                        let start = Some(&isolated.worktree.start);
                        self.merge_and_complete(
                            lease,
                            keeper,
                            result,
                            &isolated.repo,
                            &commit,
                            start,
                        )
                        .await
                    }
                    Err(e) => {
                        let why = format!("could not commit the task's work: {e}");
                        self.record_failure(lease, keeper, &why, true, false).await;
                        None
                    }
                }
            }
            Place::Earlier {
                repo,
                work: Earlier::Committed(commit),
            } => {
                self.merge_and_complete(lease, keeper, result, repo, commit, None)
                    .await
            }
            Place::Earlier {
                repo,
                work: Earlier::Merged(commit),
            } => match queue::merged_with_stat(repo, commit.clone()).await {
                Ok(merged) => self.complete_merged(lease, keeper, result, merged).await,
                Err(e) => {
                    let why = format!("could not read the merged work: {e}");
                    self.record_failure(lease, keeper, &why, true, false).await;
                    None
                }
            },
        }
    }

    /// Merges `commit` into the goal branch and records what that came to.
    async fn merge_and_complete(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        result: TaskResult,
        repo: &GoalRepo,
        commit: &CommitId,
        start: Option<&CommitId>,
    ) -> Option<Claimed> {
        let store = self.deps.store.clone();
        // Chaos testing: a process killed between the commit and the merge.
        fail::fail_point!("agent-before-merge", |_| None);
        let merged = queue::merge(repo, &*store, lease, keeper, commit, start).await;
        match merged {
            Ok(merged @ Merge::Merged { .. }) => {
                // Chaos testing: killed between the merge and the store's completion.
                fail::fail_point!("agent-after-merge", |_| None);
                self.complete_merged(lease, keeper, result, merged).await
            }
            Ok(Merge::Conflict(conflict)) => {
                let written = until_deadline(keeper, "record the merge conflict", async || {
                    store.merge_conflict(lease, &result, &conflict).await
                })
                .await;
                match written {
                    Written::Done(ConflictOutcome::Merging { task, .. }) => tracing::warn!(
                        files = %conflict.files_text(),
                        merge_task = %task,
                        "the task's work conflicts with the goal branch; a merge task resolves it"
                    ),
                    Written::Done(ConflictOutcome::Failed { .. }) => tracing::warn!(
                        files = %conflict.files_text(),
                        "the task's work conflicts with the goal branch again, past its merge tasks: the task is FAILED"
                    ),
                    Written::Lost | Written::Deadline => tracing::warn!(
                        "the merge conflicted and the lease was lost before it was recorded; the task will run again"
                    ),
                }
                None
            }
            Ok(Merge::LeaseLost) => {
                self.reject_stale(lease, "stale completion rejected: the lease was lost before the merge; nothing was merged, and the task will run again");
                None
            }
            Err(e) => {
                let why = format!("could not merge the task's work: {e}");
                self.record_failure(lease, keeper, &why, true, false).await;
                None
            }
        }
    }

    /// Completes the task with the goal branch's commit that holds its work.
    async fn complete_merged(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        mut result: TaskResult,
        merged: Merge,
    ) -> Option<Claimed> {
        if let Merge::Merged { commit, diffstat } = merged {
            tracing::info!(commit = %commit.short(), "merged into the goal branch");
            result.commit = Some(commit.to_string());
            result.diffstat = Some(diffstat);
        }
        self.complete(lease, keeper, &result).await
    }

    /// The title of `task` in the plan as read (its id when it is not there).
    fn task_title(&self, task: &str) -> String {
        self.plan
            .as_ref()
            .and_then(|p| p.nodes.iter().find(|n| n.id == task))
            .map_or_else(|| task.to_string(), |n| n.title.clone())
    }
}
