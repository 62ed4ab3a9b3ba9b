//! The LeaseReaper: returns tasks whose lease was lost (the lock key expired) to
//! READY, or FAILED at max attempts, for the goals this process runs.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::store::prelude::*;

/// The reaper actor.
pub struct LeaseReaper {
    store: Arc<dyn Store>,
    goals: Vec<String>,
    interval: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl LeaseReaper {
    /// A reaper for `goals`, passing every quarter of the lease TTL (at least every
    /// 100 ms): a lost lease is noticed well within one TTL of its expiry.
    pub fn new(store: Arc<dyn Store>, goals: Vec<String>, lease_ttl: Duration) -> Self {
        Self {
            store,
            goals,
            interval: (lease_ttl / 4).max(Duration::from_millis(100)),
            metrics: Arc::default(),
        }
    }

    /// The same reaper, counting what it reaps in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics, ..self }
    }
}

impl Actor for LeaseReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |reaper, ctx| {
            let store = reaper.store.clone();
            let goals = reaper.goals.clone();
            let metrics = reaper.metrics.clone();
            // Wait for one pass to end before the next starts.
            ctx.wait(
                async move {
                    for goal in goals {
                        match store.reap(&goal).await {
                            Ok(outcome) => {
                                metrics.leases_reaped(&goal, &outcome);
                                for task in &outcome.requeued {
                                    tracing::info!(goal = %goal, task = %task, "lease lost; task back to READY");
                                }
                                for task in &outcome.failed {
                                    tracing::warn!(goal = %goal, task = %task, "lease lost at max attempts; task FAILED");
                                }
                            }
                            Err(e) => tracing::warn!(goal = %goal, error = %e, "reap pass failed; retrying next pass"),
                        }
                    }
                }
                .into_actor(reaper),
            );
        });
    }
}

/// Adds a goal to reap (a goal declared after start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GoalAdded {
    /// Goal id.
    pub goal: String,
}

impl Handler<GoalAdded> for LeaseReaper {
    type Result = ();

    fn handle(&mut self, msg: GoalAdded, _: &mut Self::Context) {
        if !self.goals.contains(&msg.goal) {
            self.goals.push(msg.goal);
        }
    }
}
