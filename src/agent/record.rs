//! Recording what an attempt came to: DONE (claiming the next task in the same
//! round trip while the agent keeps working), a failure, a goal-wide backoff, or
//! the task given back. Each write is retried on store errors until the lease's
//! local deadline, never past it: a finished result is not thrown away for one
//! transient error, and nothing is written for a lease that may have been
//! reclaimed. A completion whose reply was lost is recognised afterwards (the
//! task is DONE under this lease's fence), and the task it claimed is found
//! again (`held_by`) instead of waiting for the reaper.

use std::time::Duration;

use tokio::time::Instant;

use crate::domain::TaskStatus;
use crate::store::{
    AgentField, ClaimOutcome, ClaimScope, FailOutcome, Lease, Recovery, StoreError, TaskResult,
    retry_backoff,
};

use super::execute::{Attempt, Claimed};
use super::isolate::Place;
use super::lease::LeaseKeeper;
use super::prompts::capped;
use super::verdict::Verdict;
use super::worker::Worker;

/// Most recent actions kept as the agent's memory.
pub(super) const MEMORY_LEN: usize = 20;

/// Longest a busy agent's memory snapshot lags behind its memory: a snapshot per
/// task would cost a write per task.
const MEMORY_SAVE_EVERY: Duration = Duration::from_secs(5);

/// Longest action kept in the agent's memory, in bytes.
const MEMORY_ENTRY_CAP: usize = 300;

/// Longest result text stored with a DONE task, in bytes (the files are in the workspace).
pub(super) const PROGRESS_CAP: usize = 8 * 1024;

/// Pause between tries of a write the store failed.
const WRITE_RETRY: Duration = Duration::from_millis(200);

/// How a write tried until the lease's deadline ended.
pub(super) enum Written<T> {
    /// It was applied; its reply.
    Done(T),
    /// The store refused it: the lease is no longer held.
    Lost,
    /// The deadline passed before the store confirmed it.
    Deadline,
}

/// Tries `write` until it answers, the store says the lease is lost, or the
/// lease's deadline passes (each try bounded by the time left).
pub(super) async fn until_deadline<T>(
    keeper: &LeaseKeeper,
    what: &str,
    mut write: impl AsyncFnMut() -> Result<T, StoreError>,
) -> Written<T> {
    loop {
        let left = keeper.remaining();
        if left.is_zero() {
            return Written::Deadline;
        }
        match tokio::time::timeout(left, write()).await {
            Ok(Ok(reply)) => return Written::Done(reply),
            Ok(Err(StoreError::LeaseLost { .. })) => return Written::Lost,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, deadline_in = ?keeper.remaining(), "could not {what}; trying again until the lease's deadline");
                tokio::time::sleep(WRITE_RETRY.min(keeper.remaining())).await;
            }
            Err(_) => return Written::Deadline,
        }
    }
}

impl Worker {
    /// Drops a result its lease no longer covers: says why, and counts it.
    pub(super) fn reject_stale(&self, lease: &Lease, why: &str) {
        tracing::warn!("{why}");
        self.deps
            .settings
            .metrics
            .stale_result_rejected(&lease.goal);
    }

    /// Records an attempt that finished while its lease held; returns the next
    /// task when the completion claimed one.
    pub(super) async fn record(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        attempt: Attempt,
        place: &mut Place,
    ) -> Option<Claimed> {
        match attempt.verdict {
            Verdict::Done(answer) if attempt.kind.decides() => {
                self.settle(lease, keeper, answer).await;
                None
            }
            Verdict::Done(answer) => {
                // Chaos testing (FAILPOINTS=agent-before-complete=5%sleep(3000)): the
                // whole process stalls with a finished result, as under SIGSTOP.
                fail::fail_point!("agent-before-complete");
                let progress = match attempt.summary {
                    Some(summary) => summary,
                    None if answer.notes.is_empty() => answer.outputs.join("\n"),
                    None => answer.notes.clone(),
                };
                let result = TaskResult {
                    progress: capped(&progress, PROGRESS_CAP),
                    artifacts: answer.outputs,
                    ..TaskResult::default()
                };
                self.record_isolated(lease, keeper, result, place).await
            }
            Verdict::Failed { retryable, error } => {
                let recoverable = retryable;
                self.record_failure(lease, keeper, &error, retryable, recoverable)
                    .await;
                None
            }
            Verdict::BackOff { wait, reason } => {
                let store = self.deps.store.clone();
                match until_deadline(keeper, "record the goal's backoff", async || {
                    store.back_off(lease, wait, &reason).await
                })
                .await
                {
                    Written::Done(()) => tracing::warn!(
                        wait = ?wait,
                        %reason,
                        "rate or usage limit: the task is given back and the goal waits"
                    ),
                    Written::Lost => tracing::warn!("rate limited, and the lease was already lost"),
                    Written::Deadline => tracing::warn!(
                        "could not record the goal's backoff before the lease's deadline; the reaper will return the task"
                    ),
                }
                None
            }
        }
    }

    /// Marks the task DONE (with the next claim while the agent keeps working
    /// and takes no slot before claiming).
    pub(super) async fn complete(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        result: &TaskResult,
    ) -> Option<Claimed> {
        let store = self.deps.store.clone();
        let role = self.config.claim_role();
        let scope = ClaimScope {
            role: role.as_deref(),
            roleless: self.config.takes_roleless(),
        };
        let ttl = self.deps.settings.lease_ttl;
        // Slot first: the next claim waits for a slot, so it is not chained here.
        let keep_working = self.keeps_working() && !self.slot_first();
        // A claim made by a try whose reply was lost started no later than the first try.
        let first_sent = Instant::now();
        let written = until_deadline(keeper, "record the completion", async || {
            if keep_working {
                let sent = Instant::now();
                let (done, next) = store.complete_and_claim(lease, result, scope, ttl).await?;
                Ok((done, claimed(next, sent)))
            } else {
                Ok((store.complete(lease, result).await?, None))
            }
        })
        .await;
        let next = match written {
            Written::Done((done, next)) => {
                tracing::info!(promoted = ?done.promoted, goal_complete = done.goal_complete, "task done");
                self.deps.settings.metrics.task_completed(&lease.goal);
                next
            }
            Written::Lost if self.completed_already(lease).await => {
                tracing::info!("task done (an earlier try was applied; its reply was lost)");
                self.deps.settings.metrics.task_completed(&lease.goal);
                match keep_working {
                    true => self.claim_found_again(lease, first_sent).await,
                    false => None,
                }
            }
            Written::Lost => {
                self.reject_stale(lease, "stale completion rejected: the lease was lost and the task reclaimed; this result is dropped");
                return None;
            }
            Written::Deadline => {
                self.reject_stale(lease, "stale completion rejected: the lease's deadline passed before the store recorded it; this result is dropped and the task will run again");
                return None;
            }
        };
        self.remember(format!("completed {}: {}", lease.task, result.progress))
            .await;
        next
    }

    /// Whether the task is DONE under this lease's fence: a completion of ours
    /// that the store applied although its reply never arrived.
    async fn completed_already(&self, lease: &Lease) -> bool {
        matches!(
            self.deps.store.task(&lease.goal, &lease.task).await,
            Ok(Some(task)) if task.status == TaskStatus::Done && task.fence == lease.fence
        )
    }

    /// The task a lost `complete_and_claim` reply claimed for this agent, if any.
    async fn claim_found_again(&self, lease: &Lease, sent: Instant) -> Option<Claimed> {
        match self.deps.store.held_by(&lease.goal, &lease.agent).await {
            Ok(found) => found.map(|lease| {
                tracing::info!(task = %lease.task, "found the task the completion claimed");
                Claimed {
                    lease,
                    sent,
                    slot: None,
                }
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for the task the completion may have claimed; the reaper will return it");
                None
            }
        }
    }

    /// Records a failed attempt: READY again after a backoff, or FAILED (and,
    /// if `recoverable`, taken over by a recovery task).
    pub(super) async fn record_failure(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        error: &str,
        retryable: bool,
        recoverable: bool,
    ) {
        let store = self.deps.store.clone();
        let backoff = retry_backoff(lease.attempt);
        // A failure of the work itself may be recovered once attempts are spent
        // (by a manager, when the goal has one); one no call can get past (no
        // credentials, the budget spent) or that is not about the work (the
        // store's data unreadable) is not.
        let manager = self.config.manager_role.clone();
        let recovery = match (recoverable, manager.as_deref()) {
            (false, _) => Recovery::Never,
            (true, Some(role)) => Recovery::Role(role),
            (true, None) => Recovery::SameRole,
        };
        match until_deadline(keeper, "record the failure", async || {
            store.fail(lease, error, retryable, backoff, recovery).await
        })
        .await
        {
            Written::Done(FailOutcome::Retrying { after }) => {
                tracing::warn!(%error, retry_in = ?after, "task failed; will retry");
                self.deps.settings.metrics.task_failed(&lease.goal, true);
            }
            Written::Done(FailOutcome::Failed) => {
                tracing::error!(%error, "task FAILED");
                self.deps.settings.metrics.task_failed(&lease.goal, false);
            }
            Written::Done(FailOutcome::Recovering { task }) => {
                tracing::error!(%error, recovery = %task, "task FAILED; a recovery task takes its work over");
                self.deps.settings.metrics.task_failed(&lease.goal, false);
            }
            Written::Lost => {
                self.reject_stale(lease, "stale failure rejected: the lease was already lost");
            }
            Written::Deadline => {
                tracing::warn!(
                    %error,
                    "stale failure rejected: the lease's deadline passed before the store recorded it; the reaper will return the task"
                );
                self.deps
                    .settings
                    .metrics
                    .stale_result_rejected(&lease.goal);
            }
        }
        self.remember(format!("failed {}: {error}", lease.task))
            .await;
    }

    /// Gives a held task back (pause, stop, an unreachable store), attempt not counted.
    pub(super) async fn give_back(&mut self, lease: &Lease, keeper: &LeaseKeeper) {
        let store = self.deps.store.clone();
        match until_deadline(keeper, "give the task back", async || {
            store.release(lease).await
        })
        .await
        {
            Written::Done(()) => tracing::info!("task released (agent paused or stopping)"),
            Written::Lost => tracing::warn!(
                "lease lost while the task ran (found when giving it back); its result will not be used"
            ),
            Written::Deadline => {
                tracing::warn!(
                    "could not give the task back before the lease's deadline; the reaper will"
                )
            }
        }
    }

    /// Adds an action (capped) to the bounded memory; the snapshot in
    /// `agent:NAME:memory` follows at most every [`MEMORY_SAVE_EVERY`] while the
    /// agent is busy, and whenever it goes idle or stops ([`Worker::save_memory`]).
    pub(super) async fn remember(&mut self, action: String) {
        if self.memory.len() == MEMORY_LEN {
            self.memory.pop_front();
        }
        self.memory.push_back(capped(&action, MEMORY_ENTRY_CAP));
        self.memory_unsaved = true;
        if self
            .memory_saved
            .is_none_or(|at| at.elapsed() >= MEMORY_SAVE_EVERY)
        {
            self.save_memory().await;
        }
    }

    /// Writes the memory snapshot if it changed since the last one.
    pub(super) async fn save_memory(&mut self) {
        if !self.memory_unsaved {
            return;
        }
        let snapshot = serde_json::to_string(&self.memory).expect("strings serialize");
        match self
            .deps
            .store
            .set_agent_value(&self.config.name, AgentField::Memory, Some(&snapshot))
            .await
        {
            Ok(()) => {
                self.memory_unsaved = false;
                self.memory_saved = Some(Instant::now());
            }
            Err(e) => tracing::debug!(error = %e, "cannot snapshot the agent's memory"),
        }
    }
}

/// The task a completion claimed, with when it was sent.
fn claimed(outcome: ClaimOutcome, sent: Instant) -> Option<Claimed> {
    match outcome {
        ClaimOutcome::Claimed(lease) => Some(Claimed {
            lease,
            sent,
            slot: None,
        }),
        ClaimOutcome::Empty { .. } => None,
    }
}
