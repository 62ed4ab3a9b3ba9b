//! Prometheus metrics: counters and histograms of what this process's actors do,
//! and gauges read from the store at scrape time.
//!
//! [`Metrics`] is made once per process and passed in (`RunSettings::metrics`);
//! the actors call one method where an event happens (`task_claimed`,
//! `llm_call`, …). The counters are process-local: two porki processes on one
//! Redis each count their own agents' work. What every process shares — tasks
//! per state, goal spending, gate slots in use — is read from the store when
//! `/metrics` is scraped ([`StoreSnapshot`]) and rendered with the counters by
//! [`Metrics::render`] in the Prometheus text format (0.0.4). The README lists
//! every metric with its type and labels.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::llm::{FailureKind, LlmError, LlmResponse, Phase};
use crate::store::ReapOutcome;

mod snapshot;

pub use snapshot::StoreSnapshot;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Bucket bounds (seconds) of the task and LLM call duration histograms.
const DURATION_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Bucket bounds (seconds) of the LLM gate wait histogram.
const WAIT_BUCKETS: [f64; 11] = [
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GoalLabel {
    goal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GoalOutcome {
    goal: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    goal: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    phase: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    phase: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderPhase {
    provider: String,
    phase: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The process's counters and histograms; one per process, shared as `Arc<Metrics>`.
pub struct Metrics {
    claims: Family<GoalLabel, Counter>,
    completions: Family<GoalLabel, Counter>,
    failures: Family<GoalOutcome, Counter>,
    stale: Family<GoalLabel, Counter>,
    durations: Histograms<GoalLabel>,
    reaped: Family<GoalOutcome, Counter>,
    restarts: Family<AgentLabel, Counter>,
    llm_calls: Family<CallLabels, Counter>,
    llm_latency: Histograms<CallLabels>,
    llm_tokens: Family<TokenLabels, Counter>,
    llm_cost: Family<ProviderPhase, Counter<f64, AtomicU64>>,
    gate_wait: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            claims: Family::default(),
            completions: Family::default(),
            failures: Family::default(),
            stale: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            reaped: Family::default(),
            restarts: Family::default(),
            llm_calls: Family::default(),
            llm_latency: Family::new_with_constructor(duration_histogram),
            llm_tokens: Family::default(),
            llm_cost: Family::default(),
            gate_wait: Histogram::new(WAIT_BUCKETS),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counters are not settings: keep `RunSettings`' Debug output stable.
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn goal(goal: &str) -> GoalLabel {
    GoalLabel {
        goal: goal.to_string(),
    }
}

fn goal_outcome(goal: &str, outcome: &str) -> GoalOutcome {
    GoalOutcome {
        goal: goal.to_string(),
        outcome: outcome.to_string(),
    }
}

/// The `outcome` label of an LLM call.
fn call_outcome(result: &Result<LlmResponse, LlmError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(LlmError::Timeout { .. }) => "timeout",
        Err(e) => match e.kind() {
            FailureKind::Fatal => "fatal",
            FailureKind::RateLimited { .. } => "rate_limited",
            FailureKind::Transient => "transient",
            FailureKind::Task => "task_error",
        },
    }
}

impl Metrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// An agent claimed a task of `goal`.
    pub fn task_claimed(&self, goal_id: &str) {
        self.claims.get_or_create(&goal(goal_id)).inc();
    }

    /// A task of `goal` was recorded DONE.
    pub fn task_completed(&self, goal_id: &str) {
        self.completions.get_or_create(&goal(goal_id)).inc();
    }

    /// A task of `goal` failed: READY again after a backoff (`retrying`) or FAILED.
    pub fn task_failed(&self, goal_id: &str, retrying: bool) {
        let outcome = if retrying { "retrying" } else { "failed" };
        self.failures
            .get_or_create(&goal_outcome(goal_id, outcome))
            .inc();
    }

    /// The store refused a result (completion or failure) whose lease was lost.
    pub fn stale_result_rejected(&self, goal_id: &str) {
        self.stale.get_or_create(&goal(goal_id)).inc();
    }

    /// A claimed task of `goal` ended (any way) after `elapsed`.
    pub fn task_ended(&self, goal_id: &str, elapsed: Duration) {
        self.durations
            .get_or_create(&goal(goal_id))
            .observe(elapsed.as_secs_f64());
    }

    /// A reaper pass over `goal` returned lost leases.
    pub fn leases_reaped(&self, goal_id: &str, outcome: &ReapOutcome) {
        for (to, tasks) in [("ready", &outcome.requeued), ("failed", &outcome.failed)] {
            if !tasks.is_empty() {
                self.reaped
                    .get_or_create(&goal_outcome(goal_id, to))
                    .inc_by(tasks.len() as u64);
            }
        }
    }

    /// The Supervisor restarted a crashed agent.
    pub fn agent_restarted(&self, agent: &str) {
        self.restarts
            .get_or_create(&AgentLabel {
                agent: agent.to_string(),
            })
            .inc();
    }

    /// Restarts of `agent` in this process so far.
    pub fn agent_restarts(&self, agent: &str) -> u64 {
        self.restarts
            .get(&AgentLabel {
                agent: agent.to_string(),
            })
            .map_or(0, |c| c.get())
    }

    /// A provider call ended after `elapsed`: counts it, its latency, tokens and cost.
    pub fn llm_call(
        &self,
        provider: &str,
        phase: Phase,
        result: &Result<LlmResponse, LlmError>,
        elapsed: Duration,
    ) {
        let labels = CallLabels {
            provider: provider.to_string(),
            phase: phase.as_str().to_string(),
            outcome: call_outcome(result).to_string(),
        };
        self.llm_calls.get_or_create(&labels).inc();
        self.llm_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let Ok(response) = result else { return };
        let usage = &response.usage;
        for (direction, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            let labels = TokenLabels {
                provider: provider.to_string(),
                phase: phase.as_str().to_string(),
                direction: direction.to_string(),
            };
            self.llm_tokens.get_or_create(&labels).inc_by(tokens);
        }
        if let Some(cost) = usage.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
            let labels = ProviderPhase {
                provider: provider.to_string(),
                phase: phase.as_str().to_string(),
            };
            self.llm_cost.get_or_create(&labels).inc_by(cost);
        }
    }

    /// A caller waited `elapsed` for an LLM gate slot (given or not).
    pub fn gate_waited(&self, elapsed: Duration) {
        self.gate_wait.observe(elapsed.as_secs_f64());
    }

    /// Every metric in the Prometheus text format (0.0.4): this process's
    /// counters and the store's state in `snapshot`.
    pub fn render(&self, snapshot: &StoreSnapshot) -> String {
        let mut registry = Registry::with_prefix("porki");
        self.register(&mut registry);
        snapshot.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "task_claims",
            "Tasks claimed by this process's agents",
            self.claims.clone(),
        );
        r.register(
            "task_completions",
            "Tasks this process's agents recorded DONE",
            self.completions.clone(),
        );
        r.register(
            "task_failures",
            "Task failures this process's agents recorded (outcome: retrying or failed)",
            self.failures.clone(),
        );
        r.register(
            "stale_results_rejected",
            "Results refused by the store because their lease was lost",
            self.stale.clone(),
        );
        r.register_with_unit(
            "task_duration",
            "Time from claim to the recorded end of a task, in this process",
            Unit::Seconds,
            self.durations.clone(),
        );
        r.register(
            "leases_reaped",
            "Lost leases this process's reaper returned (outcome: ready or failed)",
            self.reaped.clone(),
        );
        r.register(
            "agent_restarts",
            "Crashed agents this process's Supervisor restarted",
            self.restarts.clone(),
        );
        r.register(
            "llm_calls",
            "LLM provider calls by this process (outcome: ok, timeout, rate_limited, transient, task_error, fatal)",
            self.llm_calls.clone(),
        );
        r.register_with_unit(
            "llm_call_duration",
            "Latency of LLM provider calls by this process",
            Unit::Seconds,
            self.llm_latency.clone(),
        );
        r.register(
            "llm_tokens",
            "LLM tokens used by this process's calls (direction: input or output)",
            self.llm_tokens.clone(),
        );
        r.register(
            "llm_cost_usd",
            "LLM cost in USD of this process's calls, where providers report it",
            self.llm_cost.clone(),
        );
        r.register_with_unit(
            "llm_gate_wait",
            "Time this process's callers waited for an LLM gate slot",
            Unit::Seconds,
            self.gate_wait.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;

    #[test]
    fn hooks_show_up_in_the_rendered_text() {
        let metrics = Metrics::new();
        metrics.task_claimed("g");
        metrics.task_completed("g");
        metrics.task_failed("g", true);
        metrics.stale_result_rejected("g");
        metrics.task_ended("g", Duration::from_millis(1500));
        metrics.leases_reaped(
            "g",
            &ReapOutcome {
                requeued: vec!["a".into(), "b".into()],
                failed: vec![],
            },
        );
        metrics.agent_restarted("w1");
        let ok = Ok(LlmResponse {
            text: String::new(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: Some(0.25),
            },
        });
        metrics.llm_call("offline", Phase::Execute, &ok, Duration::from_millis(200));
        metrics.gate_waited(Duration::from_millis(3));
        let text = metrics.render(&StoreSnapshot::default());
        for line in [
            "porki_task_claims_total{goal=\"g\"} 1",
            "porki_task_failures_total{goal=\"g\",outcome=\"retrying\"} 1",
            "porki_stale_results_rejected_total{goal=\"g\"} 1",
            "porki_task_duration_seconds_bucket{goal=\"g\",le=\"2.5\"} 1",
            "porki_leases_reaped_total{goal=\"g\",outcome=\"ready\"} 2",
            "porki_agent_restarts_total{agent=\"w1\"} 1",
            "porki_llm_calls_total{provider=\"offline\",phase=\"execute\",outcome=\"ok\"} 1",
            "porki_llm_tokens_total{provider=\"offline\",phase=\"execute\",direction=\"input\"} 10",
            "porki_llm_cost_usd_total{provider=\"offline\",phase=\"execute\"} 0.25",
            "porki_llm_gate_wait_seconds_count 1",
            "porki_store_up 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        assert_eq!(metrics.agent_restarts("w1"), 1);
        assert_eq!(metrics.agent_restarts("w2"), 0);
    }

    #[test]
    fn a_hostile_goal_id_is_escaped_in_label_values() {
        let metrics = Metrics::new();
        metrics.task_claimed("a\"b\\c\nd");
        let text = metrics.render(&StoreSnapshot::default());
        assert!(
            text.contains(r#"porki_task_claims_total{goal="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }
}
