//! The critical path of a goal (issue 21): the chain of tasks that holds the
//! goal up longest, as `porki graph` and the dashboard mark it. Pure: the plan
//! and the tasks' stored ranks in, task ids out.
//!
//! The path starts at the task the goal waits on most: of the tasks not DONE
//! whose dependencies are all DONE (what runs, or can, now), the one with the
//! highest rank. A FAILED task a recovery took over is left out (what waited
//! for it waits for the recovery). Once every task is DONE (or nothing is left
//! to start) it starts at the highest-ranked task without dependencies, so a
//! finished goal shows the path that was longest. From there it steps to the
//! waiter with the highest rank until it reaches a task nothing waits for.
//! Ties go to the smallest id; a task without a rank counts as 0.
//!
//! A goal none of whose tasks has a rank (planned before porki ranked tasks)
//! gets its path by structure: ranked by [`super::rank`] from the plan alone,
//! every task weighing its plan `estimate`, or one typical task.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::rank::{Estimator, RankNode, rank};
use super::{Dag, TaskState, TaskStatus};

/// The ids on the critical path of `dag`, first to last, by the ranks in
/// `tasks` (see the module doc); empty for an empty plan. Edges whose ends are
/// not plan nodes are ignored; a cycle (which the store never holds) ends the
/// path where it would repeat a task.
pub fn critical_path(dag: &Dag, tasks: &[TaskState]) -> Vec<String> {
    let states: HashMap<&str, &TaskState> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let ids: BTreeSet<&str> = dag.nodes.iter().map(|n| n.id.as_str()).collect();
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut waiters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &dag.edges {
        let (source, target) = (edge.source.as_str(), edge.target.as_str());
        if ids.contains(source) && ids.contains(target) {
            deps.entry(target).or_default().push(source);
            waiters.entry(source).or_default().push(target);
        }
    }
    let ranks = ranks(dag, &states, &deps);
    let rank_of = |id: &str| ranks.get(id).copied().unwrap_or(0);
    // The highest rank, ties to the smallest id (`ids` iterate sorted).
    let best = |candidates: &mut dyn Iterator<Item = &str>| -> Option<String> {
        let mut best: Option<&str> = None;
        for id in candidates {
            if best
                .is_none_or(|b| rank_of(id) > rank_of(b) || (rank_of(id) == rank_of(b) && id < b))
            {
                best = Some(id);
            }
        }
        best.map(str::to_string)
    };
    let done = |id: &str| states.get(id).is_some_and(|t| t.status == TaskStatus::Done);
    let superseded = |id: &str| {
        states
            .get(id)
            .is_some_and(|t| t.status == TaskStatus::Failed && t.recovered_by.is_some())
    };
    let no_deps: &[&str] = &[];
    let deps_of = |id: &str| deps.get(id).map_or(no_deps, Vec::as_slice);
    let startable = ids
        .iter()
        .copied()
        .filter(|&id| !done(id) && !superseded(id) && deps_of(id).iter().all(|&d| done(d)));
    let Some(mut at) = best(&mut startable.into_iter())
        .or_else(|| best(&mut ids.iter().copied().filter(|&id| deps_of(id).is_empty())))
    else {
        return Vec::new();
    };
    let mut path = vec![at.clone()];
    let mut seen: BTreeSet<String> = BTreeSet::from([at.clone()]);
    while let Some(next) = best(
        &mut waiters
            .get(at.as_str())
            .map_or(no_deps, Vec::as_slice)
            .iter()
            .copied(),
    ) {
        if !seen.insert(next.clone()) {
            break;
        }
        path.push(next.clone());
        at = next;
    }
    path
}

/// Each task's stored rank; when no task has one, ranks by the plan's
/// structure (a typical task is 1000, so the plan's fractional sizes count).
fn ranks<'a>(
    dag: &'a Dag,
    states: &HashMap<&str, &TaskState>,
    deps: &BTreeMap<&str, Vec<&str>>,
) -> HashMap<&'a str, u64> {
    let stored: HashMap<&str, u64> = dag
        .nodes
        .iter()
        .filter_map(|n| Some((n.id.as_str(), states.get(n.id.as_str())?.rank_ms?)))
        .collect();
    if !stored.is_empty() {
        return stored;
    }
    let nodes: Vec<RankNode> = dag
        .nodes
        .iter()
        .map(|n| {
            let waits_for = deps
                .get(n.id.as_str())
                .map_or_else(Vec::new, |d| d.iter().map(|s| s.to_string()).collect());
            let mut node = RankNode::from_node(n, waits_for);
            // The kind and subject the store has now, as ranking would see them.
            if let Some(task) = states.get(n.id.as_str()) {
                (node.kind, node.of) = (task.kind, task.of.clone());
            }
            node
        })
        .collect();
    let ranked = rank(&nodes, &Estimator::new(&[]));
    dag.nodes
        .iter()
        .filter_map(|n| {
            let r = ranked.get(&n.id)?;
            Some((n.id.as_str(), (r.rank * 1000.0).round() as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Node;

    /// A plan of `ids` with `edges` (source, target).
    fn plan(ids: &[&str], edges: &[(&str, &str)]) -> Dag {
        Dag::new(
            "g",
            ids.iter().map(|id| Node::new(*id, "")).collect(),
            edges,
        )
    }

    /// A task `id` in `status` with rank `rank_ms`.
    fn task(id: &str, status: TaskStatus, rank_ms: Option<u64>) -> TaskState {
        TaskState {
            rank_ms,
            ..TaskState::new("g", id, "", status, 0)
        }
    }

    fn ids(path: &[String]) -> Vec<&str> {
        path.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_chain_beside_short_tasks_is_the_path_whatever_the_ids() {
        let dag = plan(&["a", "b", "z1", "z2", "z3"], &[("z1", "z2"), ("z2", "z3")]);
        let tasks = [
            task("a", TaskStatus::Ready, Some(60_000)),
            task("b", TaskStatus::Ready, Some(60_000)),
            task("z1", TaskStatus::Ready, Some(180_000)),
            task("z2", TaskStatus::Blocked, Some(120_000)),
            task("z3", TaskStatus::Blocked, Some(60_000)),
        ];
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["z1", "z2", "z3"]);
    }

    #[test]
    fn a_diamond_goes_down_its_heavy_branch() {
        let dag = plan(
            &["top", "a-light", "z-heavy", "bottom"],
            &[
                ("top", "a-light"),
                ("top", "z-heavy"),
                ("a-light", "bottom"),
                ("z-heavy", "bottom"),
            ],
        );
        let mut tasks = vec![
            task("top", TaskStatus::Running, Some(6_000)),
            task("a-light", TaskStatus::Blocked, Some(1_500)),
            task("z-heavy", TaskStatus::Blocked, Some(5_000)),
            task("bottom", TaskStatus::Blocked, Some(1_000)),
        ];
        assert_eq!(
            ids(&critical_path(&dag, &tasks)),
            ["top", "z-heavy", "bottom"]
        );
        // Once top is DONE the path starts where the goal waits now.
        tasks[0].status = TaskStatus::Done;
        tasks[1].status = TaskStatus::Ready;
        tasks[2].status = TaskStatus::Running;
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["z-heavy", "bottom"]);
        // The heavy branch finished: the light one is what the goal waits on now.
        tasks[2].status = TaskStatus::Done;
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["a-light", "bottom"]);
    }

    #[test]
    fn ties_go_to_the_smallest_id_and_unranked_tasks_count_as_zero() {
        let dag = plan(&["s", "x", "y", "w"], &[("s", "y"), ("s", "x"), ("s", "w")]);
        let tasks = [
            task("s", TaskStatus::Ready, Some(3_000)),
            task("x", TaskStatus::Blocked, Some(2_000)),
            task("y", TaskStatus::Blocked, Some(2_000)),
            task("w", TaskStatus::Blocked, None),
        ];
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["s", "x"]);
    }

    #[test]
    fn a_finished_goal_shows_the_path_that_was_longest() {
        let dag = plan(&["a", "b", "c", "d"], &[("a", "b"), ("c", "d")]);
        let tasks = [
            task("a", TaskStatus::Done, Some(2_000)),
            task("b", TaskStatus::Done, Some(1_000)),
            task("c", TaskStatus::Done, Some(5_000)),
            task("d", TaskStatus::Done, Some(4_000)),
        ];
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["c", "d"]);
    }

    #[test]
    fn a_failed_task_blocks_the_path_but_one_a_recovery_took_over_does_not() {
        let dag = plan(&["x", "x.recover", "y", "z"], &[("x.recover", "y")]);
        let mut failed = task("x", TaskStatus::Failed, Some(9_000));
        let tasks = |failed: &TaskState| {
            vec![
                failed.clone(),
                task("x.recover", TaskStatus::Ready, Some(4_000)),
                task("y", TaskStatus::Blocked, Some(3_000)),
                task("z", TaskStatus::Ready, Some(1_000)),
            ]
        };
        assert_eq!(ids(&critical_path(&dag, &tasks(&failed))), ["x"]);
        failed.recovered_by = Some("x.recover".into());
        assert_eq!(
            ids(&critical_path(&dag, &tasks(&failed))),
            ["x.recover", "y"]
        );
    }

    #[test]
    fn without_any_rank_the_path_follows_the_plan_structure() {
        // z1 → z2 → z3 is three typical tasks; b is one of size 2.5.
        let mut nodes: Vec<Node> = ["a", "b", "z1", "z2", "z3"]
            .map(|id| Node::new(id, ""))
            .into();
        nodes[1].estimate = Some(2.5);
        let dag = Dag::new("g", nodes.clone(), &[("z1", "z2"), ("z2", "z3")]);
        let tasks: Vec<TaskState> = ["a", "b", "z1", "z2", "z3"]
            .map(|id| task(id, TaskStatus::Ready, None))
            .into();
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["z1", "z2", "z3"]);
        nodes[1].estimate = Some(3.5);
        let heavier = Dag::new("g", nodes, &[("z1", "z2"), ("z2", "z3")]);
        assert_eq!(ids(&critical_path(&heavier, &tasks)), ["b"]);
        // No stored state at all: the same, by the plan alone.
        assert_eq!(ids(&critical_path(&dag, &[])), ["z1", "z2", "z3"]);
    }

    #[test]
    fn an_empty_plan_has_no_path_and_a_cycle_ends_it() {
        assert!(critical_path(&plan(&[], &[]), &[]).is_empty());
        // The store never holds a cycle; were there one, the path stops short.
        let dag = plan(&["a", "b", "c"], &[("a", "b"), ("b", "c"), ("c", "b")]);
        let tasks = [
            task("a", TaskStatus::Ready, Some(3_000)),
            task("b", TaskStatus::Blocked, Some(2_000)),
            task("c", TaskStatus::Blocked, Some(1_000)),
        ];
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["a", "b", "c"]);
    }

    #[test]
    fn edges_to_tasks_outside_the_plan_are_ignored() {
        // b waits for no task but a: "gone" is no task of the plan.
        let dag = plan(&["a", "b"], &[("a", "b"), ("a", "gone"), ("gone", "b")]);
        let tasks = [
            task("a", TaskStatus::Done, Some(2_000)),
            task("b", TaskStatus::Ready, Some(1_000)),
        ];
        assert_eq!(ids(&critical_path(&dag, &tasks)), ["b"]);
    }
}
