//! Ranks as the store keeps them: whole milliseconds on each task's hash
//! (`rank`, `estimate`, `estimate_from`), computed from a new plan (where the
//! plan is written) or from a running goal's graph and finished tasks (where
//! ranker.rs refreshes them).

use std::collections::{BTreeMap, HashMap};

use super::{EstimateSource, Estimator, Finished, RankNode, Ranked, plan_nodes, rank};
use crate::domain::dag::{Dag, ValidatedDag};
use crate::domain::{TaskState, TaskStatus};

/// How long a typical task is assumed to last, ms, while none of the goal's
/// tasks has finished (team_lib.lua's `rank_before` says the same). Only the
/// ratios between ranks order claims, so its size matters only beside the
/// measured durations that replace it.
pub const TYPICAL_TASK_MS: u64 = 60_000;
const TYPICAL_TASK_SECONDS: f64 = TYPICAL_TASK_MS as f64 / 1000.0;

/// The largest rank or estimate stored, ms (2³¹ − 1, 24 days): the READY score
/// holds it exactly beside the priority (lib.lua `ready_score`).
pub const MAX_RANK_MS: u64 = (1 << 31) - 1;

/// A task's rank and estimate as the store keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRank {
    /// The longest estimated path from the task's start to the end of the plan, ms.
    pub rank_ms: u64,
    /// The task's own estimate, ms.
    pub estimate_ms: u64,
    /// Where the estimate came from.
    pub source: EstimateSource,
}

impl StoredRank {
    fn from_seconds(ranked: &Ranked) -> Self {
        Self {
            rank_ms: millis(ranked.rank),
            estimate_ms: millis(ranked.estimate.duration),
            source: ranked.estimate.source,
        }
    }
}

/// Seconds to whole ms within `0..=MAX_RANK_MS`.
fn millis(seconds: f64) -> u64 {
    (seconds * 1000.0).round().clamp(0.0, MAX_RANK_MS as f64) as u64
}

/// The ranks of a plan about to be written: nothing has finished, so each task
/// is its plan estimate, or one typical task.
pub fn plan_ranks(plan: &ValidatedDag) -> BTreeMap<String, StoredRank> {
    let estimator = Estimator::with_typical(&[], TYPICAL_TASK_SECONDS);
    rank(&plan_nodes(plan), &estimator)
        .iter()
        .map(|(id, ranked)| (id.clone(), StoredRank::from_seconds(ranked)))
        .collect()
}

/// The ranks of a running goal's tasks, from its graph as stored (planned and
/// added tasks, each waiting for its edges' sources) and the durations of its
/// DONE tasks (last claim to finish); and the goal's typical task, ms, which
/// the store uses for tasks added before the next refresh.
pub fn goal_ranks(dag: &Dag, tasks: &[TaskState]) -> (BTreeMap<String, StoredRank>, u64) {
    let mut waits_for: HashMap<&str, Vec<String>> = HashMap::new();
    for edge in &dag.edges {
        waits_for
            .entry(edge.target.as_str())
            .or_default()
            .push(edge.source.clone());
    }
    let nodes: Vec<RankNode> = dag
        .nodes
        .iter()
        .map(|n| RankNode::from_node(n, waits_for.remove(n.id.as_str()).unwrap_or_default()))
        .collect();
    let sizes: HashMap<&str, Option<f64>> =
        nodes.iter().map(|n| (n.id.as_str(), n.estimate)).collect();
    let finished: Vec<Finished> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Done)
        .filter_map(|t| {
            let ran = t.finished_ms?.checked_sub(t.started_ms?)?;
            Some(Finished {
                role: t.planned_role.clone().or_else(|| t.role.clone()),
                kind: t.kind,
                estimate: sizes.get(t.id.as_str()).copied().flatten(),
                seconds: ran as f64 / 1000.0,
            })
        })
        .collect();
    let estimator = Estimator::with_typical(&finished, TYPICAL_TASK_SECONDS);
    let ranks = rank(&nodes, &estimator)
        .iter()
        .map(|(id, ranked)| (id.clone(), StoredRank::from_seconds(ranked)))
        .collect();
    (ranks, millis(estimator.typical()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dag::Node;

    fn dag(nodes: &[(&str, Option<f64>)], edges: &[(&str, &str)]) -> Dag {
        let nodes = nodes
            .iter()
            .map(|(id, estimate)| Node {
                estimate: *estimate,
                ..Node::new(*id, format!("Task {id}"))
            })
            .collect();
        Dag::new("g", nodes, edges)
    }

    fn done(id: &str, started: u64, finished: u64) -> TaskState {
        TaskState {
            started_ms: Some(started),
            finished_ms: Some(finished),
            ..TaskState::new("g", id, id, TaskStatus::Done, 0)
        }
    }

    #[test]
    fn a_new_plan_ranks_in_typical_tasks_and_its_estimates() {
        let plan = dag(&[("a", None), ("b", Some(0.5)), ("c", None)], &[("a", "b")])
            .validate()
            .unwrap();
        let ranks = plan_ranks(&plan);
        assert_eq!(ranks["a"].rank_ms, 90_000);
        assert_eq!(ranks["a"].estimate_ms, 60_000);
        assert_eq!(ranks["a"].source, EstimateSource::Default);
        assert_eq!(ranks["b"].rank_ms, 30_000);
        assert_eq!(ranks["b"].source, EstimateSource::Plan);
        assert_eq!(ranks["c"].rank_ms, 60_000);
    }

    #[test]
    fn a_running_goal_ranks_by_what_its_finished_tasks_took_and_its_added_edges() {
        // `fix` was added at run time: `a` now waits for it.
        let graph = dag(
            &[("a", None), ("b", None), ("fix", None), ("root", None)],
            &[("root", "a"), ("root", "b"), ("fix", "a")],
        );
        let tasks = [
            done("root", 1_000, 5_000),
            TaskState::new("g", "a", "a", TaskStatus::Blocked, 0),
            TaskState::new("g", "b", "b", TaskStatus::Ready, 0),
            TaskState::new("g", "fix", "fix", TaskStatus::Ready, 0),
        ];
        let (ranks, typical) = goal_ranks(&graph, &tasks);
        assert_eq!(typical, 4_000, "the one finished task took 4 s");
        assert_eq!(ranks["b"].rank_ms, 4_000);
        assert_eq!(ranks["b"].source, EstimateSource::Measured);
        assert_eq!(ranks["fix"].rank_ms, 8_000, "the fix holds up a");
        assert_eq!(ranks["root"].rank_ms, 8_000);
    }

    #[test]
    fn a_task_without_both_times_teaches_nothing_and_ranks_clamp() {
        let graph = dag(&[("a", Some(1000.0)), ("b", None)], &[]);
        let mut unfinished = done("b", 0, 0);
        unfinished.finished_ms = None;
        let (ranks, typical) = goal_ranks(&graph, &[unfinished]);
        assert_eq!(typical, 60_000);
        assert_eq!(ranks["a"].rank_ms, 60_000_000);
        let huge = dag(&[("a", Some(1000.0))], &[]);
        let finished = done("a", 0, MAX_RANK_MS);
        let (ranks, _) = goal_ranks(&huge, &[finished]);
        assert_eq!(
            ranks["a"].rank_ms, 2_147_483_647,
            "2^31 - 1: the READY score holds it exactly (lib.lua ready_score)"
        );
        assert_eq!(ranks["a"].source, EstimateSource::Plan);
    }
}
