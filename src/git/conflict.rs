//! The worktree of a `.merge` task: at the goal branch's tip, with the merge
//! of the conflicting task's commit started (`git merge --no-commit`), so the
//! files hold conflict markers and `MERGE_HEAD` is set; committing it
//! ([`GoalRepo::commit`]) makes the two-parent merge commit.

use super::GitError;
use super::refs::CommitId;
use super::repo::GoalRepo;
use super::worktree::Worktree;

/// A conflict worktree and the files in conflict there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicted {
    /// The worktree (on the merge task's branch).
    pub worktree: Worktree,
    /// The files with conflict markers (none if the tip moved so that the
    /// merge no longer conflicts: the merge is then staged, ready to commit).
    pub files: Vec<String>,
}

impl GoalRepo {
    /// A worktree for the merge task `task` at the goal tip, prepared like any
    /// other, with the merge of `theirs` started in it.
    pub async fn conflict_worktree(
        &self,
        task: &str,
        theirs: &CommitId,
    ) -> Result<Conflicted, GitError> {
        let tip = self.sync_tip().await?;
        let mut worktree = self.add_worktree(task, &tip).await?;
        // Setup first: it needs the files whole, not with markers.
        self.prepare(&worktree).await?;
        let dir = &worktree.path;
        // git merge wants a committer even with --no-commit: porki's, so a
        // machine with no git identity configured can start it too.
        let merge = self
            .git
            .cmd(dir)
            .args(["merge", "--no-ff", "--no-commit", "--no-edit", "--quiet"])
            .arg(theirs.as_str());
        let out = self.identities(merge, &self.committer).output().await?;
        let started = self
            .git
            .cmd(dir)
            .args(["rev-parse", "--quiet", "--verify", "MERGE_HEAD"])
            .output()
            .await?
            .success();
        if !matches!(out.code, Some(0 | 1)) || !started {
            return Err(super::runner::failed(
                format!("merge --no-commit {theirs}"),
                dir.clone(),
                &out,
                "",
            ));
        }
        let listed = self
            .git
            .cmd(dir)
            .args(["diff", "--name-only", "--diff-filter=U", "-z"])
            .run()
            .await?;
        let mut files: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        files.dedup();
        worktree.merging = Some(theirs.clone());
        Ok(Conflicted { worktree, files })
    }
}
