//! Goals: their plans, summaries and LLM spending, and the events that announce
//! what changed in them.
//!
//! What is about the goal and not about its plan outlives a replaced plan: the
//! LLM spending (`tokens`, `cost_usd`, the reservations of calls in flight, and
//! under a money budget `priced_calls`, `priced_usd`, `cost_unknown`),
//! a rate or usage limit's wait (`backoff_until`, `backoff_reason`) and the goal
//! branch (`branch`, `repository`).
//! Everything else in `goal:{G}` describes the plan (its fingerprint and source,
//! title, attempts, counts, times, `last_error`) and is written anew with it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{StoreError, StoreEvent};
use crate::domain::rank::StoredRank;
use crate::domain::{Dag, DagError, TaskStatus, ValidatedDag};

/// Default attempts before a task is FAILED.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How to write a plan.
#[derive(Debug, Clone)]
pub struct WriteDagOptions {
    /// Goal title kept in `goal:{G}`.
    pub title: String,
    /// Attempts before a task is FAILED.
    pub max_attempts: u32,
    /// The fingerprint of the stored plan this write may replace: the one the
    /// writer read when it decided to plan again. A different stored plan is
    /// replaced only while it is still this one (compare-and-set), so that of two
    /// processes replanning at once the second resumes the first's plan instead of
    /// wiping its progress. `None`: a different stored plan is never replaced.
    pub expected: Option<String>,
    /// Fingerprint of what the plan was made from (instructions, agents), kept to
    /// notice a goal whose instructions changed since it was planned.
    pub source: String,
    /// Whether claims order the goal's READY tasks of one priority by rank
    /// (issue 21); if not, by id alone, and no task is ranked.
    pub ranked: bool,
}

impl Default for WriteDagOptions {
    fn default() -> Self {
        Self {
            title: String::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            expected: None,
            source: String::new(),
            ranked: true,
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
    /// Every state, in lifecycle order.
    pub const ALL: [GoalState; 4] = [
        GoalState::Draft,
        GoalState::Active,
        GoalState::Complete,
        GoalState::Failed,
    ];

    /// The name in the store (`goal:{G}`'s `status`), in reports and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GoalState::Draft => "draft",
            GoalState::Active => "active",
            GoalState::Complete => "complete",
            GoalState::Failed => "failed",
        }
    }

    /// Complete or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, GoalState::Complete | GoalState::Failed)
    }

    /// Reads the `status` field of `goal:{G}`.
    pub(super) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
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
    /// FAILED tasks whose work a recovery task took over: they do not fail the
    /// goal, and the goal completes without them.
    pub superseded: u64,
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
    /// The last wait a rate or usage limit imposed on the whole goal (it may be over).
    pub backoff: Option<GoalBackoff>,
    /// READY tasks claimable now, by the role they need (`""`: any agent of the
    /// goal); roles without one are left out.
    pub ready_by_role: BTreeMap<String, u64>,
    /// Under worktree isolation, the goal branch and its repository
    /// ([`super::MergeStore::set_goal_branch`]).
    pub branch: Option<super::GoalBranch>,
    /// Whether its READY tasks are claimed by rank ([`WriteDagOptions::ranked`]).
    pub ranked: bool,
}

/// A wait imposed on a whole goal by a rate or usage limit ([`crate::store::TaskStore::back_off`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalBackoff {
    /// Until when nothing of the goal is claimed (ms since the Unix epoch).
    pub until_ms: u64,
    /// Why (the provider's message).
    pub reason: String,
}

impl GoalBackoff {
    /// The time left at `now_ms`, `None` once it is over.
    pub fn remaining_ms(&self, now_ms: u64) -> Option<u64> {
        self.until_ms.checked_sub(now_ms).filter(|&ms| ms > 0)
    }
}

impl GoalStatus {
    /// Tasks in one state.
    pub fn count(&self, status: TaskStatus) -> u64 {
        self.counts.get(&status).copied().unwrap_or(0)
    }
}

/// What reserving tokens of a goal's budget found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: the call may go ahead, and must be settled.
    Reserved,
    /// Nothing left: the tokens spent and reserved by calls in flight reach the budget.
    Spent {
        /// Tokens spent.
        spent: u64,
        /// Tokens reserved by calls in flight.
        reserved: u64,
    },
}

/// What a goal's calls under a money budget told of their cost
/// ([`GoalStore::goal_spending`]); kept apart from [`GoalStatus`], whose
/// literal the dashboard's tests spell out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GoalSpending {
    /// Calls whose provider reported no cost: not in `cost_usd`, so that is a
    /// floor, never a silent zero.
    pub cost_unknown: u64,
    /// Calls whose provider reported their cost.
    pub priced_calls: u64,
    /// What those calls cost, in USD (their mean is the next call's reservation).
    pub priced_usd: f64,
}

/// What one LLM call asks of its goal's budgets ([`GoalStore::reserve_budget`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetAsk {
    /// The call's estimated tokens.
    pub tokens: u64,
    /// Tokens the goal may spend; `None`: no limit.
    pub token_budget: Option<u64>,
    /// USD the goal may spend; `None`: no limit.
    pub usd_budget: Option<f64>,
    /// What a call is reserved in USD before any call of the goal reported its
    /// cost (after that: the mean of those that did).
    pub usd_default: f64,
    /// How long the reservation lives unless settled.
    pub ttl: Duration,
}

/// What reserving a call's share of a goal's budgets found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Reserved: the call may go ahead, and must be settled.
    Reserved,
    /// Refused by the token budget: tokens spent and reserved reach it.
    Tokens {
        /// Tokens spent.
        spent: u64,
        /// Tokens reserved by calls in flight.
        reserved: u64,
    },
    /// Refused by the money budget: spent, reserved and this call's estimate pass it.
    Money {
        /// USD spent.
        spent: f64,
        /// USD reserved by calls in flight.
        reserved: f64,
        /// What this call would have reserved.
        estimate: f64,
    },
}

/// What a settled call cost, as far as porki knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallCost {
    /// No money budget: added to `cost_usd` only (0 if unknown).
    Untracked(f64),
    /// Under a money budget, the provider reported this.
    Priced(f64),
    /// Under a money budget, the provider reported nothing: counted in `cost_unknown`.
    Unknown,
}

/// Goals as a whole: what the planner writes and `porki status` reads. Every
/// method is atomic with respect to every other caller.
#[async_trait]
pub trait GoalStore: Send + Sync + 'static {
    /// Writes a validated plan: tasks BLOCKED or READY by their deps, the READY index, the fingerprint.
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError>;

    /// Stores refreshed ranks of a running goal's tasks (see [`crate::ranker`])
    /// and its typical task, re-scoring READY tasks; nothing if the goal was
    /// replanned since (its fingerprint is no longer `fingerprint`). Tasks that
    /// no longer exist are skipped. Returns how many tasks were written.
    async fn rerank(
        &self,
        goal: &str,
        fingerprint: &str,
        typical_ms: u64,
        ranks: &BTreeMap<String, StoredRank>,
    ) -> Result<usize, StoreError>;

    /// Adds an LLM call's tokens and cost to the goal's totals; returns the new
    /// token total (a settlement without a reservation).
    async fn add_usage(&self, goal: &str, tokens: u64, cost_usd: f64) -> Result<u64, StoreError> {
        self.settle_tokens(goal, "", tokens, cost_usd).await
    }

    /// Reserves `estimate` tokens of the goal's `budget` for a call about to be
    /// made, under the id `reservation`, unless the tokens spent and reserved by
    /// calls in flight already reach the budget. One atomic step on `goal:{G}`, so
    /// concurrent calls overshoot the budget by at most the last admitted call's
    /// tokens. A reservation not settled within `ttl` (its process died between
    /// reserving and settling) expires and stops counting.
    async fn reserve_tokens(
        &self,
        goal: &str,
        reservation: &str,
        estimate: u64,
        budget: u64,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let ask = BudgetAsk {
            tokens: estimate,
            token_budget: Some(budget),
            usd_budget: None,
            usd_default: 0.0,
            ttl,
        };
        Ok(match self.reserve_budget(goal, reservation, &ask).await? {
            Admission::Tokens { spent, reserved } => Reservation::Spent { spent, reserved },
            Admission::Reserved | Admission::Money { .. } => Reservation::Reserved,
        })
    }

    /// Reserves a call's share of the goal's token and money budgets in one
    /// atomic step on `goal:{G}` (see [`GoalStore::reserve_tokens`] for tokens).
    /// Money is admitted while what is spent, reserved by calls in flight and this
    /// call's estimate stay within the budget, so concurrent calls pass it only
    /// by what their real costs exceed their estimates.
    async fn reserve_budget(
        &self,
        goal: &str,
        reservation: &str,
        ask: &BudgetAsk,
    ) -> Result<Admission, StoreError>;

    /// Settles a call: drops its reservation (`""`: it had none) and adds its
    /// actual tokens and cost to the goal's totals in one atomic step; returns
    /// the new token total.
    async fn settle_tokens(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost_usd: f64,
    ) -> Result<u64, StoreError> {
        self.settle_budget(goal, reservation, tokens, CallCost::Untracked(cost_usd))
            .await
    }

    /// [`GoalStore::settle_tokens`] with what porki knows of the cost: under a
    /// money budget a priced call also counts towards the mean a call reserves,
    /// and one without a price is counted in `cost_unknown`.
    async fn settle_budget(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost: CallCost,
    ) -> Result<u64, StoreError>;

    /// What the goal's calls under a money budget told of their cost (all zero
    /// if none was made).
    async fn goal_spending(&self, goal: &str) -> Result<GoalSpending, StoreError>;

    /// Marks a goal that could not be planned as failed with `reason` (no-op if it has a plan).
    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError>;

    /// The goal's summary, `None` if the store keeps nothing of it (a goal that
    /// only spent tokens, with no plan, is a draft).
    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError>;

    /// Every goal the store keeps something of, sorted: planned, failed to plan,
    /// or a draft (LLM calls spent tokens on it, and it has no plan: not yet, or
    /// no more after gc removed it), so that gc finds each.
    async fn goals(&self) -> Result<Vec<String>, StoreError>;

    /// The stored plan of a goal (nodes sorted by id), `None` if it has none.
    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError>;

    /// Subscribes to the events of every goal; only events after the call are seen.
    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;
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
    store: &dyn super::Store,
    dag: Dag,
    options: &WriteDagOptions,
    node_cap: usize,
) -> Result<(WriteDagOutcome, ValidatedDag), PlanError> {
    let dag = dag.validate_with_cap(node_cap)?;
    let outcome = store.write_dag(&dag, options).await?;
    Ok((outcome, dag))
}
