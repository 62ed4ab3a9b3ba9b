//! The task store: every piece of shared state, behind one trait.
//!
//! [`Store`] is the union of one trait per concern, each defined next to the
//! types it speaks in:
//!
//! | trait | file | what |
//! |---|---|---|
//! | [`TaskStore`] | `tasks.rs` | claim, renew, complete, fail, release, reap; read tasks |
//! | [`ControlStore`] | `control.rs` | operator directives on one task: drop, retry, elevate |
//! | [`TeamStore`] | `team.rs` | review verdicts, approvals and rejections, soft reassignment |
//! | [`GoalStore`] | `goals.rs` | write plans, goal summaries, token use, [events](StoreEvent) |
//! | [`GateStore`] | `gate.rs` | the LLM call slots (`llm:gate`) and their wait queue |
//! | [`AgentStore`] | `agents.rs` | registration, liveness, guard, per-agent values |
//! | [`GcStore`] | `gc.rs` | removing finished goals and dead agents past the retention |
//! | [`MergeStore`] | `merge.rs` | worktree isolation: the goal branch, the merge lock, `.merge` tasks |
//!
//! [`StoreError`] (`error.rs`) is every backend's error; [`keys`] names the Redis
//! keys Rust addresses. Callers hold an `Arc<dyn Store>` and bring the methods into
//! scope with `use crate::store::prelude::*;`.
//!
//! Two backends implement every trait, split the same way (`redis/tasks.rs`,
//! `memory/tasks.rs`, …): [`RedisStore`] is the real one (one Lua script per
//! multi-key change, the scripts in `lua/`, each naming every key it touches),
//! on one Redis (`redis://`) or a Redis Cluster (`redis+cluster://`, `url.rs`);
//! [`MemoryStore`] (`memory://`) is the embedded one for demos and
//! single-process runs. All pass the same conformance suites
//! (`tests/it/store_conformance.rs`, `tests/it/team_conformance/`).

mod agents;
mod control;
mod error;
mod events;
mod gate;
pub mod gc;
mod goals;
pub mod keys;
mod memory;
mod merge;
mod redis;
mod tasks;
mod team;
mod url;

use std::sync::Arc;

pub use self::agents::{
    AGENT_ERRORS_KEPT, AgentDetails, AgentField, AgentRecord, AgentState, AgentStore,
};
pub use self::control::ControlStore;
pub use self::error::StoreError;
pub use self::events::{EVENT_CHANNEL_CAPACITY, EventKind, StoreEvent};
pub use self::gate::{GateStore, SlotAsk};
pub use self::gc::{GcStore, Sweep};
pub use self::goals::{
    Admission, BudgetAsk, CallCost, DEFAULT_MAX_ATTEMPTS, GoalBackoff, GoalSpending, GoalState,
    GoalStatus, GoalStore, PlanError, Reservation, WriteDagOptions, WriteDagOutcome, write_plan,
};
pub use self::memory::MemoryStore;
pub use self::merge::{ConflictOutcome, GoalBranch, MergeLock, MergeLockOutcome, MergeStore};
pub use self::redis::RedisStore;
pub use self::tasks::{
    ClaimOutcome, ClaimScope, CompleteOutcome, FailOutcome, Lease, ReapOutcome, Recovery,
    TaskResult, TaskStore, retry_backoff,
};
pub use self::team::{Rejected, ReviewOutcome, ReviewVerdict, TeamStore};
pub use self::url::{password, redact};

/// Shared state of porki: every concern's trait at once. Every method is atomic
/// with respect to every other caller. Implemented for every type that implements
/// all the parts.
pub trait Store:
    TaskStore + ControlStore + TeamStore + GoalStore + GateStore + AgentStore + GcStore + MergeStore
{
}

impl<S> Store for S where
    S: TaskStore
        + ControlStore
        + TeamStore
        + GoalStore
        + GateStore
        + AgentStore
        + GcStore
        + MergeStore
{
}

/// The store traits, so that one `use crate::store::prelude::*;` brings every
/// store method into scope.
pub mod prelude {
    pub use super::{
        AgentStore, ControlStore, GateStore, GcStore, GoalStore, MergeStore, Store, TaskStore,
        TeamStore,
    };
}

/// Opens the store a URL names: `redis://…`/`rediss://…` (one Redis),
/// `redis+cluster://HOST:PORT[,HOST:PORT…]`/`rediss+cluster://…` (a Redis Cluster
/// through those seed nodes) or `memory://`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url::StoreUrl::parse(url)? {
        url::StoreUrl::Memory => Arc::new(MemoryStore::new()),
        url::StoreUrl::Redis(url) => Arc::new(RedisStore::connect(&url).await?),
        url::StoreUrl::Cluster(_) => Arc::new(RedisStore::connect_cluster(url).await?),
    })
}

/// Checks that `url` names a store [`open`] can open, without connecting.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    url::StoreUrl::parse(url).map(|_| ())
}

/// A fresh random lease or guard token.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
