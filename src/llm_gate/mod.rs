//! The LlmGate: a cap on concurrent LLM calls shared by every agent of every
//! porki process on one Redis (`llm:gate`, a sorted set of slot tokens by expiry).
//!
//! A caller waits for a slot with [`GateHandle::acquire`], saying what the call
//! is for ([`Urgency`]), and gets a [`SlotPermit`]; dropping the permit frees the
//! slot. Waiting callers of every process queue in one store-wide queue
//! (`{llm:gate}:queue`), plan calls first, then task calls by the rank of their
//! task (the critical path), aged so nothing waits behind newer work for long.
//! The gate actor renews the slots it handed out every third of their TTL, so a
//! slot whose process died expires on its own. [`LlmCaller`] (`caller.rs`) makes
//! the calls: through the gate, within the goal's token budget, counting their
//! usage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::store::prelude::*;
use crate::store::{SlotAsk, StoreError, new_token};

mod caller;
#[cfg(test)]
mod tests;

pub use caller::{CallError, LlmCaller, Slot};

/// Default number of concurrent LLM calls (`PORKI_LLM_MAX_CONCURRENCY`).
pub const DEFAULT_MAX_CONCURRENCY: u32 = 2;
/// Default longest wait for a slot (`PORKI_LLM_CONCURRENCY_WAIT_SECONDS`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(900);
/// How long a slot lives without renewal.
pub const SLOT_TTL: Duration = Duration::from_secs(30);

/// The most a call's rank moves it ahead in the queue. A waiter's place is when
/// it came less its rank (capped), so a call is overtaken only by calls ranked
/// above it by more than it has waited: nothing waits behind newer work for
/// longer than this. Ten minutes, under the default wait (15 min), so that a
/// call stops being overtaken while it still has time to get a slot before it
/// gives up; ranks further apart than that are served in the order they came.
pub const RANK_CAP: Duration = Duration::from_secs(600);

/// How far ahead of the highest-ranked task call a plan call is queued: a plan
/// unblocks all of its goal's tasks, so it goes before any task call that came
/// less than this before it.
const PLAN_LEAD: Duration = Duration::from_secs(60);

/// How often a waiting call asks the store again, for slots freed in other
/// processes (a slot freed in this process wakes its waiters at once): a slot
/// freed elsewhere stays idle at most this long. Each waiting call costs the
/// store one script run per period: 20 commands a second.
pub const RECHECK: Duration = Duration::from_millis(50);

/// How long a waiting call stays queued without asking again (40 rechecks): a
/// waiter whose process died blocks the calls queued behind it no longer.
pub const WAITER_ALIVE_FOR: Duration = Duration::from_secs(2);

/// What an LLM call is for, which decides its place among the calls waiting
/// for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Planning a goal: before any task call.
    Plan,
    /// Work on a task whose rank (the longest estimated path from it to the end
    /// of its plan, `TaskState::rank_ms`) is `rank_ms`.
    Task {
        /// The task's rank, ms (0 when unknown).
        rank_ms: u64,
    },
}

impl Urgency {
    /// A call for a task of rank `rank_ms` (`None`, not ranked yet: 0).
    pub fn task(rank_ms: Option<u64>) -> Self {
        Urgency::Task {
            rank_ms: rank_ms.unwrap_or(0),
        }
    }

    /// How far ahead of its arrival the call is queued.
    pub fn head_start(self) -> Duration {
        match self {
            Urgency::Plan => RANK_CAP,
            Urgency::Task { rank_ms } => Duration::from_millis(rank_ms).min(RANK_CAP - PLAN_LEAD),
        }
    }
}

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
/// whose permits were dropped, waking this process's waiters.
pub struct LlmGate {
    store: Arc<dyn Store>,
    held: HashSet<String>,
    freed: Arc<Notify>,
}

impl LlmGate {
    /// Starts a gate allowing `cap` calls at once across processes (0: no cap),
    /// a caller waiting at most `wait` for a slot.
    pub fn spawn(store: Arc<dyn Store>, cap: u32, wait: Duration) -> GateHandle {
        let freed = Arc::new(Notify::new());
        let addr = LlmGate {
            store: store.clone(),
            held: HashSet::new(),
            freed: freed.clone(),
        }
        .start();
        GateHandle {
            addr,
            store,
            cap,
            wait,
            freed,
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
/// future, so a caller that goes away (its task dropped, its lease lost) leaves
/// the queue at once. The store's queue decides who is next, across processes.
#[derive(Clone)]
pub struct GateHandle {
    addr: Addr<LlmGate>,
    store: Arc<dyn Store>,
    cap: u32,
    wait: Duration,
    /// Woken when this process frees a slot or a waiter leaves the queue.
    freed: Arc<Notify>,
}

impl GateHandle {
    /// The longest a caller waits for a slot.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Waits for a slot, at most the gate's wait, in the queue's order for
    /// `urgency`; dropping the future ends the wait.
    pub async fn acquire(&self, urgency: Urgency) -> Result<SlotPermit, GateError> {
        if self.cap == 0 {
            return Ok(SlotPermit {
                token: String::new(),
                gate: None,
            });
        }
        let started = Instant::now();
        let ask = SlotAsk {
            cap: self.cap,
            ttl: SLOT_TTL,
            head_start: urgency.head_start(),
            alive_for: WAITER_ALIVE_FOR,
        };
        let token = new_token();
        let mut waiting = Waiting {
            token: Some(token.clone()),
            store: self.store.clone(),
            freed: self.freed.clone(),
        };
        loop {
            // Listening before asking: a slot freed while the store answers
            // still wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.store.gate_acquire(&token, ask).await? {
                if !self.addr.connected() {
                    // No one would renew it: `waiting` frees it as it drops.
                    return Err(GateError::Stopped);
                }
                waiting.token = None;
                self.addr.do_send(SlotTaken {
                    token: token.clone(),
                });
                return Ok(SlotPermit {
                    token,
                    gate: Some(self.addr.clone()),
                });
            }
            let waited = started.elapsed();
            if waited >= self.wait {
                return Err(GateError::Timeout {
                    waited,
                    cap: self.cap,
                });
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(RECHECK.min(self.wait - waited)) => {}
            }
        }
    }
}

/// A caller in the queue: when it stops waiting without a slot (timed out,
/// dropped, the store failed), it leaves the queue, so it blocks nobody, and
/// this process's other waiters look again.
struct Waiting {
    /// `None` once the caller holds its slot.
    token: Option<String>,
    store: Arc<dyn Store>,
    freed: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let (Some(token), Ok(runtime)) = (self.token.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, freed) = (self.store.clone(), self.freed.clone());
        runtime.spawn(async move {
            match store.gate_release(&token).await {
                Ok(()) => freed.notify_waiters(),
                Err(e) => tracing::debug!(error = %e, "cannot leave the LLM gate's queue; the waiter is dropped from it after {WAITER_ALIVE_FOR:?}"),
            }
        });
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
        let (store, freed) = (self.store.clone(), self.freed.clone());
        ctx.spawn(
            async move {
                match store.gate_release(&msg.token).await {
                    Ok(()) => freed.notify_waiters(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot free an LLM call slot; it expires on its own")
                    }
                }
            }
            .into_actor(self),
        );
    }
}
