//! A commit's changes against its first parent, for a review's prompt and the
//! task's stored diffstat: the stat, then the patch, each capped.

use super::GitError;
use super::refs::CommitId;
use super::repo::GoalRepo;

/// A commit's diff against its first parent (the empty tree for a first commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitDiff {
    /// `git diff --stat`: one line per file, then the summary line.
    pub stat: String,
    /// The patch.
    pub patch: String,
    /// Whether the stat or the patch was cut at the cap.
    pub truncated: bool,
}

impl CommitDiff {
    /// The stat's summary line (`2 files changed, 5 insertions(+)`), empty
    /// when nothing changed.
    pub fn summary(&self) -> &str {
        self.stat.lines().last().unwrap_or("").trim()
    }
}

impl GoalRepo {
    /// `commit`'s diff against its first parent, the stat and the patch each
    /// at most `max_bytes` long.
    pub async fn commit_diff(
        &self,
        commit: &CommitId,
        max_bytes: usize,
    ) -> Result<CommitDiff, GitError> {
        let (stat, stat_cut) = self.show(commit, "--stat=120", max_bytes).await?;
        let (patch, patch_cut) = self.show(commit, "--patch", max_bytes).await?;
        Ok(CommitDiff {
            stat: stat.trim_end().to_string(),
            patch,
            truncated: stat_cut || patch_cut,
        })
    }

    /// `commit`'s `git diff --stat` against its first parent, at most
    /// `max_bytes` long (what a DONE task keeps).
    pub async fn commit_stat(
        &self,
        commit: &CommitId,
        max_bytes: usize,
    ) -> Result<String, GitError> {
        Ok(self
            .show(commit, "--stat=120", max_bytes)
            .await?
            .0
            .trim_end()
            .to_string())
    }

    /// `git show` of `commit`'s diff in one form, capped; whether it was cut.
    async fn show(
        &self,
        commit: &CommitId,
        what: &str,
        max_bytes: usize,
    ) -> Result<(String, bool), GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args([
                "show",
                "--format=",
                "--diff-merges=first-parent",
                "--no-ext-diff",
                "--no-textconv",
                what,
                commit.as_str(),
                "--",
            ])
            .capped(max_bytes)
            .run()
            .await?;
        Ok((cut(&out.stdout), out.truncated))
    }
}

/// Text of `bytes`, dropping a character cut in half at the end.
fn cut(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
