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
        let show = |what: &'static str| {
            self.git
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
        };
        let stat = show("--stat=120").await?;
        let patch = show("--patch").await?;
        Ok(CommitDiff {
            stat: cut(&stat.stdout).trim_end().to_string(),
            patch: cut(&patch.stdout),
            truncated: stat.truncated || patch.truncated,
        })
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
