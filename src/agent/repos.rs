//! The git side of worktree isolation shared by a process's agents
//! (docs/isolation.md): the git found at start, `porki run`'s git settings,
//! and each goal's repository, opened once (at start for the goals porki run
//! was given, so bad input stops it there).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::git::{Git, GitError, GoalRepo};
use crate::store::{GoalBranch, Store};

use super::isolate::IsolationError;

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
    pub(super) async fn repo(
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
