//! An owned folder's checkout following its goal branch: after the branch
//! moves, `git read-tree -m -u <old> <new>` brings the index and the files
//! along, keeping what a user changed there (or refusing, changing nothing,
//! when a change of the user's is in the way).

use super::GitError;
use super::refs::CommitId;
use super::repo::{GoalRepo, RepoKind};

/// What became of the workspace folder's checkout after the goal branch moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// Nothing to do: the repository is adopted, or the folder has another
    /// branch checked out now.
    Untouched,
    /// The folder's files are the new tip's (plus the user's own changes).
    Updated,
    /// The folder could not follow (a change of the user's in the way): the
    /// branch moved, the files did not. `message` says how to catch up.
    Behind {
        /// git's message and what to do.
        message: String,
    },
}

impl GoalRepo {
    /// Brings an owned folder's checkout from `old` (`None`: nothing checked
    /// out yet) to `new`.
    pub(crate) async fn update_checkout(
        &self,
        old: Option<&CommitId>,
        new: &CommitId,
    ) -> Result<Checkout, GitError> {
        if self.kind != RepoKind::Owned || old == Some(new) {
            return Ok(Checkout::Untouched);
        }
        // Read from the file: one git process less on every merge.
        let head = std::fs::read_to_string(self.git_dir.join("HEAD")).unwrap_or_default();
        if head.trim() != format!("ref: {}", self.branch.full()) {
            return Ok(Checkout::Untouched);
        }
        let old = match old {
            Some(commit) => commit.to_string(),
            None => self.empty_tree().await?,
        };
        let out = self
            .git
            .cmd(&self.top)
            .args(["read-tree", "-m", "-u", old.as_str(), new.as_str()])
            .output()
            .await?;
        if out.success() {
            return Ok(Checkout::Updated);
        }
        Ok(Checkout::Behind {
            message: format!(
                "{}: the goal branch {} moved from {} to {} but the files in {} stayed at {}; to catch up keep your changes (`git diff {old} > mine.patch`), then `git reset --hard {}` and `git apply mine.patch`",
                out.stderr.trim(),
                self.branch,
                &old[..12],
                new.short(),
                self.top.display(),
                &old[..12],
                self.branch,
            ),
        })
    }
}
