//! The team loops of the store (issue 13), run against every backend as
//! `store_conformance` is (`memory://`, a private `redis-server`, the shared
//! Redis Cluster): a person's approval and rejection, review verdicts with their
//! fixes and escalations, recovery of failed work, claim scopes, soft
//! reassignment, and the plan as these loops grow it.
//!
//! - `approval`: AWAITING_APPROVAL, approve, reject, drop.
//! - `review`: review verdicts, fixes, escalations.
//! - `recovery`: recovery of work that failed for good, claim scopes, reassignment.
//! - `merge`: merges that conflicted, as `.merge` tasks (worktree isolation).

mod approval;
mod merge;
mod recovery;
mod review;

use std::fmt::Debug;

use porki::domain::{Node, TaskKind, TaskState, TaskStatus, TeamLimits};
use porki::store::prelude::*;
use porki::store::{ClaimOutcome, ClaimScope, GoalState, Lease, ReviewVerdict, StoreError};

use crate::store_conformance::{LONG, cluster, conformance, memory, redis};
use crate::support::node;

/// Every behaviour, from the three files.
mod behaviour {
    pub use super::approval::*;
    pub use super::merge::*;
    pub use super::recovery::*;
    pub use super::review::*;
}

conformance!(
    untimed: [
        an_approval_task_waits_for_a_person_and_approve_moves_its_dependents_on,
        complete_and_claim_holds_an_approval_task_and_claims_the_next,
        a_rejected_task_gets_a_fix_then_awaits_approval_again,
        rejecting_a_review_fixes_the_reviewed_task_and_runs_the_review_again,
        dropping_a_task_awaiting_approval_fails_it,
        an_approving_review_completes_and_only_reviews_take_changes,
        a_review_asking_for_changes_gets_fixes_then_fails_without_a_manager,
        a_review_past_its_cycles_escalates_and_the_manager_approves,
        a_manager_rejecting_an_escalation_fails_the_review_and_the_goal,
        a_review_of_any_id_gets_fixes_of_the_task_it_reviews,
        a_manager_approving_an_escalation_of_a_dropped_review_settles_nothing,
        a_manager_rejecting_an_escalation_of_a_dropped_review_fails_nothing_more,
        a_retried_review_that_failed_its_cycles_may_ask_for_changes_again,
        a_review_of_recovered_work_reviews_the_recovery,
        rejecting_a_recovery_adds_a_fix_named_after_the_planned_task,
        work_failing_for_good_is_recovered_and_its_dependents_wait_for_the_recovery,
        a_recovery_of_work_that_needs_approval_needs_it_too,
        a_recovery_for_a_managers_role_is_never_recovered_itself,
        only_planned_work_is_recovered,
        reviewers_and_managers_claim_only_their_roles_tasks,
        reassign_hands_a_ready_task_to_another_role,
        a_conflict_blocks_the_task_on_a_merge_task_whose_completion_completes_it,
        a_conflicting_merge_task_is_taken_over_and_a_third_conflict_fails_the_task,
        a_merge_task_failing_for_good_fails_the_task_it_merges,
        dropping_a_merge_task_fails_the_task_it_merges,
        merge_tasks_of_added_work_are_named_after_the_planned_task,
        a_task_needing_approval_awaits_it_once_its_merge_task_is_done,
    ],
    timed: [
        reassigning_a_task_backing_off_moves_it_when_the_backoff_ends,
        a_merge_task_whose_lease_expires_at_max_attempts_fails_the_task_it_merges,
    ],
);

/// A planned task of `role` (`None`: any builder), priority 0.
pub(crate) fn work(id: &str, role: Option<&str>) -> Node {
    Node {
        role: role.map(str::to_string),
        ..node(id, 0)
    }
}

/// A planned review `id` of `of`, for role `qa`.
pub(crate) fn review(id: &str, of: &str) -> Node {
    Node {
        kind: TaskKind::Review,
        of: Some(of.to_string()),
        ..work(id, Some("qa"))
    }
}

/// `node`, waiting for a person's approval once it ran.
pub(crate) fn approval(node: Node) -> Node {
    Node {
        approval: true,
        ..node
    }
}

/// The node of a task porki adds, as the stored plan must show it.
pub(crate) fn added(id: &str, title: &str, kind: TaskKind, of: &str, role: Option<&str>) -> Node {
    Node {
        kind,
        of: Some(of.to_string()),
        role: role.map(str::to_string),
        ..Node::new(id, title)
    }
}

/// Claims the next task of `goal` within `scope`; `None` when nothing is claimable.
pub(crate) async fn take_in(store: &dyn Store, goal: &str, scope: ClaimScope<'_>) -> Option<Lease> {
    match store
        .claim_preferred(goal, "x", scope, LONG, None)
        .await
        .expect("claim")
    {
        ClaimOutcome::Claimed(lease) => Some(lease),
        ClaimOutcome::Empty { .. } => None,
    }
}

/// Claims the next task of goal `g` within `scope`.
pub(crate) async fn take(store: &dyn Store, scope: ClaimScope<'_>) -> Option<Lease> {
    take_in(store, "g", scope).await
}

/// Claims the next task of goal `g` within `scope`, which must be `id`.
pub(crate) async fn take_task(store: &dyn Store, scope: ClaimScope<'_>, id: &str) -> Lease {
    let lease = take(store, scope).await;
    assert_eq!(
        lease.as_ref().map(|l| l.task.as_str()),
        Some(id),
        "claim within {scope:?}"
    );
    lease.expect("claimed")
}

/// Task `id` of goal `g`.
pub(crate) async fn task(store: &dyn Store, id: &str) -> TaskState {
    task_in(store, "g", id).await
}

/// Task `id` of `goal`.
pub(crate) async fn task_in(store: &dyn Store, goal: &str, id: &str) -> TaskState {
    store
        .task(goal, id)
        .await
        .expect("read task")
        .unwrap_or_else(|| panic!("task {goal}/{id} exists"))
}

/// Goal `g`'s state.
pub(crate) async fn goal_state(store: &dyn Store) -> GoalState {
    store.goal_status("g").await.unwrap().unwrap().state
}

/// Review limits: `cycles` rounds of changes, escalations to `manager`.
pub(crate) fn limits(cycles: u32, manager: Option<&str>) -> TeamLimits {
    TeamLimits {
        max_review_cycles: cycles,
        manager_role: manager.map(str::to_string),
    }
}

/// A verdict asking for changes.
pub(crate) fn changes(notes: &str) -> ReviewVerdict {
    ReviewVerdict::ChangesRequested {
        notes: notes.to_string(),
    }
}

/// Goal `g`'s stored plan: its nodes (by id) and its edges as (source, target).
pub(crate) async fn stored_plan(store: &dyn Store) -> (Vec<Node>, Vec<(String, String)>) {
    let dag = store.dag("g").await.unwrap().expect("g has a plan");
    let edges = dag
        .edges
        .into_iter()
        .map(|e| (e.source, e.target))
        .collect();
    (dag.nodes, edges)
}

/// `(source, target)` pairs as owned strings.
pub(crate) fn edges(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect()
}

/// Checks that `outcome` is `WrongState` for goal `g`'s task `id` in `status`.
pub(crate) fn assert_wrong_state<T: Debug>(
    outcome: Result<T, StoreError>,
    id: &str,
    status: TaskStatus,
) {
    match outcome {
        Err(StoreError::WrongState {
            goal,
            task,
            status: found,
            ..
        }) if goal == "g" && task == id && found == status => {}
        other => panic!("expected WrongState for g/{id} ({status}), got {other:?}"),
    }
}

/// Checks that `outcome` is `UnknownTask` for goal `g`'s task `id`.
pub(crate) fn assert_unknown<T: Debug>(outcome: Result<T, StoreError>, id: &str) {
    match outcome {
        Err(StoreError::UnknownTask { goal, task }) if goal == "g" && task == id => {}
        other => panic!("expected UnknownTask for g/{id}, got {other:?}"),
    }
}
