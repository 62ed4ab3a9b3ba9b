//! Operator control: the agent reads its heartbeat file and applies each new line
//! once (`PAUSE`, `DROP-TASK`…), moving the stored cursor before it applies them.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::heartbeat::{
    Cursor, Directive, LineKind, NewLines, StoredCursor, new_lines, parse_line,
};
use crate::store::{AgentField, Lease, StoreError};

use super::worker::Worker;

/// How a PAUSE treats the task being executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PauseMode {
    /// Give the held task back at once (`PAUSE`).
    Release,
    /// Finish the held task first (`PAUSE --drain`).
    Drain,
}

impl PauseMode {
    /// The value kept in `agent:NAME:paused`.
    fn as_str(self) -> &'static str {
        match self {
            PauseMode::Release => "release",
            PauseMode::Drain => "drain",
        }
    }

    /// Reads `agent:NAME:paused`; anything but `drain` releases.
    pub(super) fn parse(stored: &str) -> Self {
        if stored == "drain" {
            PauseMode::Drain
        } else {
            PauseMode::Release
        }
    }
}

/// Why a directive could not be applied; reported once, never fatal.
#[derive(Debug, Error)]
pub(super) enum DirectiveError {
    /// The store refused or failed the change.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// REPARSE for an agent declared without an instruction file.
    #[error("the agent has no instruction file to read again")]
    NoInstructionFile,
    /// REPARSE, but the instruction file is gone.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// REPARSE, but the instruction file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Largest heartbeat or instruction file read by an agent.
const MAX_READ: u64 = 16 * 1024 * 1024;

/// Reads a text file off the actor thread's blocking path (`tokio::fs`), lossily
/// decoded; `None` if it does not exist.
async fn read_bounded(path: &Path) -> std::io::Result<Option<String>> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.len() > MAX_READ => Err(std::io::Error::other(format!(
            "the file is {} bytes, more than the {MAX_READ}-byte limit: trim it",
            meta.len()
        ))),
        Ok(_) => Ok(Some(
            String::from_utf8_lossy(&tokio::fs::read(path).await?).into_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Worker {
    /// Reads the heartbeat file and applies its new lines once each; returns
    /// whether `held` (the task being executed) was dropped.
    pub(super) async fn apply_heartbeat(&mut self, held: Option<&Lease>) -> bool {
        let Some(path) = self.config.heartbeat.clone() else {
            return false;
        };
        let store = self.deps.store.clone();
        let name = self.config.name.clone();
        let text = match read_bounded(&path).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                // Not there yet: whatever is written into it later is new.
                self.heartbeat_cursor.get_or_insert_with(Cursor::default);
                return false;
            }
            Err(e) => {
                self.report(&format!(
                    "cannot read heartbeat file {}: {e}",
                    path.display()
                ))
                .await;
                return false;
            }
        };
        let stored = match store.agent_value(&name, AgentField::HeartbeatCursor).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot read the heartbeat cursor; trying again on the next change");
                self.heartbeat.notify_one();
                return false;
            }
        };
        // The file as the cursor records it: absolute, so that `porki gc`, run
        // from anywhere, can tell whether it still exists.
        let file = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let stored_cursor = stored
            .as_deref()
            .and_then(StoredCursor::parse)
            // A position in another file (the agent's heartbeat file was changed)
            // says nothing about this one.
            .filter(|c| c.is_in(&file))
            .map(|c| c.cursor);
        let has_stored = stored_cursor.is_some();
        let (cursor, history) = match stored_cursor.or_else(|| self.heartbeat_cursor.clone()) {
            Some(cursor) => (cursor, None),
            // Nothing stored (a first start, a new Redis, `memory://`): the lines
            // already in the file were written for earlier runs, so reading starts
            // at its end. (A file created after the first read starts at its top:
            // the cursor kept in memory says so.)
            None => {
                let end = new_lines(&text, &Cursor::default()).next().clone();
                let skipped = end.lines;
                (end, Some(skipped))
            }
        };
        let new = new_lines(&text, &cursor);
        if new.next() == &cursor && has_stored {
            self.heartbeat_cursor = Some(cursor);
            return false;
        }
        if matches!(new, NewLines::Replaced { .. }) {
            tracing::warn!(agent = %name, path = %path.display(), "heartbeat file was truncated or rewritten; applying only lines past the previous end");
        }
        // The cursor moves before the directives apply: a crash in between loses
        // a directive (append it again) rather than replaying a DROP-TASK.
        let next = StoredCursor::new(new.next().clone(), &file).to_string();
        match store
            .swap_agent_value(&name, AgentField::HeartbeatCursor, stored.as_deref(), &next)
            .await
        {
            Ok(true) => {
                self.heartbeat_cursor = Some(new.next().clone());
                if let Some(skipped) = history.filter(|n| *n > 0) {
                    tracing::info!(agent = %name, path = %path.display(), lines = skipped, "heartbeat file has lines from before this agent first started; they are history and are not applied (append new directives below them)");
                }
            }
            Ok(false) => {
                // Someone else moved the cursor (an earlier run of this agent): read again.
                self.heartbeat.notify_one();
                return false;
            }
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot store the heartbeat cursor; trying again on the next change");
                self.heartbeat.notify_one();
                return false;
            }
        }
        let (start, lines) = new.lines();
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut dropped_held = false;
        for (offset, line) in lines.iter().enumerate() {
            let number = start + offset as u64;
            match parse_line(line) {
                LineKind::Blank => {}
                LineKind::Malformed(problem) => {
                    self.report(&format!("{}:{number}: {problem}", path.display()))
                        .await;
                }
                LineKind::Directive(directive) => {
                    tracing::info!(agent = %name, line = number, %directive, "heartbeat directive");
                    match self.apply(&directive).await {
                        Ok(dropped) => {
                            dropped_held |= held.is_some_and(|l| Some(&l.task) == dropped);
                        }
                        Err(problem) => {
                            self.report(&format!(
                                "{}:{number}: {directive}: {problem}",
                                path.display()
                            ))
                            .await
                        }
                    }
                }
            }
        }
        dropped_held
    }

    /// Applies one directive; returns the id of the task it dropped, if it did.
    async fn apply<'d>(
        &mut self,
        directive: &'d Directive,
    ) -> Result<Option<&'d String>, DirectiveError> {
        let store = self.deps.store.clone();
        let (name, goal) = (self.config.name.clone(), self.config.goal.clone());
        match directive {
            Directive::Pause { drain } => {
                let mode = if *drain {
                    PauseMode::Drain
                } else {
                    PauseMode::Release
                };
                self.paused = Some(mode);
                store
                    .set_agent_value(&name, AgentField::Paused, Some(mode.as_str()))
                    .await?;
            }
            Directive::Resume => {
                self.paused = None;
                store
                    .set_agent_value(&name, AgentField::Paused, None)
                    .await?;
            }
            Directive::DropTask { task } => {
                store
                    .drop_task(&goal, task, "dropped by the operator (DROP-TASK)")
                    .await?;
                return Ok(Some(task));
            }
            Directive::RetryTask { task } => {
                store.retry_task(&goal, task).await?;
            }
            Directive::Elevate { task, priority } => store.elevate(&goal, task, *priority).await?,
            Directive::ApproveTask { task } => {
                let done = store.approve(&goal, task).await?;
                tracing::info!(agent = %name, %task, promoted = ?done.promoted, "task approved");
            }
            Directive::RejectTask { task, reason } => {
                let rejected = store.reject(&goal, task, reason).await?;
                tracing::info!(agent = %name, %task, fix = %rejected.fix, "task rejected; a fix task carries the reason");
            }
            Directive::Reparse => {
                let path = self
                    .config
                    .instructions_path
                    .clone()
                    .ok_or(DirectiveError::NoInstructionFile)?;
                match read_bounded(&path).await {
                    Ok(Some(text)) => self.config.instructions = text,
                    Ok(None) => return Err(DirectiveError::Missing { path }),
                    Err(source) => return Err(DirectiveError::Read { path, source }),
                }
            }
            Directive::FlushMemory => {
                self.memory.clear();
                self.memory_unsaved = false;
                store
                    .set_agent_value(&name, AgentField::Memory, None)
                    .await?;
            }
            Directive::Stop => self.stop_directive = true,
        }
        Ok(None)
    }

    /// Reports a heartbeat problem once: in the log and in `agent:NAME:errors`.
    pub(super) async fn report(&self, problem: &str) {
        tracing::warn!(agent = %self.config.name, "{problem}");
        if let Err(e) = self
            .deps
            .store
            .push_agent_error(&self.config.name, problem)
            .await
        {
            tracing::debug!(error = %e, "cannot record the agent error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_pause_mode_reads_back() {
        for mode in [PauseMode::Release, PauseMode::Drain] {
            assert_eq!(PauseMode::parse(mode.as_str()), mode);
        }
        assert_eq!(PauseMode::parse("anything"), PauseMode::Release);
    }
}
