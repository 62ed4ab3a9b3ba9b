//! The LlmGate: a cap on concurrent LLM calls shared by every agent of every
//! porki process on one Redis (`llm:gate`, a sorted set of slot tokens by expiry).
//!
//! A caller waits for a slot with [`GateHandle::acquire`] and gets a
//! [`SlotPermit`]; dropping the permit frees the slot. The gate actor renews the
//! slots it handed out every third of their TTL, so a slot whose process died
//! expires on its own. [`LlmCaller`] (`caller.rs`) makes the calls: through the
//! gate, within the goal's token budget, counting their usage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::store::prelude::*;
use crate::store::{StoreError, new_token};

mod caller;

pub use caller::{CallError, LlmCaller};

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
