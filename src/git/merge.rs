//! Merging a task's commit into the goal branch without a checkout:
//! `git merge-tree --write-tree` computes the result, a fast-forward when the
//! tip is the commit's ancestor, else a merge commit (`commit-tree`, the tip as
//! first parent), and the branch moves by a compare-and-set (`update-ref new
//! old`, or a push with `--force-with-lease` to the remote), so a merge
//! started from a tip that moved meanwhile changes nothing.
//!
//! The caller serialises merges per goal (the store's merge lock); the
//! compare-and-set is what makes a late one (a holder stopped past its lease)
//! harmless.

use super::GitError;
use super::checkout::Checkout;
use super::refs::CommitId;
use super::remote::Pushed;
use super::repo::GoalRepo;
use super::trailers::{Trailers, message_with_trailers};

/// How a merge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The goal branch is now `commit`.
    Merged {
        /// The goal branch's new tip: the task's commit (fast-forward) or
        /// porki's merge commit.
        commit: CommitId,
        /// Whether it was a fast-forward.
        fast_forward: bool,
        /// What became of an owned folder's checkout.
        checkout: Checkout,
    },
    /// The goal branch already holds the task (an earlier attempt's merge
    /// whose completion was lost) or the commit: nothing was merged.
    AlreadyMerged {
        /// The commit that brought it (or the tip, holding the commit).
        commit: CommitId,
    },
    /// The commit conflicts with the tip; the goal branch is unchanged.
    Conflict {
        /// The files in conflict.
        files: Vec<String>,
        /// The tip it conflicts with.
        tip: CommitId,
    },
    /// The goal branch moved while merging (the compare-and-set or the
    /// push's lease failed); nothing changed: scan again, then merge again.
    TipMoved {
        /// The tip the merge started from.
        expected: CommitId,
    },
}

impl GoalRepo {
    /// Merges `commit` (made by `attempt` of `task`) into the goal branch.
    pub async fn merge(
        &self,
        commit: &CommitId,
        task: &str,
        attempt: u32,
    ) -> Result<MergeOutcome, GitError> {
        let old = self.sync_tip().await?;
        if let Some(merged) = self.scan_to(&old).await?.remove(task) {
            return Ok(MergeOutcome::AlreadyMerged {
                commit: merged.commit,
            });
        }
        let base = self.merge_base(&old, commit).await?;
        if base.as_ref() == Some(commit) {
            return Ok(MergeOutcome::AlreadyMerged { commit: old });
        }
        let fast_forward = base.as_ref() == Some(&old);
        let new = if fast_forward {
            commit.clone()
        } else {
            match self.merge_tree(&old, commit).await? {
                Err(files) => return Ok(MergeOutcome::Conflict { files, tip: old }),
                Ok(tree) => {
                    let trailers = Trailers {
                        goal: self.goal.clone(),
                        task: task.to_string(),
                        attempt,
                    };
                    let subject = format!("Merge task {task} into {}", self.branch);
                    let message = message_with_trailers(&subject, &trailers)?;
                    self.commit_tree(&tree, &[&old, commit], &message, &self.committer.clone())
                        .await?
                }
            }
        };
        // A holder stopped here (SIGSTOP, a long pause) finds the tip moved.
        fail::fail_point!(&format!("git-before-cas:{}", self.goal));
        if !self.move_branch(&new, &old).await? {
            return Ok(MergeOutcome::TipMoved { expected: old });
        }
        self.scan.lock().await.note_descendant(&old, &new);
        let checkout = self.update_checkout(Some(&old), &new).await?;
        Ok(MergeOutcome::Merged {
            commit: new,
            fast_forward,
            checkout,
        })
    }

    /// The best common ancestor of `a` and `b` (`None`: unrelated histories).
    async fn merge_base(&self, a: &CommitId, b: &CommitId) -> Result<Option<CommitId>, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args(["merge-base", a.as_str(), b.as_str()])
            .output()
            .await?;
        match out.code {
            Some(0) => CommitId::parse(&out.text()).map(Some),
            Some(1) => Ok(None),
            _ => Err(super::runner::failed(
                format!("merge-base {a} {b}"),
                self.top.clone(),
                &out,
                "",
            )),
        }
    }

    /// The merged tree of `ours` and `theirs`, or the files in conflict.
    async fn merge_tree(
        &self,
        ours: &CommitId,
        theirs: &CommitId,
    ) -> Result<Result<String, Vec<String>>, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args([
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                "-z",
                ours.as_str(),
                theirs.as_str(),
            ])
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut fields = text.split('\0');
        let tree = fields.next().unwrap_or("").trim().to_string();
        match out.code {
            Some(0) => Ok(Ok(tree)),
            Some(1) => {
                let mut files: Vec<String> = fields
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect();
                files.dedup();
                Ok(Err(files))
            }
            _ => Err(super::runner::failed(
                format!("merge-tree --write-tree {ours} {theirs}"),
                self.top.clone(),
                &out,
                "",
            )),
        }
    }

    /// Moves the goal branch from `old` to `new` if it is still at `old`
    /// (with a remote: there first, then here); `false` when it moved.
    async fn move_branch(&self, new: &CommitId, old: &CommitId) -> Result<bool, GitError> {
        if self.remote.is_some() {
            if self.push(new, Some(old)).await? == Pushed::Moved {
                return Ok(false);
            }
            self.set_tracking(new).await?;
        }
        let out = self
            .git
            .cmd(&self.top)
            .args(["update-ref", "-m"])
            .arg(format!("porki: merge into {}", self.branch))
            .args([self.branch.full().as_str(), new.as_str(), old.as_str()])
            .output()
            .await?;
        if out.success() {
            return Ok(true);
        }
        match self.local_tip().await? {
            // The remote took it: the local branch follows the remote.
            _ if self.remote.is_some() => {
                self.git
                    .cmd(&self.top)
                    .args(["update-ref", self.branch.full().as_str(), new.as_str()])
                    .run()
                    .await?;
                Ok(true)
            }
            Some(now) if &now != old => Ok(false),
            _ => Err(super::runner::failed(
                format!("update-ref {} {new} {old}", self.branch.full()),
                self.top.clone(),
                &out,
                "",
            )),
        }
    }
}
