//! Which tasks the goal branch holds: its commits' trailers, read once each
//! (the scan goes on from the tip it last read) and kept in memory.
//!
//! A task merged by a fast-forward is its own commit on the branch; one merged
//! by a merge commit is that merge commit (porki gives it the task's
//! trailers too), which is newer, so it wins. Commits from before the goal
//! branch's start (porki's `Porki-Start:` commit) are never read, so an old
//! goal of the same id merged into the base does not count.

use std::collections::HashMap;

use super::GitError;
use super::refs::{Branch, CommitId};
use super::repo::GoalRepo;
use super::trailers::Trailers;

/// A task's work on the goal branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The commit on the goal branch that brought it (the task's commit after
    /// a fast-forward, else porki's merge commit).
    pub commit: CommitId,
    /// The attempt whose work it is.
    pub attempt: u32,
}

/// The last scan: the tip it reached and what it found.
#[derive(Debug, Default)]
pub(crate) struct ScanState {
    tip: Option<CommitId>,
    tasks: HashMap<String, Merged>,
    /// A tip known to descend from `tip` (this process moved the branch there).
    descendant: Option<CommitId>,
}

impl ScanState {
    /// Notes that the branch moved from `old` to `new`, its descendant, so
    /// the next scan need not ask git whether the branch was rewritten.
    pub(crate) fn note_descendant(&mut self, old: &CommitId, new: &CommitId) {
        if self.tip.as_ref() == Some(old) {
            self.descendant = Some(new.clone());
        }
    }
}

/// A task branch's commit made by an attempt of that task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCommit {
    /// The commit.
    pub commit: CommitId,
    /// Its trailers (this goal and task).
    pub trailers: Trailers,
}

impl GoalRepo {
    /// Every task merged into the goal branch (fetched from the remote first,
    /// if any), by task id.
    pub async fn merged_tasks(&self) -> Result<HashMap<String, Merged>, GitError> {
        let tip = self.sync_tip().await?;
        self.scan_to(&tip).await
    }

    /// The goal branch's commit that merged `task`, if it did.
    pub async fn merged(&self, task: &str) -> Result<Option<Merged>, GitError> {
        Ok(self.merged_tasks().await?.remove(task))
    }

    /// Scans the goal branch up to `tip` (a commit on it).
    pub(crate) async fn scan_to(
        &self,
        tip: &CommitId,
    ) -> Result<HashMap<String, Merged>, GitError> {
        let mut state = self.scan.lock().await;
        if state.tip.as_ref() == Some(tip) {
            return Ok(state.tasks.clone());
        }
        // The branch was rewritten (a remote reset it): read it all again.
        if let Some(last) = state.tip.clone()
            && state.descendant.as_ref() != Some(tip)
            && !self.is_ancestor(&last, tip).await?
        {
            *state = ScanState::default();
        }
        let mut cmd = self
            .git
            .cmd(&self.top)
            .args(["log", "-z", "--topo-order", "--format=%H%x1f%B"])
            .arg(tip.as_str());
        if let Some(from) = state.tip.as_ref().or(self.start.as_ref()) {
            cmd = cmd.arg(format!("^{from}"));
        }
        let out = cmd.arg("--").run().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut found: HashMap<String, Merged> = HashMap::new();
        for record in text.split('\0').filter(|r| !r.trim().is_empty()) {
            let Some((id, message)) = record.split_once('\x1f') else {
                continue;
            };
            let Some(trailers) = Trailers::parse(message) else {
                continue;
            };
            if trailers.goal != self.goal {
                continue;
            }
            // Newest first: the first seen is the commit that brought the task.
            found.entry(trailers.task).or_insert(Merged {
                commit: CommitId::parse(id.trim())?,
                attempt: trailers.attempt,
            });
        }
        for (task, merged) in found {
            // An earlier scan saw it first: that commit brought it.
            state.tasks.entry(task).or_insert(merged);
        }
        state.tip = Some(tip.clone());
        state.descendant = None;
        Ok(state.tasks.clone())
    }

    /// The commit on `task`'s branch, if an attempt of this task made it
    /// (a branch just started at the goal tip has none).
    pub async fn task_commit(&self, task: &str) -> Result<Option<TaskCommit>, GitError> {
        let branch = Branch::task(&self.goal, task);
        // One process: a missing branch is git's "unknown revision".
        let out = self
            .git
            .cmd(&self.top)
            .args(["log", "-1", "--format=%H%x1f%B", "--end-of-options"])
            .args([branch.full().as_str(), "--"])
            .output()
            .await?;
        if !out.success() {
            if out.stderr.contains("unknown revision") || out.stderr.contains("bad revision") {
                return Ok(None);
            }
            return Err(super::runner::failed(
                format!("log -1 {}", branch.full()),
                self.top.clone(),
                &out,
                "",
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let Some((id, message)) = text.split_once('\x1f') else {
            return Ok(None);
        };
        let commit = CommitId::parse(id)?;
        Ok(Trailers::parse(message)
            .filter(|t| t.goal == self.goal && t.task == task)
            .map(|trailers| TaskCommit { commit, trailers }))
    }

    /// The tasks merged into the goal branch after `since` up to `tip` whose
    /// work changed one of `files`: the other side of a conflict.
    pub async fn tasks_changing(
        &self,
        since: &CommitId,
        tip: &CommitId,
        files: &[String],
    ) -> Result<Vec<String>, GitError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .git
            .cmd(&self.top)
            .args(["log", "-z", "--format=%B", "--end-of-options"])
            .arg(format!("{since}..{tip}"))
            .arg("--")
            .args(files)
            .run()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tasks: Vec<String> = text
            .split('\0')
            .filter_map(Trailers::parse)
            .filter(|t| t.goal == self.goal)
            .map(|t| t.task)
            .collect();
        tasks.sort();
        tasks.dedup();
        Ok(tasks)
    }
}
