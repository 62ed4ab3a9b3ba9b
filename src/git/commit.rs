//! Committing an attempt's work in its worktree: everything not ignored, as
//! one commit on the commit the worktree started at, with porki's trailers,
//! authored by the agent.
//!
//! The commit is made with plumbing (`write-tree`, `commit-tree`) and its
//! parent is always the worktree's start (and, in a conflict worktree, the
//! commit being merged): a CLI that committed, reset or switched branches on
//! its own changes nothing but the files, so the task is one commit whose
//! diff against its first parent is all of its work.

use std::path::{Path, PathBuf};

use super::GitError;
use super::refs::CommitId;
use super::repo::GoalRepo;
use super::trailers::{Identity, Trailers, message_with_trailers};
use super::worktree::Worktree;

/// The files of a merge in progress, removed once it is committed.
const MERGE_STATE: [&str; 5] = [
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "AUTO_MERGE",
    "MERGE_RR",
];

impl GoalRepo {
    /// Commits every change in `worktree` (`git add -A`) as `author`, with
    /// `message` (subject, blank line, body) and the trailers of this goal,
    /// the worktree's task and `attempt`; `None` when nothing changed. In a
    /// conflict worktree the commit is the merge (two parents), refused while
    /// conflict markers are left.
    pub async fn commit(
        &self,
        worktree: &Worktree,
        author: &Identity,
        message: &str,
        attempt: u32,
    ) -> Result<Option<CommitId>, GitError> {
        let trailers = Trailers {
            goal: self.goal.clone(),
            task: worktree.task.clone(),
            attempt,
        };
        let message = message_with_trailers(message, &trailers)?;
        let dir = &worktree.path;
        self.git.cmd(dir).args(["add", "--all"]).run().await?;
        if worktree.merging.is_some() {
            let files = self.markers_left(worktree).await?;
            if !files.is_empty() {
                return Err(GitError::UnresolvedConflict { files });
            }
        } else if !self.changed_since(dir, &worktree.start).await? {
            return Ok(None);
        }
        let tree = self.git.run(dir, &["write-tree"]).await?;
        let mut parents = vec![&worktree.start];
        parents.extend(worktree.merging.as_ref());
        let commit = self.commit_tree(&tree, &parents, &message, author).await?;
        self.git
            .cmd(dir)
            .args(["update-ref", "-m", "porki: commit the attempt"])
            .args([worktree.branch.full().as_str(), commit.as_str()])
            .run()
            .await?;
        if worktree.merging.is_some()
            && let Some(git_dir) = worktree_git_dir(dir)
        {
            for file in MERGE_STATE {
                let _ = std::fs::remove_file(git_dir.join(file));
            }
        }
        Ok(Some(commit))
    }

    /// Whether the index of the worktree at `dir` differs from `start`.
    async fn changed_since(&self, dir: &Path, start: &CommitId) -> Result<bool, GitError> {
        let out = self
            .git
            .cmd(dir)
            .args(["diff-index", "--cached", "--quiet", start.as_str(), "--"])
            .output()
            .await?;
        match out.code {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(super::runner::failed(
                format!("diff-index --cached --quiet {start}"),
                dir.to_path_buf(),
                &out,
                "",
            )),
        }
    }

    /// The staged files that still hold conflict markers.
    async fn markers_left(&self, worktree: &Worktree) -> Result<Vec<String>, GitError> {
        // --check exits 2 for markers and whitespace errors alike: read its lines.
        let out = self
            .git
            .cmd(&worktree.path)
            .args(["diff", "--cached", "--check", "--no-ext-diff"])
            .arg(worktree.start.as_str())
            .arg("--")
            .output()
            .await?;
        let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.ends_with(": leftover conflict marker"))
            .filter_map(|line| line.rsplitn(3, ':').nth(2).map(str::to_string))
            .collect();
        files.dedup();
        Ok(files)
    }
}

/// The private git folder of the worktree at `dir` (its `.git` file says where).
pub(crate) fn worktree_git_dir(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join(".git")).ok()?;
    let path = PathBuf::from(text.strip_prefix("gitdir: ")?.trim());
    Some(if path.is_absolute() {
        path
    } else {
        dir.join(path)
    })
}
