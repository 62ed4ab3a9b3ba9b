//! The LlmGate: a cap on concurrent LLM calls shared by every agent of every
//! porki process on one Redis (`llm:gate`, a sorted set of slot tokens by expiry).
//!
//! A caller waits for a slot with [`GateHandle::acquire`] and gets a
//! [`SlotPermit`]; dropping the permit frees the slot. The gate actor renews the
//! slots it handed out every third of their TTL, so a slot whose process died
//! expires on its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::llm::FailureKind;
use crate::store::prelude::*;
use crate::store::{Reservation, StoreError, new_token};

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

/// The gate actor: renews the slots this process holds every third of their
/// TTL, so a slot whose process died expires on its own, and frees the slots
/// whose permits were dropped.
pub struct LlmGate {
    store: Arc<dyn Store>,
    held: HashSet<String>,
}

impl LlmGate {
    /// Starts a gate allowing `cap` calls at once across processes (0: no cap),
    /// a caller waiting at most `wait` for a slot.
    pub fn spawn(store: Arc<dyn Store>, cap: u32, wait: Duration) -> GateHandle {
        let addr = LlmGate {
            store: store.clone(),
            held: HashSet::new(),
        }
        .start();
        GateHandle {
            addr,
            store,
            cap,
            wait,
            turn: Arc::new(Semaphore::new(1)),
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

/// How callers of one process ask for slots: waiting happens in the caller's own
/// future, so a caller that goes away (its task dropped, its lease lost) stops
/// waiting at once, and this process's waiters take their turns in the order
/// they came (one polls the store at a time; `tokio`'s semaphore is fair).
#[derive(Clone)]
pub struct GateHandle {
    addr: Addr<LlmGate>,
    store: Arc<dyn Store>,
    cap: u32,
    wait: Duration,
    turn: Arc<Semaphore>,
}

impl GateHandle {
    /// The longest a caller waits for a slot.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Waits for a slot, at most the gate's wait; dropping the future ends the wait.
    pub async fn acquire(&self) -> Result<SlotPermit, GateError> {
        if self.cap == 0 {
            return Ok(SlotPermit {
                token: String::new(),
                gate: None,
            });
        }
        let started = Instant::now();
        let waited_too_long = || GateError::Timeout {
            waited: started.elapsed(),
            cap: self.cap,
        };
        let _turn = tokio::time::timeout(self.wait, self.turn.acquire())
            .await
            .map_err(|_| waited_too_long())?
            .map_err(|_| GateError::Stopped)?;
        let token = new_token();
        let mut pause = Duration::from_millis(10);
        loop {
            if self.store.gate_acquire(&token, self.cap, SLOT_TTL).await? {
                self.addr
                    .send(SlotTaken {
                        token: token.clone(),
                    })
                    .await
                    .map_err(|_| GateError::Stopped)?;
                return Ok(SlotPermit {
                    token,
                    gate: Some(self.addr.clone()),
                });
            }
            let waited = started.elapsed();
            if waited >= self.wait {
                return Err(waited_too_long());
            }
            // Polling, because slots free in other processes too; capped so a
            // freed slot is taken within a quarter second.
            tokio::time::sleep(pause.min(self.wait - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

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
    /// Makes one call for `goal`, logging phase, provider, duration and tokens.
    #[tracing::instrument(name = "llm_call", skip_all, fields(goal = %goal, phase = %request.phase, provider = self.provider.name()))]
    pub async fn call(
        &self,
        goal: &str,
        request: &crate::llm::LlmRequest,
    ) -> Result<crate::llm::LlmResponse, CallError> {
        let mut reserved = match self.goal_token_budget {
            Some(budget) => Some(self.reserve(goal, request, budget).await?),
            None => None,
        };
        // A local provider calls no model: nothing to cap, no slot to take.
        let permit = if self.provider.is_local() {
            None
        } else {
            let waiting = Instant::now();
            let permit = self.gate.acquire().await;
            self.metrics.gate_waited(waiting.elapsed());
            Some(permit?)
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
        let id = reserved.as_mut().map_or(String::new(), Reserved::settle);
        if id.is_empty() {
            let tokens = usage.input_tokens + usage.output_tokens;
            self.usage.add(goal, tokens, usage.cost_usd.unwrap_or(0.0));
        } else if let Err(e) = self
            .store
            .settle_tokens(
                goal,
                &id,
                usage.input_tokens + usage.output_tokens,
                usage.cost_usd.unwrap_or(0.0),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot add the call's tokens to the goal's totals");
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

impl Reserved {
    /// Takes the reservation's id for the settling step.
    fn settle(&mut self) -> String {
        self.id.take().unwrap_or_default()
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::MemoryStore;

    /// Starts a waiter that records when it got its slot and holds it for `hold`.
    fn waiter(
        gate: &GateHandle,
        name: &'static str,
        got: &Arc<Mutex<Vec<&'static str>>>,
        hold: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let (gate, got) = (gate.clone(), got.clone());
        actix_rt::spawn(async move {
            let permit = gate.acquire().await.unwrap();
            got.lock().unwrap().push(name);
            tokio::time::sleep(hold).await;
            drop(permit);
        })
    }

    #[actix_rt::test]
    async fn waiters_take_slots_in_the_order_they_came_and_a_dropped_waiter_takes_none() {
        tokio::time::pause();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let gate = LlmGate::spawn(store.clone(), 1, Duration::from_secs(900));
        let got = Arc::new(Mutex::new(Vec::new()));
        let first = gate.acquire().await.unwrap();
        let mut waiters = Vec::new();
        for name in ["b", "c", "d", "e"] {
            waiters.push(waiter(&gate, name, &got, Duration::from_millis(300)));
            // Each starts waiting a little after the one before.
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        // `d` gives up (its caller went away) before its turn.
        waiters.remove(2).abort();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*got.lock().unwrap(), ["b", "c", "e"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.gate_in_flight().await.unwrap(), 0, "every slot freed");
    }

    #[actix_rt::test]
    async fn a_waiter_gives_up_after_the_wait() {
        tokio::time::pause();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let gate = LlmGate::spawn(store, 1, Duration::from_secs(5));
        let _held = gate.acquire().await.unwrap();
        let started = Instant::now();
        let err = gate.acquire().await.unwrap_err();
        assert!(matches!(err, GateError::Timeout { cap: 1, .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_secs(5));
        assert!(
            err.to_string().contains("PORKI_LLM_MAX_CONCURRENCY"),
            "{err}"
        );
    }
}
