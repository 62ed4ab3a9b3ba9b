//! Attempt worktrees: one per task, at `$GIT_COMMON_DIR/porki/<goal>/tasks/<task>`
//! (inside the git folder, so no work tree ever sees them as untracked
//! files), on the task's branch, made again at each attempt.

use std::path::{Path, PathBuf};

use super::GitError;
use super::refs::{Branch, CommitId, ref_component};
use super::repo::GoalRepo;

/// A task's worktree, ready for its CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The task.
    pub task: String,
    /// The worktree's top folder.
    pub path: PathBuf,
    /// Where the CLI runs: the worktree's folder matching the workspace's
    /// place in the repository (the top unless the workspace is a subfolder).
    pub cli_dir: PathBuf,
    /// The task branch checked out there.
    pub branch: Branch,
    /// The commit it started at: the first parent of its task's commit.
    pub start: CommitId,
    /// In a conflict worktree, the commit whose merge is started there: the
    /// second parent of its task's commit.
    pub merging: Option<CommitId>,
}

/// The folder of the work tree porki keeps its worktrees in.
pub(crate) const WORKTREES_DIR: &str = ".porki";

impl GoalRepo {
    /// The folder holding every worktree of this goal: `.porki/worktrees/<goal>`
    /// in the work tree (the way Claude Code keeps `.claude/worktrees`), which
    /// the repository's local `info/exclude` hides from `git status`. Not inside
    /// `.git`: claude refuses to write anywhere under a `.git` folder, even in
    /// its own working directory.
    pub(crate) fn goal_dir(&self) -> PathBuf {
        self.top
            .join(WORKTREES_DIR)
            .join("worktrees")
            .join(ref_component(&self.goal))
    }

    /// Where `task`'s worktree is.
    pub fn worktree_path(&self, task: &str) -> PathBuf {
        self.goal_dir().join("tasks").join(ref_component(task))
    }

    /// A fresh worktree for `task` at `start`, on its branch reset there
    /// (replacing what an earlier attempt or a crash left), with the
    /// `.worktreeinclude` files copied in and `--worktree-setup` run.
    pub async fn create_worktree(
        &self,
        task: &str,
        start: &CommitId,
    ) -> Result<Worktree, GitError> {
        let worktree = self.add_worktree(task, start).await?;
        self.prepare(&worktree).await?;
        Ok(worktree)
    }

    /// The worktree at `start` on the task branch, without preparing it.
    pub(crate) async fn add_worktree(
        &self,
        task: &str,
        start: &CommitId,
    ) -> Result<Worktree, GitError> {
        let path = self.worktree_path(task);
        self.remove_worktree(task).await?;
        let branch = Branch::task(&self.goal, task);
        let add = || {
            self.git
                .cmd(&self.top)
                .args(["worktree", "add", "--force", "--quiet", "-B", branch.name()])
                .arg(&path)
                .arg(start.as_str())
                .output()
        };
        let mut out = add().await?;
        if !out.success() {
            // A worktree whose folder a crash or a user removed still holds the branch.
            self.prune_worktrees().await?;
            out = add().await?;
        }
        if !out.success() {
            return Err(super::runner::failed(
                format!("worktree add -B {branch} {} {start}", path.display()),
                self.top.clone(),
                &out,
                "",
            ));
        }
        let cli_dir = path.join(&self.subdir);
        std::fs::create_dir_all(&cli_dir).map_err(|source| GitError::Io {
            action: "create",
            path: cli_dir.clone(),
            source,
        })?;
        Ok(Worktree {
            task: task.to_string(),
            path,
            cli_dir,
            branch,
            start: start.clone(),
            merging: None,
        })
    }

    /// Removes `task`'s worktree, if there is one (its branch stays).
    pub async fn remove_worktree(&self, task: &str) -> Result<(), GitError> {
        remove(self, &self.worktree_path(task)).await
    }

    /// Forgets worktrees whose folders are gone (`git worktree prune`).
    pub async fn prune_worktrees(&self) -> Result<(), GitError> {
        self.git
            .cmd(&self.top)
            .args(["worktree", "prune"])
            .run()
            .await
            .map(drop)
    }
}

/// Removes the worktree at `path`: through git, else (not registered, half
/// made) its folder, then git's record of it.
pub(crate) async fn remove(repo: &GoalRepo, path: &Path) -> Result<(), GitError> {
    if !path.exists() {
        return Ok(());
    }
    let out = repo
        .git
        .cmd(&repo.top)
        .args(["worktree", "remove", "--force", "--force"])
        .arg(path)
        .output()
        .await?;
    if out.success() && !path.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(path).map_err(|source| GitError::Io {
        action: "remove",
        path: path.to_path_buf(),
        source,
    })?;
    repo.prune_worktrees().await
}
