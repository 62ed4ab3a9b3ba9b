//! Worktree isolation of one attempt (docs/isolation.md): the goal's
//! repository, opened once per process; before the CLI, whether an earlier
//! attempt's work is merged or committed already, and the attempt's worktree;
//! after a DONE verdict, the commit and its merge through the goal's merge
//! queue, which a completion records or a conflict turns into a `.merge` task.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{MergeConflict, TaskKind};
use crate::git::{CommitId, Git, GitError, GoalRepo, Identity, MergeOutcome, Worktree};
use crate::llm::answer::{TaskAnswer, TaskAnswerStatus};
use crate::store::{GoalBranch, Lease, MergeLockOutcome, Store, StoreError};
use crate::workspace::{ARTIFACTS_DIR, GoalWorkspace};

use super::lease::LeaseKeeper;

/// What git isolation needs, shared by every agent of the process: the git
/// found at start, the settings of `porki run`, and each goal's repository
/// once opened.
#[derive(Debug)]
pub struct GitContext {
    git: Git,
    base_ref: Option<String>,
    remote: Option<String>,
    setup: Option<String>,
    repos: tokio::sync::Mutex<HashMap<String, Opened>>,
}

/// A goal's repository as opened, and whether its branch is in the store yet.
#[derive(Debug)]
struct Opened {
    repo: Arc<GoalRepo>,
    recorded: bool,
}

impl GitContext {
    /// The context of `git`, with `--base-ref`, `--git-remote` and `--worktree-setup`.
    pub fn new(
        git: Git,
        base_ref: Option<String>,
        remote: Option<String>,
        setup: Option<String>,
    ) -> Self {
        Self {
            git,
            base_ref,
            remote,
            setup,
            repos: tokio::sync::Mutex::default(),
        }
    }

    /// `git log --oneline` of `branch` in the repository of `folder`.
    pub async fn log_oneline(
        &self,
        folder: &Path,
        branch: &crate::git::Branch,
    ) -> Result<String, GitError> {
        let log = self
            .git
            .run(
                folder,
                &["log", "--oneline", "--end-of-options", &branch.full(), "--"],
            )
            .await?;
        Ok(format!("{log}\n"))
    }

    /// The repository of `goal` in `workspace` if it exists on this machine:
    /// the one opened already, else opened without making anything.
    async fn existing(
        &self,
        goal: &str,
        workspace: &Path,
    ) -> Result<Option<Arc<GoalRepo>>, GitError> {
        if let Some(opened) = self.repos.lock().await.get(goal) {
            return Ok(Some(opened.repo.clone()));
        }
        let repo = GoalRepo::open(&self.git, workspace, goal, self.remote.as_deref()).await?;
        Ok(repo.map(Arc::new))
    }

    /// Removes the worktree of `goal`'s `task` if this machine has it (the
    /// reaper, for a task whose last attempt died).
    pub async fn remove_worktree(
        &self,
        goal: &str,
        workspace: &Path,
        task: &str,
    ) -> Result<(), GitError> {
        match self.existing(goal, workspace).await? {
            Some(repo) => repo.remove_worktree(task).await,
            None => Ok(()),
        }
    }

    /// `git worktree prune` in the repository of `goal`, if there is one (the
    /// cleanup: forgets worktrees whose folders are gone).
    pub async fn prune_worktrees(&self, goal: &str, workspace: &Path) -> Result<(), GitError> {
        match self.existing(goal, workspace).await? {
            Some(repo) => repo.prune_worktrees().await,
            None => Ok(()),
        }
    }

    /// Opens (or makes) the repository of `goal` in `workspace` and keeps it
    /// for the goal's attempts: `porki run` opens every worktree goal's at
    /// start, so bad input (a folder it cannot write, a missing `--base-ref`, a
    /// rebase in progress, a remote that cannot be reached) stops it there.
    pub async fn open(&self, goal: &str, workspace: &Path) -> Result<(), GitError> {
        let mut repos = self.repos.lock().await;
        self.open_locked(&mut repos, goal, workspace)
            .await
            .map(drop)
    }

    async fn open_locked<'r>(
        &self,
        repos: &'r mut HashMap<String, Opened>,
        goal: &str,
        workspace: &Path,
    ) -> Result<&'r mut Opened, GitError> {
        if !repos.contains_key(goal) {
            let repo = GoalRepo::open_or_init(
                &self.git,
                workspace,
                goal,
                self.base_ref.as_deref(),
                self.remote.as_deref(),
            )
            .await?
            .with_setup(self.setup.clone(), crate::git::DEFAULT_SETUP_TIMEOUT);
            let opened = Opened {
                repo: Arc::new(repo),
                recorded: false,
            };
            repos.insert(goal.to_string(), opened);
        }
        Ok(repos.get_mut(goal).expect("inserted above"))
    }

    /// The repository of `goal` in `workspace`, opened (or made) once; its
    /// branch is recorded with the goal at its first attempt (a goal has no
    /// hash to hold it before its plan is written).
    async fn repo(
        &self,
        store: &dyn Store,
        goal: &str,
        workspace: &Path,
    ) -> Result<Arc<GoalRepo>, IsolationError> {
        // Held while opening: two agents of one goal must not both `git init`.
        let mut repos = self.repos.lock().await;
        let opened = self.open_locked(&mut repos, goal, workspace).await?;
        if !opened.recorded {
            let repository = match &self.remote {
                Some(url) => crate::git::shown_remote(url),
                None => opened.repo.work_tree().display().to_string(),
            };
            let branch = GoalBranch {
                branch: opened.repo.branch().name().to_string(),
                repository,
            };
            store.set_goal_branch(goal, &branch).await?;
            opened.recorded = true;
        }
        Ok(opened.repo.clone())
    }
}

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

/// Longest a merge waits for the goal's merge lock between tries.
const MERGE_LOCK_POLL: Duration = Duration::from_millis(25);

/// How long a merge lock lasts unless released: a merge takes milliseconds;
/// this only bounds the wait behind a holder that died.
const MERGE_LOCK_TTL: Duration = Duration::from_secs(10);

/// Merges retried when the goal branch moved under one (another machine
/// pushed in between).
const MERGE_TRIES: u32 = 5;

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
