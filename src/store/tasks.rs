//! Tasks: claiming, holding, finishing and reaping them under leases (DESIGN.md §5).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::GoalState;
use super::StoreError;
use crate::domain::TaskState;

/// A held lease on a task: proof of ownership for renew, complete, fail and release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Goal id.
    pub goal: String,
    /// Task id.
    pub task: String,
    /// Agent holding it.
    pub agent: String,
    /// Random token stored in the lock key.
    pub token: String,
    /// The task's fence at claim time.
    pub fence: u64,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// The task's rank when it was claimed: its LLM calls' place in the gate's
    /// queue (`None`: not ranked, or a lease taken back after a restart).
    #[serde(default)]
    pub rank_ms: Option<u64>,
}

/// Which READY tasks a claim may take: its role's, and, for a builder, those any
/// agent may take. Reviewers and managers take only their role's, so that they
/// review and decide rather than build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimScope<'a> {
    /// The role whose READY tasks the claim may take.
    pub role: Option<&'a str>,
    /// Whether it may also take tasks without a role.
    pub roleless: bool,
}

impl<'a> ClaimScope<'a> {
    /// A builder's claim: its role's tasks and those without a role.
    pub fn builder(role: Option<&'a str>) -> Self {
        Self {
            role,
            roleless: true,
        }
    }

    /// A reviewer's or manager's claim: its role's tasks only.
    pub fn only(role: &'a str) -> Self {
        Self {
            role: Some(role),
            roleless: false,
        }
    }
}

impl<'a> From<Option<&'a str>> for ClaimScope<'a> {
    /// A builder's claim.
    fn from(role: Option<&'a str>) -> Self {
        Self::builder(role)
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A task is now held.
    Claimed(Lease),
    /// Nothing claimable now; `retry_in` is when a backed-off task becomes claimable.
    Empty {
        /// Time until the earliest retry backoff (or the goal's backoff) ends, if any.
        retry_in: Option<Duration>,
        /// The goal's state as the claim saw it: an idle agent of a complete goal
        /// retires without asking again.
        goal_state: GoalState,
    },
}

/// The result an agent reports on completion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Progress or result text.
    pub progress: String,
    /// Artifacts produced.
    pub artifacts: Vec<String>,
    /// Under worktree isolation, the goal branch's commit that holds the work
    /// (its merge, or the tip when it changed nothing): kept on the task with
    /// the completion that makes it DONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// What that commit changed (`git diff --stat`); the store keeps at most
    /// [`crate::domain::merge::DIFFSTAT_CAP`] bytes of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffstat: Option<String>,
}

/// What completing a task did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompleteOutcome {
    /// Dependents that became READY, sorted.
    pub promoted: Vec<String>,
    /// Every task of the goal is now DONE.
    pub goal_complete: bool,
    /// The task needs a person's approval: it is AWAITING_APPROVAL, not DONE,
    /// and nothing was promoted.
    pub awaiting_approval: bool,
}

/// Who takes over a task that fails for good when its failure is recoverable
/// (the work went wrong, not the configuration): one recovery task
/// `<id>.recover`, which the task's dependents then wait for. Only planned work
/// is recovered, and only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery<'a> {
    /// Nobody: the task is FAILED, and the goal with it.
    Never,
    /// Agents of the failed task's role.
    SameRole,
    /// Agents of this role (a manager's).
    Role(&'a str),
}

/// What failing a task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// The task will be READY again after the backoff.
    Retrying {
        /// The backoff applied.
        after: Duration,
    },
    /// Attempts are spent (or the error was not retryable): the task is FAILED.
    Failed,
    /// Attempts are spent: the task is FAILED and a recovery task took its work over.
    Recovering {
        /// The recovery task's id.
        task: String,
    },
}

/// What a reap pass did for one goal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapOutcome {
    /// Tasks whose lease was gone, back to READY.
    pub requeued: Vec<String>,
    /// Tasks whose lease was gone at max attempts, now FAILED.
    pub failed: Vec<String>,
}

/// Retry backoff for the given attempt: 1 s doubling, capped at 60 s.
pub fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The task lifecycle under leases: what agents and the reaper do. Every method
/// is atomic with respect to every other caller.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Claims the highest-priority READY task the agent may run (its role's or a roleless one).
    async fn claim(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        self.claim_preferred(goal, agent, role.into(), ttl, None)
            .await
    }

    /// Claims `preferred` if it is READY for this agent (the LLM's pick), else the
    /// best task within `scope`.
    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        scope: ClaimScope<'_>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Extends a held lease; `LeaseLost` if it is no longer held.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError>;

    /// Marks the task DONE, with the result's commit, and promotes dependents
    /// whose deps are all DONE (or, for a task that needs approval,
    /// AWAITING_APPROVAL); `LeaseLost` if stale. A merge task's completion
    /// also makes the task it merges DONE with the same commit (and promotes
    /// that task's dependents), while that task waits for it.
    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError>;

    /// Completes the held task (as [`TaskStore::complete`]) and, atomically with it, claims
    /// the next task for the same agent (as [`TaskStore::claim_preferred`], for
    /// `lease.agent` within `scope`): a busy agent needs one round trip per task.
    /// `LeaseLost` if the lease is stale, and nothing is claimed then.
    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        scope: ClaimScope<'_>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError>;

    /// Records a failure: READY again after `backoff` while attempts remain and
    /// `retryable`, else FAILED, and then taken over by a recovery task as
    /// `recovery` says (planned work only, once).
    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
        recovery: Recovery<'_>,
    ) -> Result<FailOutcome, StoreError>;

    /// Gives a held task back to READY without counting the attempt.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// A rate or usage limit: gives the held task back (as [`TaskStore::release`])
    /// and makes the whole goal wait `wait` before anything of it is claimed (claims
    /// answer empty with the time left). A later backoff extends the wait, never
    /// shortens it. `reason` is shown in `porki status`.
    async fn back_off(&self, lease: &Lease, wait: Duration, reason: &str)
    -> Result<(), StoreError>;

    /// The live lease `agent` holds on a task of `goal`, if any: what a claim whose
    /// reply was lost (a transport error after `complete_and_claim` was sent)
    /// left behind, found again instead of waiting for the reaper.
    async fn held_by(&self, goal: &str, agent: &str) -> Result<Option<Lease>, StoreError>;

    /// Returns RUNNING tasks whose lock is gone to READY, or FAILED at max attempts.
    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError>;

    /// One task's state.
    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError>;

    /// Every task of a goal, sorted by id.
    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError>;

    /// The rank (ms, 0 when unranked) of the READY task a claim within `scope`
    /// would take now, read from the READY indexes' first entries; `None` when
    /// neither index has one. A hint for queueing at the LLM gate before
    /// claiming: another agent may claim that task first, and a retry still
    /// backing off is not counted.
    async fn best_ready(
        &self,
        goal: &str,
        scope: ClaimScope<'_>,
    ) -> Result<Option<u64>, StoreError>;
}

/// The rank in a READY index score, as lib.lua's `ready_score` builds it:
/// `-(priority * 2^31 + rank)` with `0 <= rank < 2^31`.
pub(crate) fn rank_of_ready_score(score: i64) -> u64 {
    (-score).rem_euclid(1 << 31) as u64
}
