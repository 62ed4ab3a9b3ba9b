//! Removing a finished goal's git leftovers: its worktrees and, unless kept,
//! its task branches. The goal branch stays: it is the result.

use super::GitError;
use super::refs::Branch;
use super::repo::GoalRepo;
use super::worktree::remove;

/// What [`GoalRepo::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Worktrees removed.
    pub worktrees: usize,
    /// Task branches deleted.
    pub branches: usize,
}

impl GoalRepo {
    /// Removes the goal's worktrees and (unless `keep_branches`) its task
    /// branches and the remote's tracking ref.
    pub async fn gc(&self, keep_branches: bool) -> Result<GcReport, GitError> {
        let mut report = GcReport::default();
        let tasks = self.goal_dir().join("tasks");
        if let Ok(entries) = std::fs::read_dir(&tasks) {
            for entry in entries.flatten() {
                remove(self, &entry.path()).await?;
                report.worktrees += 1;
            }
        }
        let goal_dir = self.goal_dir();
        if goal_dir.exists() {
            std::fs::remove_dir_all(&goal_dir).map_err(|source| GitError::Io {
                action: "remove",
                path: goal_dir.clone(),
                source,
            })?;
        }
        self.prune_worktrees().await?;
        if keep_branches {
            return Ok(report);
        }
        let listed = self
            .git
            .cmd(&self.top)
            .args(["for-each-ref", "--format=%(refname)"])
            .arg(format!("refs/heads/{}/", Branch::task_prefix(&self.goal)))
            .arg(format!("refs/porki-remote/{}", self.branch.name()))
            .run()
            .await?;
        let refs: Vec<String> = listed.text().lines().map(str::to_string).collect();
        if refs.is_empty() {
            return Ok(report);
        }
        let script: String = refs.iter().map(|r| format!("delete {r}\n")).collect();
        self.git
            .cmd(&self.top)
            .args(["update-ref", "--stdin"])
            .stdin(script)
            .run()
            .await?;
        report.branches = refs.iter().filter(|r| r.starts_with("refs/heads/")).count();
        Ok(report)
    }
}
