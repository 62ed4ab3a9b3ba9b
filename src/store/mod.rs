//! The task store: every piece of shared state, behind one trait.
//!
//! [`RedisStore`] is the real backend (Lua scripts, one per multi-key change);
//! [`MemoryStore`] (`memory://`) is the embedded one for demos and single-process
//! runs. Both pass the same conformance suite (`tests/store_conformance.rs`).

pub mod keys;
mod memory;
mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{Dag, DagError, InvalidId, TaskState, TaskStatus, ValidatedDag};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// Default attempts before a task is FAILED.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store URL is not one porki understands.
    #[error("store URL {url:?} is not valid: {reason} (use redis://HOST:PORT[/DB] or memory://)")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis could not be reached or answered with an error.
    #[error("Redis error: {0} (check that redis-server is running and --redis-url points at it)")]
    Redis(#[from] ::redis::RedisError),
    /// The goal has no plan in the store.
    #[error("goal {goal:?} has no plan in the store: start the orchestrator so it plans the goal")]
    UnknownGoal {
        /// Goal id.
        goal: String,
    },
    /// The goal has no such task.
    #[error("goal {goal:?} has no task {task:?}: check the id with `porki status --goal {goal}`")]
    UnknownTask {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
    },
    /// The goal already has a different plan.
    #[error(
        "goal {goal:?} already has a different plan (fingerprint {existing}): ask for the plan to be replaced to discard it"
    )]
    PlanConflict {
        /// Goal id.
        goal: String,
        /// Fingerprint of the stored plan.
        existing: String,
    },
    /// The lease is no longer held: it expired and was reaped or reclaimed, or the task was dropped.
    #[error("lease on {goal}/{task} (fence {fence}) is no longer held: the result is dropped")]
    LeaseLost {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// The stale fence.
        fence: u64,
    },
    /// The operation does not apply to the task in its current state.
    #[error("task {goal}/{task} is {status}: {action} needs it {needed}")]
    WrongState {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// Its state.
        status: TaskStatus,
        /// What was attempted.
        action: &'static str,
        /// What state that needs.
        needed: &'static str,
    },
    /// A name that cannot be a key part.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// Stored data that porki cannot read.
    #[error(
        "stored data for {what} is unreadable ({detail}): it was written by another program or damaged"
    )]
    Corrupt {
        /// Which key or field.
        what: String,
        /// The parse error.
        detail: String,
    },
}

/// How to write a plan.
#[derive(Debug, Clone)]
pub struct WriteDagOptions {
    /// Goal title kept in `goal:{G}`.
    pub title: String,
    /// Attempts before a task is FAILED.
    pub max_attempts: u32,
    /// Discard a different stored plan instead of refusing.
    pub replace: bool,
    /// Fingerprint of what the plan was made from (instructions, agents), kept to
    /// notice a goal whose instructions changed since it was planned.
    pub source: String,
}

impl Default for WriteDagOptions {
    fn default() -> Self {
        Self {
            title: String::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            replace: false,
            source: String::new(),
        }
    }
}

/// What writing a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDagOutcome {
    /// The goal had no plan; this one was written.
    Created,
    /// The same plan was already stored; nothing changed (the goal resumes).
    Unchanged,
    /// A different plan was discarded and this one written.
    Replaced,
}

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
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A task is now held.
    Claimed(Lease),
    /// Nothing claimable now; `retry_in` is when a backed-off task becomes claimable.
    Empty {
        /// Time until the earliest retry backoff ends, if any task is backing off.
        retry_in: Option<Duration>,
    },
}

/// The result an agent reports on completion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Progress or result text.
    pub progress: String,
    /// Artifacts produced.
    pub artifacts: Vec<String>,
}

/// What completing a task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteOutcome {
    /// Dependents that became READY, sorted.
    pub promoted: Vec<String>,
    /// Every task of the goal is now DONE.
    pub goal_complete: bool,
}

/// What failing a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The task will be READY again after the backoff.
    Retrying {
        /// The backoff applied.
        after: Duration,
    },
    /// Attempts are spent (or the error was not retryable): the task is FAILED.
    Failed,
}

/// What a reap pass did for one goal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapOutcome {
    /// Tasks whose lease was gone, back to READY.
    pub requeued: Vec<String>,
    /// Tasks whose lease was gone at max attempts, now FAILED.
    pub failed: Vec<String>,
}

/// A goal's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalState {
    /// Known but not planned yet.
    Draft,
    /// Planned, tasks in flight.
    Active,
    /// Every task DONE.
    Complete,
    /// A task FAILED and cannot be retried.
    Failed,
}

impl GoalState {
    /// Complete or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, GoalState::Complete | GoalState::Failed)
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => GoalState::Draft,
            "active" => GoalState::Active,
            "complete" => GoalState::Complete,
            "failed" => GoalState::Failed,
            _ => return None,
        })
    }
}

/// A goal's summary (the `goal:{G}` hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalStatus {
    /// Goal id.
    pub goal: String,
    /// Lifecycle state.
    pub state: GoalState,
    /// Title.
    pub title: String,
    /// Plan fingerprint.
    pub fingerprint: String,
    /// Fingerprint of what the plan was made from.
    pub source: String,
    /// Attempts before a task is FAILED.
    pub max_attempts: u32,
    /// Tasks per state.
    pub counts: BTreeMap<TaskStatus, u64>,
    /// Tasks in all.
    pub total: u64,
    /// When the plan was written (ms since the Unix epoch).
    pub created_ms: u64,
    /// When the goal became complete or failed.
    pub finished_ms: Option<u64>,
    /// Why the goal failed before it had a plan, if it did.
    pub last_error: Option<String>,
    /// LLM tokens spent on the goal (input and output), by every process.
    pub tokens: u64,
    /// LLM cost spent on the goal, in USD, where providers report it.
    pub cost_usd: f64,
}

impl GoalStatus {
    /// Tasks in one state.
    pub fn count(&self, status: TaskStatus) -> u64 {
        self.counts.get(&status).copied().unwrap_or(0)
    }
}

/// An agent's registration record (`agent:NAME:registered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// Goal it works on.
    pub goal: String,
    /// Role, if any.
    pub role: Option<String>,
    /// Host and process running it, `host:pid`.
    pub process: String,
    /// `running`, `stopped` or `failed: reason`.
    pub state: String,
}

/// What changed in a goal, as announced on `events:{G}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Tasks became READY (plan written, dependents promoted, lease reaped, release, retry).
    Ready,
    /// A task failed and will be retried after a backoff.
    Retry,
    /// A task became FAILED.
    Failed,
    /// Every task is DONE.
    GoalComplete,
    /// The goal failed.
    GoalFailed,
    /// The event feed reconnected: events may have been missed, so look again.
    Resync,
}

/// A change in a goal; idle agents wake on these instead of polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// Goal id (empty for [`EventKind::Resync`], which concerns every goal).
    pub goal: String,
    /// What happened.
    pub kind: EventKind,
}

impl StoreEvent {
    /// Parses a message of `events:{G}` (`ready`, `retry T`, `goal complete`…).
    ///
    /// A completion that unblocks nothing is not announced: it gives an idle agent
    /// nothing to claim (promotions announce `ready`, the last one `goal complete`).
    pub fn parse(goal: &str, message: &str) -> Option<Self> {
        let kind = match message.split_whitespace().next()? {
            "ready" => EventKind::Ready,
            "retry" => EventKind::Retry,
            "failed" => EventKind::Failed,
            "goal" if message.ends_with("complete") => EventKind::GoalComplete,
            "goal" if message.ends_with("failed") => EventKind::GoalFailed,
            _ => return None,
        };
        Some(Self {
            goal: goal.to_string(),
            kind,
        })
    }

    /// Whether an agent of `goal` should look for work after this event.
    pub fn concerns(&self, goal: &str) -> bool {
        self.kind == EventKind::Resync || self.goal == goal
    }
}

/// Capacity of the in-process event channel; a slow receiver that lags behind
/// gets a `Lagged` error and simply looks again.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// A per-agent value kept at `agent:NAME:FIELD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentField {
    /// How much of the heartbeat file was applied (`lines:sha256`).
    HeartbeatCursor,
    /// Set while a PAUSE is in effect (`drain` or `release`).
    Paused,
    /// The agent's memory snapshot (a JSON list of recent actions).
    Memory,
}

impl AgentField {
    /// The key suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentField::HeartbeatCursor => "heartbeat_cursor",
            AgentField::Paused => "paused",
            AgentField::Memory => "memory",
        }
    }
}

/// Most recent entries kept in `agent:NAME:errors`.
pub const AGENT_ERRORS_KEPT: usize = 100;

/// Shared state of porki. Every method is atomic with respect to every other caller.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a validated plan: tasks BLOCKED or READY by their deps, the READY index, the fingerprint.
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError>;

    /// Claims the highest-priority READY task the agent may run (its role's or a roleless one).
    async fn claim(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Claims `task` if it is READY for this agent (the LLM's pick), else the best
    /// task as [`Store::claim`] does.
    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
        task: &str,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Extends a held lease; `LeaseLost` if it is no longer held.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError>;

    /// Marks the task DONE and promotes dependents whose deps are all DONE; `LeaseLost` if stale.
    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError>;

    /// Completes the held task (as [`Store::complete`]) and, atomically with it, claims
    /// the next task for the same agent (as [`Store::claim`], for `lease.agent` with
    /// `role`): a busy agent needs one round trip per task. `LeaseLost` if the lease is
    /// stale, and nothing is claimed then.
    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError>;

    /// Records a failure: READY again after `backoff` while attempts remain and `retryable`, else FAILED.
    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
    ) -> Result<FailOutcome, StoreError>;

    /// Gives a held task back to READY without counting the attempt.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Returns RUNNING tasks whose lock is gone to READY, or FAILED at max attempts.
    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError>;

    /// Cancels a task that is not DONE: FAILED with `reason`, any lease revoked.
    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError>;

    /// Puts a FAILED task back (READY, or BLOCKED if a dependency is unfinished), attempts reset.
    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError>;

    /// Changes a task's priority (and its place in the READY index).
    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError>;

    /// Adds an LLM call's tokens and cost to the goal's totals; returns the new token total.
    async fn add_usage(&self, goal: &str, tokens: u64, cost_usd: f64) -> Result<u64, StoreError>;

    /// Marks a goal that could not be planned as failed with `reason` (no-op if it has a plan).
    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError>;

    /// The goal's summary, `None` if it has no plan.
    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError>;

    /// Goals with a plan in the store, sorted.
    async fn goals(&self) -> Result<Vec<String>, StoreError>;

    /// One task's state.
    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError>;

    /// Every task of a goal, sorted by id.
    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError>;

    /// The stored plan of a goal (nodes sorted by id), `None` if it has none.
    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError>;

    /// Subscribes to the events of every goal; only events after the call are seen.
    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Takes one of `cap` LLM call slots (`llm:gate`) for `ttl`; false if all are taken.
    /// Expired slots (their holder died) are freed first. `cap` 0 means no cap.
    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError>;

    /// Extends a held slot; false if it expired and was freed.
    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Frees a slot.
    async fn gate_release(&self, token: &str) -> Result<(), StoreError>;

    /// Slots held now (expired ones not counted).
    async fn gate_in_flight(&self) -> Result<u64, StoreError>;

    /// Records an agent in `agents` and `agent:NAME:registered`.
    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError>;

    /// Registered agents, sorted by name.
    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Reads `agent:NAME:FIELD`.
    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError>;

    /// Writes `agent:NAME:FIELD`; `None` deletes it.
    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Writes `agent:NAME:FIELD` only if it still holds `expected` (`None`: absent);
    /// false if someone changed it first.
    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError>;

    /// Adds a problem to `agent:NAME:errors` (newest first, the last 100 kept).
    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError>;

    /// The agent's recorded problems, newest first.
    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError>;

    /// Refreshes `agent:NAME:heartbeat`, which expires after `ttl` without refresh.
    async fn agent_heartbeat(&self, name: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Whether `agent:NAME:heartbeat` is live.
    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError>;

    /// Takes `agent:NAME:active` for `token` if nobody holds it (or `token` already does).
    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends the guard if `token` holds it; false if it was lost.
    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the guard if `token` holds it.
    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError>;
}

/// Opens the store a URL names: `redis://…`/`rediss://…` or `memory://`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => Ok(Arc::new(MemoryStore::new())),
        Some("redis" | "rediss" | "redis+unix" | "unix") => {
            Ok(Arc::new(RedisStore::connect(url).await?))
        }
        _ => Err(StoreError::BadUrl {
            url: url.to_string(),
            reason: "unknown scheme".into(),
        }),
    }
}

/// A fresh random lease or guard token.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Retry backoff for the given attempt: 1 s doubling, capped at 60 s.
pub fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Why a plan could not be stored.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The plan failed validation; nothing was written.
    #[error("invalid plan: {0}")]
    Invalid(#[from] DagError),
    /// The store refused or failed the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates a plan against `node_cap` and writes it; an invalid plan writes nothing.
pub async fn write_plan(
    store: &dyn Store,
    dag: Dag,
    options: &WriteDagOptions,
    node_cap: usize,
) -> Result<(WriteDagOutcome, ValidatedDag), PlanError> {
    let dag = dag.validate_with_cap(node_cap)?;
    let outcome = store.write_dag(&dag, options).await?;
    Ok((outcome, dag))
}
