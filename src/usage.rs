//! The goals' token and cost totals, added to the store in batches. A call
//! without a token budget adds its usage here; a background task writes what
//! accumulated once a second (one write per goal, not one per call), and
//! [`UsageTally::flush`] writes the rest when the process stops. A call under a
//! budget settles in the store at once instead: the budget needs exact totals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::store::Store;

/// How often accumulated usage is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Usage not yet in the store, by goal: (tokens, cost in USD).
type Pending = HashMap<String, (u64, f64)>;

/// Usage accumulated per goal until its next write.
#[derive(Clone)]
pub struct UsageTally {
    store: Arc<dyn Store>,
    pending: Arc<Mutex<Pending>>,
}

impl UsageTally {
    /// A tally writing to `store`, flushed once a second by a task on the current
    /// tokio runtime (if any) for as long as a clone of the tally lives.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let tally = Self {
            store,
            pending: Arc::default(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Mutex<Pending>> = Arc::downgrade(&tally.pending);
            let store = tally.store.clone();
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(FLUSH_EVERY).await;
                    let Some(pending) = weak.upgrade() else {
                        return;
                    };
                    write(&*store, &pending).await;
                }
            });
        }
        tally
    }

    /// Adds a call's usage to `goal`'s pending totals.
    pub fn add(&self, goal: &str, tokens: u64, cost_usd: f64) {
        if tokens == 0 && cost_usd == 0.0 {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(goal.to_string()).or_default();
        entry.0 += tokens;
        entry.1 += cost_usd;
    }

    /// Writes everything accumulated so far.
    pub async fn flush(&self) {
        write(&*self.store, &self.pending).await;
    }
}

/// Writes the pending usage, one store call per goal; what cannot be written
/// stays pending for the next try.
async fn write(store: &dyn Store, pending: &Mutex<Pending>) {
    let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    for (goal, (tokens, cost)) in batch {
        if let Err(e) = store.settle_tokens(&goal, "", tokens, cost).await {
            tracing::warn!(%goal, error = %e, "cannot add LLM usage to the goal's totals; trying again in a second");
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            let entry = pending.entry(goal).or_default();
            entry.0 += tokens;
            entry.1 += cost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Dag, Node};
    use crate::store::{MemoryStore, WriteDagOptions, write_plan};

    async fn goal_tokens(store: &dyn Store) -> (u64, f64) {
        let status = store.goal_status("g").await.unwrap().unwrap();
        (status.tokens, status.cost_usd)
    }

    #[tokio::test(start_paused = true)]
    async fn usage_reaches_the_store_within_a_second_in_one_write_and_on_flush() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let dag = Dag::new("g", vec![Node::new("a", "A")], &[]);
        write_plan(&*store, dag, &WriteDagOptions::default(), 10)
            .await
            .unwrap();
        let tally = UsageTally::start(store.clone());
        tally.add("g", 10, 0.5);
        tally.add("g", 5, 0.25);
        assert_eq!(goal_tokens(&*store).await, (0, 0.0), "not written per call");
        tokio::time::sleep(FLUSH_EVERY + Duration::from_millis(10)).await;
        assert_eq!(goal_tokens(&*store).await, (15, 0.75));
        tally.add("g", 7, 0.0);
        tally.flush().await;
        assert_eq!(goal_tokens(&*store).await, (22, 0.75));
    }
}
