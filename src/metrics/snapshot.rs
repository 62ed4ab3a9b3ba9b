//! [`StoreSnapshot`]: the gauges `/metrics` reads from the store at scrape
//! time (tasks per state, goal states, spending, backoffs, gate slots), shared
//! by every process on the store, unlike the process's own counters.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{GoalLabel, StateLabels, goal};
use crate::domain::TaskStatus;
use crate::store::{GoalState, GoalStatus};

/// What `/metrics` reads from the store at scrape time.
#[derive(Debug, Clone, Default)]
pub struct StoreSnapshot {
    /// Whether the store answered.
    pub up: bool,
    /// Every goal's summary.
    pub goals: Vec<GoalStatus>,
    /// LLM gate slots held now, by every process.
    pub gate_in_flight: Option<u64>,
    /// When it was read (ms since the Unix epoch), for backoffs' time left.
    pub now_ms: u64,
}

impl StoreSnapshot {
    pub(super) fn register(&self, r: &mut Registry) {
        let up: Gauge = Gauge::default();
        up.set(i64::from(self.up));
        r.register(
            "store_up",
            "Whether the store answered this scrape (1) or not (0)",
            up,
        );

        let tasks: Family<StateLabels, Gauge> = Family::default();
        let states: Family<StateLabels, Gauge> = Family::default();
        let tokens: Family<GoalLabel, Gauge> = Family::default();
        let cost: Family<GoalLabel, Gauge<f64, AtomicU64>> = Family::default();
        let backoff: Family<GoalLabel, Gauge<f64, AtomicU64>> = Family::default();
        for status in &self.goals {
            for state in TaskStatus::ALL {
                let labels = StateLabels {
                    goal: status.goal.clone(),
                    state: state.as_str().to_string(),
                };
                tasks.get_or_create(&labels).set(status.count(state) as i64);
            }
            for state in GoalState::ALL {
                let labels = StateLabels {
                    goal: status.goal.clone(),
                    state: state.as_str().to_string(),
                };
                states
                    .get_or_create(&labels)
                    .set(i64::from(status.state == state));
            }
            tokens
                .get_or_create(&goal(&status.goal))
                .set(status.tokens as i64);
            cost.get_or_create(&goal(&status.goal)).set(status.cost_usd);
            let left = status
                .backoff
                .as_ref()
                .and_then(|b| b.remaining_ms(self.now_ms))
                .unwrap_or(0);
            backoff
                .get_or_create(&goal(&status.goal))
                .set(left as f64 / 1000.0);
        }
        r.register(
            "tasks",
            "Tasks per goal and state, read from the store",
            tasks,
        );
        r.register(
            "goal_state",
            "1 for each goal's current state (draft, active, complete, failed), else 0",
            states,
        );
        r.register(
            "goal_tokens",
            "LLM tokens spent on each goal by every process, read from the store",
            tokens,
        );
        r.register(
            "goal_cost_usd",
            "LLM cost in USD spent on each goal by every process, read from the store",
            cost,
        );
        r.register_with_unit(
            "goal_backoff_remaining",
            "Time left of a goal-wide wait imposed by a rate or usage limit (0: none)",
            Unit::Seconds,
            backoff,
        );
        if let Some(in_flight) = self.gate_in_flight {
            let gauge: Gauge = Gauge::default();
            gauge.set(in_flight as i64);
            r.register(
                "llm_gate_slots_in_use",
                "LLM gate slots held now by every process on this store",
                gauge,
            );
        }
    }
}
