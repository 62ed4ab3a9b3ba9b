//! [`LlmCaller`]: one LLM call through the gate, within the goal's token
//! budget (reserved before the call, settled after it), its usage added to
//! the goal's totals and the process's metrics.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use super::{GateError, GateHandle, SlotPermit, Urgency};
use crate::llm::FailureKind;
use crate::store::prelude::*;
use crate::store::{Reservation, StoreError, new_token};

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
    /// The store could not be read for the budget.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallError {
    /// What the failure means: the provider's own kind; a spent budget fails the
    /// goal like refused credentials (no call of it can succeed); a budget
    /// reserved by calls in flight makes the goal wait like a usage limit (they
    /// may leave some of it); the gate and the store are passing faults.
    pub fn kind(&self) -> FailureKind {
        match self {
            CallError::Llm(e) => e.kind(),
            CallError::BudgetSpent { .. } => FailureKind::Fatal,
            CallError::BudgetReserved { .. } => FailureKind::RateLimited { reset: None },
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
        let mut reserved = match self.goal_token_budget {
            Some(budget) => Some(self.reserve(goal, request, budget).await?),
            None => None,
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
        let (tokens, cost) = (
            usage.input_tokens + usage.output_tokens,
            usage.cost_usd.unwrap_or(0.0),
        );
        match reserved.as_mut().and_then(|r| r.id.take()) {
            None => self.usage.add(goal, tokens, cost),
            Some(id) => {
                if let Err(e) = self.store.settle_tokens(goal, &id, tokens, cost).await {
                    tracing::warn!(error = %e, "cannot add the call's tokens to the goal's totals");
                }
            }
        }
        Ok(result?)
    }

    /// Reserves the prompt's estimated tokens of the goal's budget (see
    /// [`crate::store::GoalStore::reserve_tokens`]), or fails closed if the tokens
    /// spent and reserved already reach it. The reservation lives as long as the
    /// call can: the gate's wait, the call's timeout and a minute; a process that
    /// dies before settling it leaves it to expire then.
    async fn reserve(
        &self,
        goal: &str,
        request: &crate::llm::LlmRequest,
        budget: u64,
    ) -> Result<Reserved, CallError> {
        let estimate = crate::llm::Usage::estimate(&request.prompt, "").input_tokens;
        let id = new_token();
        let ttl = self.gate.wait() + request.timeout + RESERVATION_MARGIN;
        match self
            .store
            .reserve_tokens(goal, &id, estimate, budget, ttl)
            .await?
        {
            Reservation::Reserved => Ok(Reserved {
                store: self.store.clone(),
                goal: goal.to_string(),
                id: Some(id),
            }),
            Reservation::Spent { spent, .. } if spent >= budget => Err(CallError::BudgetSpent {
                goal: goal.to_string(),
                spent,
                budget,
            }),
            Reservation::Spent { spent, reserved } => Err(CallError::BudgetReserved {
                goal: goal.to_string(),
                spent,
                reserved,
                budget,
            }),
        }
    }
}

/// How much longer than the call may take a token reservation lives.
const RESERVATION_MARGIN: Duration = Duration::from_secs(60);

/// A token reservation not yet settled. A call dropped midway (lease lost,
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
                tracing::debug!(error = %e, "cannot give back a token reservation; it expires on its own");
            }
        });
    }
}
