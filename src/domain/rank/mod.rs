//! Ranking a goal's tasks by what they hold up (issue 21): a task's rank is the
//! longest path from it to the end of the plan, each task on the path weighted
//! by an estimate of its duration. A READY task with a higher rank holds more
//! of the goal's remaining wall time behind it, so it should run first. Pure:
//! the plan graph and the finished tasks' durations in, ranks out.
//!
//! The graph is what the store keeps: every task (planned or added while the
//! goal runs: reviews, fixes, recoveries, escalations, merges) with the tasks
//! it waits for (`dag:{G}:deps`). A review gates what depended on the task it
//! reviews (shaping rewires those edges onto the review), so a review ranks as
//! high as the chain it gates; a fix is waited for by its review, so it ranks
//! above the review. A task that waits for its own escalation or merge does
//! not run again (that task settles it), so it adds nothing of its own.
//!
//! Estimates, in order: the plan node's `estimate` (a relative size: 1 is a
//! typical task of the goal), the mean measured duration of the goal's
//! finished tasks of the same role and kind, then one typical task. A typical
//! task lasts the goal's measured seconds per unit of size (its finished
//! tasks' durations over their sizes, a size being a plan estimate or 1), or 1
//! while nothing has finished: ranks are then in units of a typical task.

use std::collections::{BTreeMap, HashMap};

use super::TaskKind;
use super::dag::{Node, ValidatedDag};

mod stored;

pub use stored::{MAX_RANK_MS, StoredRank, TYPICAL_TASK_MS, goal_ranks, plan_ranks};

/// One task as ranking sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RankNode {
    /// Task id.
    pub id: String,
    /// The role that claims it, if any.
    pub role: Option<String>,
    /// Planned work or a task porki added.
    pub kind: TaskKind,
    /// The task an added task is about.
    pub of: Option<String>,
    /// The plan's relative size of the task, if it gave one.
    pub estimate: Option<f64>,
    /// The tasks it waits for.
    pub waits_for: Vec<String>,
}

impl RankNode {
    /// The ranking view of plan node `node`, waiting for `waits_for`.
    pub fn from_node(node: &Node, waits_for: Vec<String>) -> Self {
        Self {
            id: node.id.clone(),
            role: node.effective_role().map(str::to_string),
            kind: node.kind,
            of: node.of.clone(),
            estimate: node.estimate,
            waits_for,
        }
    }
}

/// Every task of a validated plan, with its dependencies.
pub fn plan_nodes(plan: &ValidatedDag) -> Vec<RankNode> {
    plan.dag()
        .nodes
        .iter()
        .map(|n| RankNode::from_node(n, plan.deps_of(&n.id).to_vec()))
        .collect()
}

/// A finished task of the goal, as estimates learn from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The role that claimed it, if any.
    pub role: Option<String>,
    /// Its kind.
    pub kind: TaskKind,
    /// The plan's relative size of it, if it gave one.
    pub estimate: Option<f64>,
    /// How long it ran, seconds.
    pub seconds: f64,
}

/// Where an estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimateSource {
    /// The plan node's `estimate`, times the goal's typical task.
    Plan,
    /// The mean of the goal's finished tasks of the same role and kind.
    Measured,
    /// One typical task: nothing better is known.
    Default,
}

impl EstimateSource {
    /// The name the store and reports use: `plan`, `measured`, `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Measured => "measured",
            Self::Default => "default",
        }
    }

    /// Reads a name [`Self::as_str`] wrote.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Plan, Self::Measured, Self::Default]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// How long a task is expected to run: seconds once the goal has finished
/// tasks, typical tasks before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The expected duration.
    pub duration: f64,
    /// Where it came from.
    pub source: EstimateSource,
}

/// Estimates tasks' durations from the plan and the goal's finished tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimator {
    /// Duration of a task of size 1.
    unit: f64,
    /// Mean duration by role and kind.
    means: HashMap<(Option<String>, TaskKind), f64>,
}

impl Estimator {
    /// Learns from the goal's `finished` tasks (durations that are not finite
    /// and positive, and sizes that are not, count as unknown); while nothing
    /// finished, a typical task lasts one unit.
    pub fn new(finished: &[Finished]) -> Self {
        Self::with_typical(finished, 1.0)
    }

    /// The same, a typical task lasting `typical` while nothing finished.
    pub fn with_typical(finished: &[Finished], typical: f64) -> Self {
        let valid = |x: f64| x.is_finite() && x > 0.0;
        let mut sums: HashMap<(Option<String>, TaskKind), (f64, u32)> = HashMap::new();
        let (mut seconds, mut sizes) = (0.0, 0.0);
        for task in finished.iter().filter(|t| valid(t.seconds)) {
            let sum = sums.entry((task.role.clone(), task.kind)).or_default();
            sum.0 += task.seconds;
            sum.1 += 1;
            seconds += task.seconds;
            sizes += task.estimate.filter(|e| valid(*e)).unwrap_or(1.0);
        }
        Self {
            unit: if sizes > 0.0 {
                seconds / sizes
            } else {
                typical
            },
            means: sums
                .into_iter()
                .map(|(class, (sum, n))| (class, sum / f64::from(n)))
                .collect(),
        }
    }

    /// How long a task of size 1 lasts.
    pub fn typical(&self) -> f64 {
        self.unit
    }

    /// The estimate of `task`.
    pub fn estimate(&self, task: &RankNode) -> Estimate {
        if let Some(size) = task.estimate.filter(|e| e.is_finite() && *e > 0.0) {
            return Estimate {
                duration: size * self.unit,
                source: EstimateSource::Plan,
            };
        }
        match self.means.get(&(task.role.clone(), task.kind)) {
            Some(&mean) => Estimate {
                duration: mean,
                source: EstimateSource::Measured,
            },
            None => Estimate {
                duration: self.unit,
                source: EstimateSource::Default,
            },
        }
    }
}

/// A task's rank and the estimate it was computed with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The longest estimated path from the task's start to the end of the plan.
    pub rank: f64,
    /// The task's own estimate.
    pub estimate: Estimate,
}

/// The rank of every task in `tasks`. Dependencies on tasks not in `tasks` are
/// ignored. The store never holds a cycle; were there one, its tasks would
/// rank by what waits for them outside it.
pub fn rank(tasks: &[RankNode], estimator: &Estimator) -> BTreeMap<String, Ranked> {
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // The waiters of each task, and how many of them are not ranked yet.
    let mut waiters: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, task) in tasks.iter().enumerate() {
        for dep in &task.waits_for {
            if let Some(&d) = index.get(dep.as_str())
                && !waiters[d].contains(&i)
            {
                waiters[d].push(i);
            }
        }
    }
    let own: Vec<Estimate> = tasks.iter().map(|t| estimator.estimate(t)).collect();
    let reruns: Vec<bool> = tasks
        .iter()
        .map(|t| !settled_by_what_it_waits_for(t, tasks, &index))
        .collect();
    let mut unranked: Vec<usize> = waiters.iter().map(Vec::len).collect();
    let mut rank: Vec<Option<f64>> = vec![None; tasks.len()];
    let mut ready: Vec<usize> = (0..tasks.len()).filter(|&i| unranked[i] == 0).collect();
    while let Some(i) = ready.pop() {
        let behind = waiters[i]
            .iter()
            .filter_map(|&w| rank[w])
            .fold(0.0, f64::max);
        rank[i] = Some(behind + if reruns[i] { own[i].duration } else { 0.0 });
        for dep in &tasks[i].waits_for {
            if let Some(&d) = index.get(dep.as_str()) {
                unranked[d] -= 1;
                if unranked[d] == 0 {
                    ready.push(d);
                }
            }
        }
    }
    let outside = rank.clone();
    for i in 0..tasks.len() {
        if rank[i].is_none() {
            let behind = waiters[i]
                .iter()
                .filter_map(|&w| outside[w])
                .fold(0.0, f64::max);
            rank[i] = Some(behind + own[i].duration);
        }
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.id.clone(),
                Ranked {
                    rank: rank[i].unwrap_or(0.0),
                    estimate: own[i],
                },
            )
        })
        .collect()
}

/// Whether `task` waits for its own escalation or merge: that task settles it,
/// and it does not run again.
fn settled_by_what_it_waits_for(
    task: &RankNode,
    tasks: &[RankNode],
    index: &BTreeMap<&str, usize>,
) -> bool {
    task.waits_for.iter().any(|dep| {
        index.get(dep.as_str()).is_some_and(|&d| {
            let dep = &tasks[d];
            matches!(dep.kind, TaskKind::Escalate | TaskKind::Merge)
                && dep.of.as_deref() == Some(task.id.as_str())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dag::Dag;
    use crate::domain::shaping::shape_plan;
    use crate::domain::team::{GoalPolicy, ReviewPolicy};

    /// A planned task of no role waiting for `waits_for`, with plan size `estimate`.
    fn task(id: &str, waits_for: &[&str], estimate: Option<f64>) -> RankNode {
        RankNode {
            id: id.into(),
            role: None,
            kind: TaskKind::Work,
            of: None,
            estimate,
            waits_for: waits_for.iter().map(|w| w.to_string()).collect(),
        }
    }

    /// A task porki added, of `kind`, about `of`.
    fn added(id: &str, kind: TaskKind, of: &str, waits_for: &[&str]) -> RankNode {
        RankNode {
            kind,
            of: Some(of.into()),
            ..task(id, waits_for, None)
        }
    }

    /// The ranks of `tasks` while nothing has finished (every task one unit
    /// unless its plan says otherwise), as (id, rank) in id order.
    fn ranks(tasks: &[RankNode]) -> Vec<(String, f64)> {
        rank(tasks, &Estimator::new(&[]))
            .into_iter()
            .map(|(id, r)| (id, r.rank))
            .collect()
    }

    fn pairs(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|(id, r)| (id.to_string(), *r)).collect()
    }

    #[test]
    fn a_chain_outranks_the_short_tasks_beside_it_whatever_their_ids() {
        let tasks = [
            task("a", &[], None),
            task("b", &[], None),
            task("z1", &[], None),
            task("z2", &["z1"], None),
            task("z3", &["z2"], None),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[
                ("a", 1.0),
                ("b", 1.0),
                ("z1", 3.0),
                ("z2", 2.0),
                ("z3", 1.0)
            ])
        );
    }

    #[test]
    fn a_fan_out_ranks_its_root_by_the_longest_branch_to_the_fan_in() {
        let tasks = [
            task("root", &[], None),
            task("a", &["root"], Some(2.0)),
            task("b", &["root"], Some(5.0)),
            task("c", &["root"], None),
            task("sink", &["a", "b", "c"], None),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[
                ("a", 3.0),
                ("b", 6.0),
                ("c", 2.0),
                ("root", 7.0),
                ("sink", 1.0)
            ])
        );
    }

    #[test]
    fn a_diamond_ranks_its_heavy_branch_above_the_light_one() {
        let tasks = [
            task("top", &[], None),
            task("a-light", &["top"], Some(0.5)),
            task("z-heavy", &["top"], Some(4.0)),
            task("bottom", &["a-light", "z-heavy"], None),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[
                ("a-light", 1.5),
                ("bottom", 1.0),
                ("top", 6.0),
                ("z-heavy", 5.0)
            ])
        );
    }

    #[test]
    fn a_review_ranks_as_high_as_the_chain_it_gates_and_raises_the_reviewed_task() {
        let mut nodes: Vec<Node> = ["x", "y", "z"].map(|id| Node::new(id, id)).into();
        nodes[0].review = true;
        let plan = Dag::new("g", nodes, &[("x", "y"), ("y", "z")]);
        let of = |dag: Dag| {
            let ranked = rank(&plan_nodes(&dag.validate().unwrap()), &Estimator::new(&[]));
            ranked
                .into_iter()
                .map(|(id, r)| (id, r.rank))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(plan.clone()),
            pairs(&[("x", 3.0), ("y", 2.0), ("z", 1.0)])
        );
        let marked = GoalPolicy {
            review: ReviewPolicy::Marked,
            ..GoalPolicy::default()
        };
        let shaped = shape_plan(plan, marked, Some("qa")).unwrap();
        assert_eq!(
            of(shaped),
            pairs(&[("x", 4.0), ("x.review", 3.0), ("y", 2.0), ("z", 1.0)])
        );
    }

    #[test]
    fn a_fix_added_at_run_time_ranks_above_the_review_waiting_for_it() {
        // The review asked for changes: it waits (BLOCKED) for the fix, then
        // runs again; what the reviewed task held up still waits for the review.
        let tasks = [
            task("x", &[], None),
            added("x.review", TaskKind::Review, "x", &["x", "x.fix-1"]),
            added("x.fix-1", TaskKind::Fix, "x", &[]),
            task("y", &["x.review"], Some(3.0)),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[("x", 5.0), ("x.fix-1", 5.0), ("x.review", 4.0), ("y", 3.0)])
        );
    }

    #[test]
    fn a_task_settled_by_its_escalation_or_merge_adds_nothing_of_its_own() {
        // An approving escalation makes its review DONE without running it
        // again; a merge task makes the task whose work it merges DONE.
        let tasks = [
            added("x.review", TaskKind::Review, "x", &["x.escalate"]),
            added("x.escalate", TaskKind::Escalate, "x.review", &[]),
            task("y", &["x.review", "m"], Some(2.0)),
            task("m", &["m.merge"], Some(4.0)),
            added("m.merge", TaskKind::Merge, "m", &[]),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[
                ("m", 2.0),
                ("m.merge", 3.0),
                ("x.escalate", 3.0),
                ("x.review", 2.0),
                ("y", 2.0)
            ])
        );
    }

    #[test]
    fn a_recovery_ranks_as_high_as_what_the_failed_task_held_up() {
        // fail.lua moves the failed task's dependents onto its recovery.
        let tasks = [
            task("x", &[], Some(2.0)),
            added("x.recover", TaskKind::Recover, "x", &[]),
            task("y", &["x.recover"], Some(3.0)),
        ];
        assert_eq!(
            ranks(&tasks),
            pairs(&[("x", 2.0), ("x.recover", 4.0), ("y", 3.0)])
        );
    }

    #[test]
    fn estimates_come_from_the_plan_then_the_role_and_kind_measured_then_a_typical_task() {
        let finished = [
            Finished {
                role: None,
                kind: TaskKind::Work,
                estimate: Some(2.0),
                seconds: 16.0,
            },
            Finished {
                role: None,
                kind: TaskKind::Work,
                estimate: None,
                seconds: 2.0,
            },
            Finished {
                role: Some("qa".into()),
                kind: TaskKind::Review,
                estimate: None,
                seconds: 6.0,
            },
        ];
        // A typical task: 24 s over sizes 2 + 1 + 1.
        let estimator = Estimator::new(&finished);
        let of_role = |role: Option<&str>, kind, estimate| {
            estimator.estimate(&RankNode {
                role: role.map(str::to_string),
                kind,
                ..task("t", &[], estimate)
            })
        };
        let estimate = |duration, source| Estimate { duration, source };
        assert_eq!(
            of_role(None, TaskKind::Work, Some(0.5)),
            estimate(3.0, EstimateSource::Plan)
        );
        assert_eq!(
            of_role(Some("qa"), TaskKind::Review, Some(2.0)),
            estimate(12.0, EstimateSource::Plan)
        );
        assert_eq!(
            of_role(None, TaskKind::Work, None),
            estimate(9.0, EstimateSource::Measured)
        );
        assert_eq!(
            of_role(Some("qa"), TaskKind::Review, None),
            estimate(6.0, EstimateSource::Measured)
        );
        // Reviews are not builds, and another role is not this one.
        assert_eq!(
            of_role(None, TaskKind::Review, None),
            estimate(6.0, EstimateSource::Default)
        );
        assert_eq!(
            of_role(Some("qa"), TaskKind::Work, None),
            estimate(6.0, EstimateSource::Default)
        );
        // Nothing finished: plan sizes and one unit each.
        let fresh = Estimator::new(&[]);
        assert_eq!(
            fresh.estimate(&task("t", &[], Some(2.5))),
            estimate(2.5, EstimateSource::Plan)
        );
        assert_eq!(
            fresh.estimate(&task("t", &[], None)),
            estimate(1.0, EstimateSource::Default)
        );
    }

    #[test]
    fn measured_durations_weight_the_paths() {
        // Reviews measured slow, work fast: the reviewed task outranks a
        // longer chain of work.
        let finished = [
            Finished {
                role: None,
                kind: TaskKind::Work,
                estimate: None,
                seconds: 1.0,
            },
            Finished {
                role: Some("qa".into()),
                kind: TaskKind::Review,
                estimate: None,
                seconds: 10.0,
            },
        ];
        let review = RankNode {
            role: Some("qa".into()),
            ..added("x.review", TaskKind::Review, "x", &["x"])
        };
        let tasks = [
            task("x", &[], None),
            review,
            task("a", &[], None),
            task("b", &["a"], None),
            task("c", &["b"], None),
        ];
        let ranked = rank(&tasks, &Estimator::new(&finished));
        assert_eq!(ranked["x"].rank, 11.0);
        assert_eq!(ranked["a"].rank, 3.0);
        assert_eq!(ranked["x.review"].estimate.source, EstimateSource::Measured);
    }

    #[test]
    fn unusable_durations_and_sizes_teach_nothing() {
        let finished: Vec<Finished> = [f64::NAN, 0.0, -3.0, f64::INFINITY]
            .into_iter()
            .map(|seconds| Finished {
                role: None,
                kind: TaskKind::Work,
                estimate: None,
                seconds,
            })
            .chain(std::iter::once(Finished {
                role: None,
                kind: TaskKind::Fix,
                estimate: Some(-1.0),
                seconds: 4.0,
            }))
            .collect();
        let estimator = Estimator::new(&finished);
        // Only the fix counts, as size 1.
        assert_eq!(
            estimator.estimate(&task("t", &[], None)),
            Estimate {
                duration: 4.0,
                source: EstimateSource::Default
            }
        );
        assert_eq!(
            estimator.estimate(&task("t", &[], Some(f64::NAN))).source,
            EstimateSource::Default
        );
    }

    #[test]
    fn unknown_dependencies_are_ignored_and_a_long_chain_ranks_without_recursion() {
        let mut tasks = vec![task("t00000", &["gone"], None)];
        for i in 1..20_000 {
            let previous = format!("t{:05}", i - 1);
            tasks.push(task(&format!("t{i:05}"), &[&previous], None));
        }
        let ranked = rank(&tasks, &Estimator::new(&[]));
        assert_eq!(ranked["t00000"].rank, 20_000.0);
        assert_eq!(ranked["t19999"].rank, 1.0);
        assert!(!ranked.contains_key("gone"));
    }

    #[test]
    fn a_cycle_the_store_should_never_hold_still_ranks_every_task() {
        let tasks = [
            task("a", &["b"], None),
            task("b", &["a"], None),
            task("c", &["a"], Some(3.0)),
        ];
        assert_eq!(ranks(&tasks), pairs(&[("a", 4.0), ("b", 1.0), ("c", 3.0)]));
    }
}
