//! Worktree isolation of one attempt (docs/isolation.md): before the CLI,
//! whether an earlier attempt's work is merged or committed already, and the
//! attempt's worktree; after a DONE verdict, its commit (the merge is
//! `queue`'s, the goal's repository `repos`').

use std::sync::Arc;

use crate::domain::TaskKind;
use crate::git::{CommitId, GitError, GoalRepo, Identity, Worktree};
use crate::llm::answer::{TaskAnswer, TaskAnswerStatus};
use crate::store::{Lease, Store, StoreError};
use crate::workspace::{ARTIFACTS_DIR, GoalWorkspace};

use super::repos::GitContext;

/// Why an attempt could not be isolated or its work merged.
#[derive(Debug, thiserror::Error)]
pub(super) enum IsolationError {
    /// git refused or failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The goal uses worktrees but this process found no git at start.
    #[error(
        "goal {goal} uses --isolation worktree, but this process started without git (no goal needed it then): restart porki with git 2.38 or newer on PATH, or give the goal `- Isolation: shared`"
    )]
    NoGit {
        /// The goal.
        goal: String,
    },
    /// A `.merge` task without the conflict it resolves.
    #[error("merge task {task} carries no conflict: it was not added by porki")]
    NoConflict {
        /// The task.
        task: String,
    },
}

/// Where an isolated attempt stands before its CLI runs.
pub(super) enum Prepared {
    /// Run the CLI in this worktree.
    Run(Isolated),
    /// An earlier attempt of the task finished its work: run nothing.
    Earlier {
        /// The goal's repository.
        repo: Arc<GoalRepo>,
        /// What that attempt left.
        work: Earlier,
    },
}

/// An earlier attempt's finished work, found before running the task again.
#[derive(Debug, Clone)]
pub(super) enum Earlier {
    /// On the goal branch already (its completion was lost): complete with it.
    Merged(CommitId),
    /// Committed on the task branch and never merged: merge it.
    Committed(CommitId),
}

impl Earlier {
    /// The answer that stands for it (the earlier attempt's own was only in
    /// its memory).
    pub(super) fn answer(&self) -> TaskAnswer {
        let notes = match self {
            Earlier::Merged(c) => {
                format!("an earlier attempt's work, merged as {}", c.short())
            }
            Earlier::Committed(c) => {
                format!("an earlier attempt's work, committed as {}", c.short())
            }
        };
        TaskAnswer {
            status: TaskAnswerStatus::Done,
            outputs: Vec::new(),
            notes,
            follow_ups: Vec::new(),
            verdict: None,
        }
    }
}

/// Where an attempt's work is, for recording it.
#[derive(Default)]
pub(super) enum Place {
    /// The goal's shared folder.
    #[default]
    Shared,
    /// Its own worktree.
    Worktree(Isolated),
    /// Finished by an earlier attempt.
    Earlier {
        /// The goal's repository.
        repo: Arc<GoalRepo>,
        /// What that attempt left.
        work: Earlier,
    },
}

impl Place {
    /// Moves the place out, leaving [`Place::Shared`].
    pub(super) fn take(&mut self) -> Place {
        std::mem::take(self)
    }

    /// Removes the attempt's worktree, if it has one (its commit stays on the
    /// task branch).
    pub(super) async fn clean_up(&self, task: &str) {
        if let Place::Worktree(isolated) = self
            && let Err(e) = isolated.repo.remove_worktree(task).await
        {
            tracing::warn!(error = %e, "could not remove the task's worktree; `git worktree prune` or porki gc will");
        }
    }
}

/// An attempt's worktree, in its goal's repository.
pub(super) struct Isolated {
    /// The goal's repository.
    pub(super) repo: Arc<GoalRepo>,
    /// The worktree the CLI runs in.
    pub(super) worktree: Worktree,
    /// A review: the reviewed work's diff (stat, then the patch, capped).
    pub(super) diff: Option<String>,
}

impl Isolated {
    /// The attempt's workspace: the CLI's folder in the worktree, its artifacts
    /// inside it unless `--artifacts-dir` puts them elsewhere.
    pub(super) fn workspace(&self, goal: &GoalWorkspace) -> GoalWorkspace {
        let dir = self.worktree.cli_dir.clone();
        let artifacts = if goal.artifacts == goal.dir.join(ARTIFACTS_DIR) {
            dir.join(ARTIFACTS_DIR)
        } else {
            goal.artifacts.clone()
        };
        GoalWorkspace { dir, artifacts }
    }
}

/// Longest diff a review's prompt gets, in bytes.
const REVIEW_DIFF_CAP: usize = 24 * 1024;

/// The context of an isolated attempt of `lease`'s task, for [`prepare`].
pub(super) struct AttemptPlace<'a> {
    pub(super) git: Option<&'a GitContext>,
    pub(super) store: &'a dyn Store,
    pub(super) lease: &'a Lease,
    pub(super) kind: TaskKind,
    /// The task a review, fix or merge task is about.
    pub(super) of: Option<&'a str>,
    pub(super) workspace: &'a GoalWorkspace,
}

/// Finds where an isolated attempt stands: already merged, committed by an
/// earlier attempt, or a fresh worktree for the CLI.
pub(super) async fn prepare(place: AttemptPlace<'_>) -> Result<Prepared, IsolationError> {
    let AttemptPlace {
        git,
        store,
        lease,
        kind,
        of,
        workspace,
    } = place;
    let git = git.ok_or_else(|| IsolationError::NoGit {
        goal: lease.goal.clone(),
    })?;
    let repo = git.repo(store, &lease.goal, &workspace.dir).await?;
    if kind.decides() {
        // A review (or an escalation) looks at the reviewed work as merged.
        let reviewed = match of {
            Some(of) => store
                .task(&lease.goal, of)
                .await?
                .and_then(|t| t.commit)
                .and_then(|c| CommitId::parse(&c).ok()),
            None => None,
        };
        let start = match &reviewed {
            Some(commit) => commit.clone(),
            None => repo.tip().await?,
        };
        let diff = match &reviewed {
            Some(commit) => {
                let diff = repo.commit_diff(commit, REVIEW_DIFF_CAP).await?;
                let cut = if diff.truncated {
                    "\n(cut: the whole diff is `git show` of the reviewed commit)"
                } else {
                    ""
                };
                Some(format!("{}\n\n{}{cut}", diff.stat, diff.patch))
            }
            None => None,
        };
        let worktree = repo.create_worktree(&lease.task, &start).await?;
        return Ok(Prepared::Run(Isolated {
            repo,
            worktree,
            diff,
        }));
    }
    if let Some(merged) = repo.merged(&lease.task).await? {
        return Ok(Prepared::Earlier {
            repo,
            work: Earlier::Merged(merged.commit),
        });
    }
    if let Some(earlier) = repo.task_commit(&lease.task).await?
        && earlier.trailers.attempt < lease.attempt
    {
        return Ok(Prepared::Earlier {
            repo,
            work: Earlier::Committed(earlier.commit),
        });
    }
    let worktree = if kind == TaskKind::Merge {
        let conflict = store
            .task(&lease.goal, &lease.task)
            .await?
            .and_then(|t| t.conflict)
            .ok_or_else(|| IsolationError::NoConflict {
                task: lease.task.clone(),
            })?;
        let theirs = CommitId::parse(&conflict.commit)?;
        repo.conflict_worktree(&lease.task, &theirs).await?.worktree
    } else {
        let tip = repo.tip().await?;
        repo.create_worktree(&lease.task, &tip).await?
    };
    Ok(Prepared::Run(Isolated {
        repo,
        worktree,
        diff: None,
    }))
}

/// The commit message of an attempt: the task, then who did it.
pub(super) fn commit_message(lease: &Lease, title: &str) -> String {
    let title: String = title
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!(
        "{}: {}\n\nGoal {}, task {}, attempt {}, by agent {}.",
        lease.task, title, lease.goal, lease.task, lease.attempt, lease.agent
    )
}

/// Commits an attempt's work in its worktree; `None` when it changed nothing.
pub(super) async fn commit(
    isolated: &Isolated,
    lease: &Lease,
    title: &str,
) -> Result<Option<CommitId>, IsolationError> {
    let author = Identity::agent(&lease.agent)?;
    Ok(isolated
        .repo
        .commit(
            &isolated.worktree,
            &author,
            &commit_message(lease, title),
            lease.attempt,
        )
        .await?)
}
