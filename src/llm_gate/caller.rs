//! [`LlmCaller`]: one LLM call through the gate, within the goal's token and
//! money budgets (reserved before the call, settled after it), its usage added
//! to the goal's totals and the process's metrics.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use super::{GateError, GateHandle, SlotPermit, Urgency};
use crate::llm::FailureKind;
use crate::store::prelude::*;
use crate::store::{Admission, BudgetAsk, CallCost, StoreError, new_token};

/// Why a gated LLM call failed.
#[derive(Debug, Error)]
pub enum CallError {
    /// No slot was given.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The provider failed.
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    /// The goal's token budget is spent: the call was not made.
    #[error(
        "goal {goal} has spent {spent} tokens of its {budget}-token budget (--goal-token-budget): raise the budget to continue"
    )]
    BudgetSpent {
        /// Goal id.
        goal: String,
        /// Tokens spent.
        spent: u64,
        /// The budget.
        budget: u64,
    },
    /// What is left of the goal's token budget is reserved by calls in flight:
    /// the call was not made, and may be once they settle.
    #[error(
        "goal {goal} has spent {spent} tokens of its {budget}-token budget and calls in flight reserved the other {reserved} (--goal-token-budget): waiting for them to finish"
    )]
    BudgetReserved {
        /// Goal id.
        goal: String,
        /// Tokens spent.
        spent: u64,
        /// Tokens reserved by calls in flight.
        reserved: u64,
        /// The budget.
        budget: u64,
    },
    /// The goal's money budget cannot pay for another call: the call was not made.
    #[error(
        "goal {goal} has spent ${spent:.4} of its ${budget:.4} budget and its next call is reserved ${estimate:.4}, which would pass it (--goal-budget-usd): raise --goal-budget-usd and run the goal again"
    )]
    MoneySpent {
        /// Goal id.
        goal: String,
        /// USD spent.
        spent: f64,
        /// What the call would have reserved.
        estimate: f64,
        /// The budget.
        budget: f64,
    },
    /// What is left of the goal's money budget is reserved by calls in flight:
    /// the call was not made, and may be once they settle.
    #[error(
        "goal {goal} has spent ${spent:.4} of its ${budget:.4} budget and calls in flight reserved ${reserved:.4} (--goal-budget-usd): waiting for them to finish"
    )]
    MoneyReserved {
        /// Goal id.
        goal: String,
        /// USD spent.
        spent: f64,
        /// USD reserved by calls in flight.
        reserved: f64,
        /// The budget.
        budget: f64,
    },
    /// The store could not be read for the budget.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallError {
    /// What the failure means: the provider's own kind; a spent budget (tokens or
    /// money) fails the goal like refused credentials (no call of it can
    /// succeed); a budget reserved by calls in flight makes the goal wait like a
    /// usage limit (they may leave some of it); the gate and the store are
    /// passing faults.
    pub fn kind(&self) -> FailureKind {
        match self {
            CallError::Llm(e) => e.kind(),
            CallError::BudgetSpent { .. } | CallError::MoneySpent { .. } => FailureKind::Fatal,
            CallError::BudgetReserved { .. } | CallError::MoneyReserved { .. } => {
                FailureKind::RateLimited { reset: None }
            }
            CallError::Gate(_) | CallError::Store(_) => FailureKind::Transient,
        }
    }
}

/// Where a call's gate slot comes from.
#[derive(Debug)]
pub enum Slot {
    /// Wait for one in the gate's queue, at `Urgency`'s place.
    Queue(Urgency),
    /// One the caller already holds (`--slot-before-claim`: taken before the
    /// task was claimed); it is freed when the call ends.
    Held(SlotPermit),
}

impl From<Urgency> for Slot {
    fn from(urgency: Urgency) -> Self {
        Slot::Queue(urgency)
    }
}

/// Makes LLM calls for one process: through the gate, within the goal's token
/// budget, adding each call's usage to the goal's totals in the store.
#[derive(Clone)]
pub struct LlmCaller {
    /// The gate.
    pub gate: GateHandle,
    /// The provider.
    pub provider: Arc<dyn crate::llm::LlmProvider>,
    /// The store, for usage totals.
    pub store: Arc<dyn Store>,
    /// Tokens a goal may spend; `None`: no limit.
    pub goal_token_budget: Option<u64>,
    /// USD a goal may spend (`--goal-budget-usd`); `None`: no limit.
    pub goal_budget_usd: Option<f64>,
    /// The process's metrics (calls, latency, tokens, cost, gate wait).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Usage of calls without a budget, written to the goals' totals in batches.
    pub usage: crate::usage::UsageTally,
}

impl LlmCaller {
    /// Whether this process's calls take gate slots: a capped gate and a
    /// provider that calls a model.
    pub fn takes_slots(&self) -> bool {
        self.gate.cap > 0 && !self.provider.is_local()
    }

    /// Waits for a gate slot at `urgency`'s place, counting the wait in the
    /// metrics, for a call to be made later with [`Slot::Held`].
    pub async fn slot(&self, urgency: Urgency) -> Result<SlotPermit, GateError> {
        let waiting = Instant::now();
        let permit = self.gate.acquire(urgency).await;
        self.metrics.gate_waited(waiting.elapsed());
        permit
    }

    /// Makes one call for `goal` with `slot` (an [`Urgency`]: waiting for a slot
    /// at its place in the gate's queue), logging phase, provider, duration and
    /// tokens.
    #[tracing::instrument(name = "llm_call", skip_all, fields(goal = %goal, phase = %request.phase, provider = self.provider.name()))]
    pub async fn call(
        &self,
        goal: &str,
        slot: impl Into<Slot>,
        request: &crate::llm::LlmRequest,
    ) -> Result<crate::llm::LlmResponse, CallError> {
        let slot = slot.into();
        let mut reserved = match (self.goal_token_budget, self.goal_budget_usd) {
            (None, None) => None,
            _ => Some(self.reserve(goal, request).await?),
        };
        // A local provider calls no model: nothing to cap, no slot to take.
        let permit = match slot {
            _ if self.provider.is_local() => None,
            Slot::Held(permit) => Some(permit),
            Slot::Queue(urgency) => Some(self.slot(urgency).await?),
        };
        let started = Instant::now();
        let result = self.provider.call(request).await;
        drop(permit);
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        self.metrics
            .llm_call(self.provider.name(), request.phase, &result, elapsed);
        match &result {
            Ok(response) => {
                let usage = &response.usage;
                tracing::info!(
                    elapsed_ms,
                    input_tokens = usage.input_tokens,
                    output_tokens = usage.output_tokens,
                    cost_usd = usage.cost_usd,
                    "LLM call done"
                );
            }
            Err(e) => tracing::warn!(
                elapsed_ms,
                error = %e,
                "LLM call failed"
            ),
        }
        // One atomic step: the reservation goes, what the call used is added (a
        // failed call used nothing porki can count). Without a budget, usage is
        // written in batches.
        let usage = result.as_ref().map(|r| r.usage).unwrap_or_default();
        let tokens = usage.input_tokens + usage.output_tokens;
        let known = usage.cost_usd.filter(|c| c.is_finite() && *c >= 0.0);
        // Under a money budget a call whose cost is not known is counted as such
        // (never a silent $0); a failed call cost nothing porki can count.
        let cost = match (self.goal_budget_usd, known) {
            (None, _) => CallCost::Untracked(known.unwrap_or(0.0)),
            (Some(_), Some(usd)) => CallCost::Priced(usd),
            (Some(_), None) if result.is_err() => CallCost::Untracked(0.0),
            (Some(_), None) => CallCost::Unknown,
        };
        match reserved.as_mut().and_then(|r| r.id.take()) {
            None => self.usage.add(goal, tokens, known.unwrap_or(0.0)),
            Some(id) => {
                if let Err(e) = self.store.settle_budget(goal, &id, tokens, cost).await {
                    tracing::warn!(error = %e, "cannot add the call's tokens to the goal's totals");
                }
            }
        }
        Ok(result?)
    }

    /// Reserves the prompt's estimated tokens of the goal's token budget and a
    /// call's estimated cost of its money budget (see
    /// [`crate::store::GoalStore::reserve_budget`]) in one step, or fails closed
    /// if one cannot admit the call. The reservation lives as long as the call
    /// can: the gate's wait, the call's timeout and a minute; a process that dies
    /// before settling it leaves it to expire then.
    async fn reserve(
        &self,
        goal: &str,
        request: &crate::llm::LlmRequest,
    ) -> Result<Reserved, CallError> {
        let id = new_token();
        let ask = BudgetAsk {
            tokens: crate::llm::Usage::estimate(&request.prompt, "").input_tokens,
            token_budget: self.goal_token_budget,
            usd_budget: self.goal_budget_usd,
            usd_default: DEFAULT_CALL_USD,
            ttl: self.gate.wait() + request.timeout + RESERVATION_MARGIN,
        };
        let goal_id = goal.to_string();
        match self.store.reserve_budget(goal, &id, &ask).await? {
            Admission::Reserved => Ok(Reserved {
                store: self.store.clone(),
                goal: goal_id,
                id: Some(id),
            }),
            Admission::Tokens { spent, reserved } => {
                let budget = self.goal_token_budget.unwrap_or_default();
                Err(if spent >= budget {
                    CallError::BudgetSpent {
                        goal: goal_id,
                        spent,
                        budget,
                    }
                } else {
                    CallError::BudgetReserved {
                        goal: goal_id,
                        spent,
                        reserved,
                        budget,
                    }
                })
            }
            // With calls in flight their real costs may leave room; with none,
            // no call of the goal can fit the budget again.
            Admission::Money {
                spent,
                reserved,
                estimate,
            } => {
                let budget = self.goal_budget_usd.unwrap_or_default();
                Err(if reserved > 0.0 {
                    CallError::MoneyReserved {
                        goal: goal_id,
                        spent,
                        reserved,
                        budget,
                    }
                } else {
                    CallError::MoneySpent {
                        goal: goal_id,
                        spent,
                        estimate,
                        budget,
                    }
                })
            }
        }
    }
}

/// What a call reserves of a money budget before any call of its goal reported
/// a cost (then: the mean of those that did). Fixed, not a per-call cap, so no
/// flag is needed: a claude call of a small task costs cents to a few tenths of
/// a dollar, and the estimate only decides admission; the real cost settles.
/// A budget smaller than this admits the goal's first call all the same.
pub const DEFAULT_CALL_USD: f64 = 0.50;

/// How much longer than the call may take a budget reservation lives.
const RESERVATION_MARGIN: Duration = Duration::from_secs(60);

/// A budget reservation not yet settled. A call dropped midway (lease lost,
/// DROP-TASK, shutdown) gives it back when this is dropped.
struct Reserved {
    store: Arc<dyn Store>,
    goal: String,
    id: Option<String>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let (Some(id), Ok(runtime)) = (self.id.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, goal) = (self.store.clone(), std::mem::take(&mut self.goal));
        runtime.spawn(async move {
            if let Err(e) = store.settle_tokens(&goal, &id, 0, 0.0).await {
                tracing::debug!(error = %e, "cannot give back a budget reservation; it expires on its own");
            }
        });
    }
}
