//! The LlmGate: a cap on concurrent LLM calls shared by every agent of every
//! porki process on one Redis (`llm:gate`, a sorted set of slot tokens by expiry).
//!
//! A caller sends [`AcquireSlot`] and gets a [`SlotPermit`]; dropping the permit
//! frees the slot. The gate renews the slots it handed out every third of their
//! TTL, so a slot whose process died expires on its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;
use tokio::time::Instant;

use crate::llm::FailureKind;
use crate::store::prelude::*;
use crate::store::{StoreError, new_token};

/// Default number of concurrent LLM calls (`PORKI_LLM_MAX_CONCURRENCY`).
pub const DEFAULT_MAX_CONCURRENCY: u32 = 2;
/// Default longest wait for a slot (`PORKI_LLM_CONCURRENCY_WAIT_SECONDS`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(900);
/// How long a slot lives without renewal.
pub const SLOT_TTL: Duration = Duration::from_secs(30);

/// Why no slot was given.
#[derive(Debug, Error)]
pub enum GateError {
    /// Every slot stayed taken past the deadline.
    #[error(
        "no LLM call slot became free within {waited:?} ({cap} in use across all processes): raise PORKI_LLM_MAX_CONCURRENCY or PORKI_LLM_CONCURRENCY_WAIT_SECONDS"
    )]
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// The cap.
        cap: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gate stopped (the process is shutting down).
    #[error("the LLM gate stopped: the process is shutting down")]
    Stopped,
}

/// The gate actor.
pub struct LlmGate {
    store: Arc<dyn Store>,
    cap: u32,
    wait: Duration,
    held: HashSet<String>,
}

impl LlmGate {
    /// A gate allowing `cap` calls at once (0: no cap), waiting at most `wait` for a slot.
    pub fn new(store: Arc<dyn Store>, cap: u32, wait: Duration) -> Self {
        Self {
            store,
            cap,
            wait,
            held: HashSet::new(),
        }
    }
}

impl Actor for LlmGate {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SLOT_TTL / 3, |gate, ctx| {
            let store = gate.store.clone();
            let tokens: Vec<String> = gate.held.iter().cloned().collect();
            ctx.spawn(
                async move {
                    for token in tokens {
                        match store.gate_renew(&token, SLOT_TTL).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(%token, "an LLM call slot expired before renewal")
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot renew an LLM call slot"),
                        }
                    }
                }
                .into_actor(gate),
            );
        });
    }
}

/// Asks for an LLM call slot; answers when one is free or the wait is over.
#[derive(Message)]
#[rtype(result = "Result<SlotPermit, GateError>")]
pub struct AcquireSlot;

/// A slot handed out; it is freed when the permit is dropped.
#[derive(Debug)]
pub struct SlotPermit {
    token: String,
    gate: Option<Addr<LlmGate>>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.do_send(SlotReleased {
                token: std::mem::take(&mut self.token),
            });
        }
    }
}

/// A permit was dropped: free its slot.
#[derive(Message)]
#[rtype(result = "()")]
struct SlotReleased {
    token: String,
}

/// A slot was taken for a caller: renew it until released.
#[derive(Message)]
#[rtype(result = "()")]
struct SlotTaken {
    token: String,
}

impl Handler<AcquireSlot> for LlmGate {
    type Result = ResponseFuture<Result<SlotPermit, GateError>>;

    fn handle(&mut self, _: AcquireSlot, ctx: &mut Self::Context) -> Self::Result {
        let me = ctx.address();
        if self.cap == 0 {
            return Box::pin(async move {
                Ok(SlotPermit {
                    token: String::new(),
                    gate: None,
                })
            });
        }
        let (store, cap, wait) = (self.store.clone(), self.cap, self.wait);
        Box::pin(async move {
            let token = new_token();
            let started = Instant::now();
            let mut pause = Duration::from_millis(10);
            loop {
                if store.gate_acquire(&token, cap, SLOT_TTL).await? {
                    me.send(SlotTaken {
                        token: token.clone(),
                    })
                    .await
                    .map_err(|_| GateError::Stopped)?;
                    return Ok(SlotPermit {
                        token,
                        gate: Some(me),
                    });
                }
                let waited = started.elapsed();
                if waited >= wait {
                    return Err(GateError::Timeout { waited, cap });
                }
                tokio::time::sleep(pause.min(wait - waited)).await;
                // Polling, because slots free in other processes too; capped so a
                // freed slot is taken within a quarter second.
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        })
    }
}

impl Handler<SlotTaken> for LlmGate {
    type Result = ();

    fn handle(&mut self, msg: SlotTaken, _: &mut Self::Context) {
        self.held.insert(msg.token);
    }
}

impl Handler<SlotReleased> for LlmGate {
    type Result = ();

    fn handle(&mut self, msg: SlotReleased, ctx: &mut Self::Context) {
        self.held.remove(&msg.token);
        let store = self.store.clone();
        ctx.spawn(
            async move {
                if let Err(e) = store.gate_release(&msg.token).await {
                    tracing::warn!(error = %e, "cannot free an LLM call slot; it expires on its own");
                }
            }
            .into_actor(self),
        );
    }
}

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
    /// The store could not be read for the budget.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallError {
    /// What the failure means: the provider's own kind; a spent budget fails the
    /// goal like refused credentials (no call of it can succeed); the gate and the
    /// store are passing faults.
    pub fn kind(&self) -> FailureKind {
        match self {
            CallError::Llm(e) => e.kind(),
            CallError::BudgetSpent { .. } => FailureKind::Fatal,
            CallError::Gate(_) | CallError::Store(_) => FailureKind::Transient,
        }
    }

    /// Whether trying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind() != FailureKind::Fatal
    }
}

/// Makes LLM calls for one process: through the gate, within the goal's token
/// budget, adding each call's usage to the goal's totals in the store.
#[derive(Clone)]
pub struct LlmCaller {
    /// The gate.
    pub gate: Addr<LlmGate>,
    /// The provider.
    pub provider: Arc<dyn crate::llm::LlmProvider>,
    /// The store, for usage totals.
    pub store: Arc<dyn Store>,
    /// Tokens a goal may spend; `None`: no limit.
    pub goal_token_budget: Option<u64>,
    /// The process's metrics (calls, latency, tokens, cost, gate wait).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl LlmCaller {
    /// Makes one call for `goal`, logging phase, provider, duration and tokens.
    #[tracing::instrument(name = "llm_call", skip_all, fields(goal = %goal, phase = %request.phase, provider = self.provider.name()))]
    pub async fn call(
        &self,
        goal: &str,
        request: &crate::llm::LlmRequest,
    ) -> Result<crate::llm::LlmResponse, CallError> {
        if let Some(budget) = self.goal_token_budget {
            let spent = self.store.goal_status(goal).await?.map_or(0, |s| s.tokens);
            if spent >= budget {
                return Err(CallError::BudgetSpent {
                    goal: goal.to_string(),
                    spent,
                    budget,
                });
            }
        }
        let waiting = Instant::now();
        let permit = self.gate.send(AcquireSlot).await;
        self.metrics.gate_waited(waiting.elapsed());
        let permit = permit.map_err(|_| GateError::Stopped)??;
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
                let tokens = usage.input_tokens + usage.output_tokens;
                if let Err(e) = self
                    .store
                    .add_usage(goal, tokens, usage.cost_usd.unwrap_or(0.0))
                    .await
                {
                    tracing::warn!(error = %e, "cannot add the call's tokens to the goal's totals");
                }
            }
            Err(e) => tracing::warn!(
                elapsed_ms,
                error = %e,
                "LLM call failed"
            ),
        }
        Ok(result?)
    }
}
