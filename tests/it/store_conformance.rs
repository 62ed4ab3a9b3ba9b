//! One behaviour suite, run against every store backend: `memory://`, a private
//! `redis-server`, and the shared Redis Cluster (each test under names of its own,
//! see `support::prefixed`). A backend passes only if every test passes on it.
//! The team suite (`team_conformance`) runs on the same backends with the same
//! macro and helpers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use porki::domain::{Dag, Node, TaskStatus};
use porki::store::prelude::*;
use porki::store::{
    AgentRecord, ClaimOutcome, EventKind, FailOutcome, GoalState, Lease, MemoryStore, PlanError,
    Recovery, RedisStore, StoreError, TaskResult, WriteDagOptions, WriteDagOutcome, write_plan,
};

use crate::support::{Prefixed, RedisCluster, RedisServer, claim, node, nodes, plan};

/// The backend under test, and the Redis server behind it (kept alive with it).
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn Store>,
    _server: Option<RedisServer>,
}

pub(crate) async fn memory() -> Backend {
    Backend {
        store: Arc::new(MemoryStore::new()),
        _server: None,
    }
}

pub(crate) async fn redis() -> Backend {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    Backend {
        store: Arc::new(store),
        _server: Some(server),
    }
}

pub(crate) async fn cluster() -> Backend {
    let cluster = RedisCluster::shared();
    let store = RedisStore::connect_cluster(&cluster.url())
        .await
        .expect("connect to the cluster");
    assert!(store.is_cluster());
    Backend {
        store: Prefixed::new(Arc::new(store)),
        _server: None,
    }
}

/// Runs each behaviour once per backend: `NAME::memory`, `NAME::redis` and
/// `NAME::cluster`. The calling module has `memory`, `redis`, `cluster` and a
/// `behaviour` module with one `async fn NAME(Arc<dyn Store>)` per behaviour.
///
/// The `timed` behaviours wait out leases, backoffs and TTLs. `memory://`
/// keeps time with tokio's clock, so it runs them on a paused clock: each wait
/// is skipped exactly instead of slept, and cannot overshoot a short TTL on a
/// loaded machine. Redis keeps real time, so against it they sleep.
macro_rules! conformance {
    (untimed: [$($name:ident),* $(,)?], timed: [$($timed:ident),* $(,)?] $(,)?) => {
        $(conformance!(@on_both $name, #[tokio::test(flavor = "multi_thread", worker_threads = 4)]);)*
        $(conformance!(@on_both $timed, #[tokio::test(start_paused = true)]);)*
    };
    (@on_both $name:ident, #[$memory_test:meta]) => {
        mod $name {
            #[$memory_test]
            async fn memory() {
                let backend = super::memory().await;
                super::behaviour::$name(backend.store.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let backend = super::redis().await;
                super::behaviour::$name(backend.store.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cluster() {
                let backend = super::cluster().await;
                super::behaviour::$name(backend.store.clone()).await;
            }
        }
    };
}
pub(crate) use conformance;

conformance!(
    untimed: [
        a_plan_starts_tasks_ready_or_blocked_by_their_deps,
        writing_the_same_plan_again_changes_nothing,
        a_different_plan_is_refused_unless_replacing,
        bad_plans_are_refused_with_the_reason_and_nothing_is_written,
        claim_takes_the_highest_priority_then_the_smallest_id,
        roles_restrict_who_may_claim,
        racing_claimers_never_share_a_task,
        complete_promotes_exactly_the_ready_dependents_of_a_diamond,
        complete_promotes_a_fan_in_only_after_its_last_dependency,
        complete_and_claim_promotes_then_may_claim_the_promoted_task,
        complete_and_claim_with_a_stale_lease_claims_nothing,
        complete_and_claim_on_an_empty_goal_returns_empty_with_the_retry_hint,
        a_non_retryable_failure_fails_the_task_and_the_goal,
        release_gives_the_task_back_without_counting_the_attempt,
        drop_task_revokes_the_lease_and_retry_task_brings_it_back,
        drop_and_retry_name_unknown_tasks_and_wrong_states,
        elevate_changes_which_task_is_claimed_next,
        the_goal_completes_when_every_task_is_done,
        goal_status_counts_every_state_exactly,
        the_stored_plan_reads_back_sorted,
        claim_preferred_takes_the_pick_only_when_it_is_ready_for_the_agent,
    ],
    timed: [
        a_stale_holder_cannot_complete_renew_release_or_fail,
        renewing_keeps_a_lease_from_being_reaped,
        reap_requeues_an_expired_task_and_counts_the_attempt,
        reap_fails_a_task_at_max_attempts,
        fail_retries_after_the_backoff_then_fails_for_good,
        the_agent_guard_admits_one_holder_at_a_time,
        agent_registration_and_heartbeat_ttl,
        events_announce_ready_and_completion,
        a_goal_backing_off_gives_the_task_back_and_claims_nothing_until_it_ends,
    ],
);

// The goal-level behaviours (replans, spending, the budget, the cleanup), with
// the same backends and macro.
mod upkeep;

// The goal money budget: reserved, settled, unknown costs counted.
mod money;

// Worktree isolation: the merged commit, the goal branch, the merge lock.
mod merge;

// Ranking by the critical path: which READY task a claim takes.
mod rank;

// The LLM gate: its cap and its wait queue.
mod gate;

// The rank of the best READY task, read before claiming (`--slot-before-claim`).
mod best_ready;

pub(crate) const LONG: Duration = Duration::from_secs(60);
pub(crate) const SHORT: Duration = Duration::from_millis(150);

pub(crate) async fn write(store: &dyn Store, dag: Dag) -> WriteDagOutcome {
    write_plan(store, dag, &WriteDagOptions::default(), 10_000)
        .await
        .expect("plan is written")
        .0
}

pub(crate) async fn write_with_attempts(store: &dyn Store, dag: Dag, max_attempts: u32) {
    let options = WriteDagOptions {
        max_attempts,
        ..Default::default()
    };
    write_plan(store, dag, &options, 10_000)
        .await
        .expect("plan is written");
}

pub(crate) async fn status_of(store: &dyn Store, goal: &str, task: &str) -> TaskStatus {
    store
        .task(goal, task)
        .await
        .expect("read task")
        .expect("task exists")
        .status
}

pub(crate) async fn statuses(store: &dyn Store, goal: &str) -> BTreeMap<String, TaskStatus> {
    store
        .tasks(goal)
        .await
        .expect("read tasks")
        .into_iter()
        .map(|t| (t.id, t.status))
        .collect()
}

pub(crate) fn result(text: &str) -> TaskResult {
    TaskResult {
        progress: text.to_string(),
        artifacts: vec![format!("{text}.md")],
        ..TaskResult::default()
    }
}

/// Goal `g`'s per-state counts in [`TaskStatus::ALL`] order, checked against the tasks.
pub(crate) async fn counts(store: &dyn Store) -> Vec<u64> {
    let goal = store.goal_status("g").await.unwrap().unwrap();
    let tasks = statuses(store, "g").await;
    let counts: Vec<u64> = TaskStatus::ALL.iter().map(|&s| goal.count(s)).collect();
    let tally: Vec<u64> = TaskStatus::ALL
        .iter()
        .map(|&s| tasks.values().filter(|&&t| t == s).count() as u64)
        .collect();
    assert_eq!(counts, tally, "counts agree with the tasks: {tasks:?}");
    assert_eq!(goal.total, tasks.len() as u64);
    counts
}

fn assert_lost<T: std::fmt::Debug>(outcome: Result<T, StoreError>, what: &str) {
    match outcome {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("{what} by a stale holder must be refused with LeaseLost, got {other:?}"),
    }
}

mod behaviour {
    use super::*;

    pub async fn a_plan_starts_tasks_ready_or_blocked_by_their_deps(store: Arc<dyn Store>) {
        let outcome = write(&*store, plan("g", nodes(&["a", "b", "c"]), &[("a", "b")])).await;
        assert_eq!(outcome, WriteDagOutcome::Created);
        let states = statuses(&*store, "g").await;
        assert_eq!(states["a"], TaskStatus::Ready);
        assert_eq!(states["b"], TaskStatus::Blocked);
        assert_eq!(states["c"], TaskStatus::Ready);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.state, GoalState::Active);
        assert_eq!(goal.total, 3);
        assert_eq!(goal.count(TaskStatus::Ready), 2);
        assert_eq!(goal.count(TaskStatus::Blocked), 1);
        assert_eq!(store.goals().await.unwrap(), ["g"]);
        let b = store.task("g", "b").await.unwrap().unwrap();
        assert_eq!(
            (b.title.as_str(), b.attempt, b.fence, b.pending_deps),
            ("Task b", 0, 0, 1)
        );
    }

    pub async fn writing_the_same_plan_again_changes_nothing(store: Arc<dyn Store>) {
        let dag = plan("g", nodes(&["a", "b"]), &[("a", "b")]);
        write(&*store, dag.clone()).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&lease, &result("a")).await.unwrap();
        // Same plan, nodes listed in another order: a resume, not a re-plan.
        let mut reordered = dag;
        reordered.nodes.reverse();
        assert_eq!(write(&*store, reordered).await, WriteDagOutcome::Unchanged);
        assert_eq!(status_of(&*store, "g", "a").await, TaskStatus::Done);
        assert_eq!(status_of(&*store, "g", "b").await, TaskStatus::Ready);
    }

    pub async fn a_different_plan_is_refused_unless_replacing(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&lease, &result("a")).await.unwrap();
        let before = store.tasks("g").await.unwrap();

        let other = plan("g", nodes(&["x", "y"]), &[]);
        let err = write_plan(&*store, other.clone(), &WriteDagOptions::default(), 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PlanError::Store(StoreError::PlanConflict { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("replace"), "{err}");
        assert_eq!(
            store.tasks("g").await.unwrap(),
            before,
            "refusal changed nothing"
        );

        let replace = WriteDagOptions {
            expected: Some(store.goal_status("g").await.unwrap().unwrap().fingerprint),
            ..Default::default()
        };
        let (outcome, _) = write_plan(&*store, other, &replace, 100).await.unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        let states = statuses(&*store, "g").await;
        assert_eq!(states.keys().collect::<Vec<_>>(), ["x", "y"]);
        assert!(
            store.task("g", "a").await.unwrap().is_none(),
            "old tasks are gone"
        );
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!((goal.total, goal.count(TaskStatus::Ready)), (2, 2));
        assert_eq!(goal.count(TaskStatus::Done), 0);
    }

    pub async fn bad_plans_are_refused_with_the_reason_and_nothing_is_written(
        store: Arc<dyn Store>,
    ) {
        let cases: Vec<(Dag, &str)> = vec![
            (plan("g", vec![], &[]), "no tasks"),
            (plan("g", nodes(&["a", "a"]), &[]), "appears more than once"),
            (
                plan("g", nodes(&["a"]), &[("a", "nope")]),
                "unknown task \"nope\"",
            ),
            (plan("g", nodes(&["a"]), &[("a", "a")]), "depends on itself"),
            (
                plan("g", nodes(&["a", "b"]), &[("a", "b"), ("b", "a")]),
                "cycle: a -> b -> a",
            ),
            (
                plan("g", nodes(&["a:b"]), &[]),
                "task id \"a:b\" is not allowed",
            ),
            (
                plan("g{x}", nodes(&["a"]), &[]),
                "goal id \"g{x}\" is not allowed",
            ),
            (
                plan("g", nodes(&["a", "b", "c"]), &[]),
                "more than the limit of 2",
            ),
        ];
        for (dag, reason) in cases {
            let err = write_plan(&*store, dag, &WriteDagOptions::default(), 2)
                .await
                .unwrap_err();
            assert!(matches!(err, PlanError::Invalid(_)), "{err:?}");
            assert!(
                err.to_string().contains(reason),
                "{err} should name {reason:?}"
            );
        }
        assert!(store.goals().await.unwrap().is_empty());
        assert!(store.goal_status("g").await.unwrap().is_none());
        assert!(store.tasks("g").await.unwrap().is_empty());
    }

    pub async fn claim_takes_the_highest_priority_then_the_smallest_id(store: Arc<dyn Store>) {
        let nodes = vec![
            node("low", 1),
            node("b-high", 9),
            node("a-high", 9),
            node("mid", 5),
        ];
        write(&*store, plan("g", nodes, &[])).await;
        let mut order = Vec::new();
        while let Some(lease) = claim(&*store, "g", "x", LONG).await {
            order.push(lease.task);
        }
        assert_eq!(order, ["a-high", "b-high", "mid", "low"]);
    }

    pub async fn roles_restrict_who_may_claim(store: Arc<dyn Store>) {
        let mut research = node("research", 1);
        research.role = Some("research".into());
        let mut write_up = node("write", 9);
        write_up
            .metadata
            .insert("role".into(), serde_json::json!("writer"));
        let anyone = node("anyone", 5);
        write(&*store, plan("g", vec![research, write_up, anyone], &[])).await;
        let ready_by_role = |store: Arc<dyn Store>| async move {
            store.goal_status("g").await.unwrap().unwrap().ready_by_role
        };
        assert_eq!(
            ready_by_role(store.clone()).await,
            [
                (String::new(), 1),
                ("research".to_string(), 1),
                ("writer".to_string(), 1)
            ]
            .into()
        );

        let take = |role: Option<&'static str>| {
            let store = store.clone();
            async move {
                match store.claim("g", "x", role, LONG).await.unwrap() {
                    ClaimOutcome::Claimed(l) => Some(l.task),
                    ClaimOutcome::Empty { .. } => None,
                }
            }
        };
        // A research agent takes the better of research tasks and roleless ones.
        assert_eq!(take(Some("research")).await.as_deref(), Some("anyone"));
        assert_eq!(take(Some("research")).await.as_deref(), Some("research"));
        assert_eq!(
            ready_by_role(store.clone()).await,
            [("writer".to_string(), 1)].into(),
            "what is left READY, by the role it needs"
        );
        assert_eq!(
            take(Some("research")).await,
            None,
            "writer task is not for research"
        );
        assert_eq!(
            take(None).await,
            None,
            "a roleless agent takes only roleless tasks"
        );
        assert_eq!(take(Some("writer")).await.as_deref(), Some("write"));
    }

    pub async fn racing_claimers_never_share_a_task(store: Arc<dyn Store>) {
        for round in 0..10 {
            let goal = format!("race-{round}");
            let tasks: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
            let nodes = tasks
                .iter()
                .map(|id| node(id, (round * 7 + id.len() as i32) % 3))
                .collect();
            write(&*store, plan(&goal, nodes, &[])).await;
            let mut claimers = Vec::new();
            for c in 0..16 {
                let store = store.clone();
                let goal = goal.clone();
                claimers.push(tokio::spawn(async move {
                    let mut won = Vec::new();
                    while let Some(lease) = claim(&*store, &goal, &format!("c{c}"), LONG).await {
                        won.push(lease);
                    }
                    won
                }));
            }
            let mut claimed = Vec::new();
            for claimer in claimers {
                claimed.extend(claimer.await.unwrap());
            }
            let unique: HashSet<&str> = claimed.iter().map(|l| l.task.as_str()).collect();
            assert_eq!(
                claimed.len(),
                tasks.len(),
                "round {round}: every task claimed once"
            );
            assert_eq!(
                unique.len(),
                tasks.len(),
                "round {round}: no task claimed twice"
            );
            assert!(claimed.iter().all(|l| l.fence == 1 && l.attempt == 1));
            let goal_status = store.goal_status(&goal).await.unwrap().unwrap();
            assert_eq!(goal_status.count(TaskStatus::Running), tasks.len() as u64);
            assert_eq!(goal_status.count(TaskStatus::Ready), 0);
        }
    }

    pub async fn a_stale_holder_cannot_complete_renew_release_or_fail(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        let stale = claim(&*store, "g", "slow", SHORT).await.unwrap();
        tokio::time::sleep(SHORT * 2).await;
        // Expired but not reaped yet: the lock is gone, so the holder is already stale.
        assert_lost(store.renew(&stale, LONG).await, "renew");
        assert_lost(store.complete(&stale, &result("late")).await, "complete");

        let reaped = store.reap("g").await.unwrap();
        assert_eq!(reaped.requeued, ["a"]);
        let fresh = claim(&*store, "g", "fast", LONG).await.unwrap();
        assert_eq!(
            (fresh.task.as_str(), fresh.fence, fresh.attempt),
            ("a", 2, 2)
        );

        assert_lost(store.complete(&stale, &result("late")).await, "complete");
        assert_lost(store.renew(&stale, LONG).await, "renew");
        assert_lost(store.release(&stale).await, "release");
        assert_lost(
            store
                .fail(&stale, "late", true, SHORT, Recovery::Never)
                .await,
            "fail",
        );
        // A stale holder that reuses the fresh fence with its own token is refused too.
        let forged = Lease {
            fence: fresh.fence,
            ..stale.clone()
        };
        assert_lost(store.complete(&forged, &result("late")).await, "complete");

        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.owner.as_deref(), Some("fast"));
        let done = store.complete(&fresh, &result("fresh")).await.unwrap();
        assert_eq!(done.promoted, ["b"]);
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(
            task.progress, "fresh",
            "the reclaimer's result is the one kept"
        );
    }

    pub async fn renewing_keeps_a_lease_from_being_reaped(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a"]), &[])).await;
        let lease = claim(&*store, "g", "x", SHORT).await.unwrap();
        for _ in 0..6 {
            tokio::time::sleep(SHORT / 3).await;
            store.renew(&lease, SHORT).await.unwrap();
        }
        assert!(store.reap("g").await.unwrap().requeued.is_empty());
        store.complete(&lease, &result("a")).await.unwrap();
    }

    pub async fn complete_promotes_exactly_the_ready_dependents_of_a_diamond(
        store: Arc<dyn Store>,
    ) {
        let edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")];
        write(
            &*store,
            plan("g", nodes(&["a", "b", "c", "d", "e"]), &edges),
        )
        .await;
        let mut held: BTreeMap<String, Lease> = BTreeMap::new();
        let next = || {
            let store = store.clone();
            async move { claim(&*store, "g", "x", LONG).await }
        };
        for _ in 0..2 {
            let lease = next().await.unwrap();
            held.insert(lease.task.clone(), lease);
        }
        assert_eq!(held.keys().collect::<Vec<_>>(), ["a", "e"]);
        assert!(next().await.is_none(), "b, c, d wait for a");

        let out = store.complete(&held["a"], &result("a")).await.unwrap();
        assert_eq!(out.promoted, ["b", "c"]);
        assert!(!out.goal_complete);
        for _ in 0..2 {
            let lease = next().await.unwrap();
            held.insert(lease.task.clone(), lease);
        }
        let out = store.complete(&held["b"], &result("b")).await.unwrap();
        assert!(out.promoted.is_empty(), "d still waits for c");
        assert_eq!(status_of(&*store, "g", "d").await, TaskStatus::Blocked);
        let out = store.complete(&held["c"], &result("c")).await.unwrap();
        assert_eq!(out.promoted, ["d"]);
        assert_eq!(status_of(&*store, "g", "d").await, TaskStatus::Ready);
    }

    pub async fn complete_promotes_a_fan_in_only_after_its_last_dependency(store: Arc<dyn Store>) {
        let sources: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
        let mut nodes: Vec<Node> = sources.iter().map(|id| node(id, 0)).collect();
        nodes.push(node("sink", 0));
        let edges: Vec<(&str, &str)> = sources.iter().map(|s| (s.as_str(), "sink")).collect();
        write(&*store, plan("g", nodes, &edges)).await;
        let mut leases = Vec::new();
        while let Some(lease) = claim(&*store, "g", "x", LONG).await {
            leases.push(lease);
        }
        assert_eq!(leases.len(), 6);
        let last = leases.pop().unwrap();
        for lease in &leases {
            let out = store.complete(lease, &result(&lease.task)).await.unwrap();
            assert!(out.promoted.is_empty());
            assert_eq!(status_of(&*store, "g", "sink").await, TaskStatus::Blocked);
        }
        let out = store.complete(&last, &result("last")).await.unwrap();
        assert_eq!(out.promoted, ["sink"]);
    }

    pub async fn complete_and_claim_promotes_then_may_claim_the_promoted_task(
        store: Arc<dyn Store>,
    ) {
        let nodes = vec![
            node("a", 0),
            node("b", 5),
            node("c", 1),
            Node {
                role: Some("w".into()),
                ..node("r", 9)
            },
        ];
        write(&*store, plan("g", nodes, &[("a", "b")])).await;
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        // r (role w) outranks everything but is not x's to take.
        assert_eq!(a.task, "c");
        let (done, next) = store
            .complete_and_claim(&a, &result("c"), None.into(), LONG)
            .await
            .unwrap();
        assert!(done.promoted.is_empty() && !done.goal_complete);
        let ClaimOutcome::Claimed(a) = next else {
            panic!("a is READY, got {next:?}")
        };
        assert_eq!((a.task.as_str(), a.agent.as_str()), ("a", "x"));
        let (done, next) = store
            .complete_and_claim(&a, &result("a"), None.into(), LONG)
            .await
            .unwrap();
        assert_eq!(done.promoted, ["b"]);
        let ClaimOutcome::Claimed(b) = next else {
            panic!("b was promoted, got {next:?}")
        };
        assert_eq!((b.task.as_str(), b.fence, b.attempt), ("b", 1, 1));
        let task = store.task("g", "b").await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.owner.as_deref(), Some("x"));
        assert_eq!(status_of(&*store, "g", "a").await, TaskStatus::Done);
        // The new lease is a real one: renew works and the old one is stale.
        store.renew(&b, LONG).await.unwrap();
        assert_lost(store.complete(&a, &result("again")).await, "complete");
        let (done, next) = store
            .complete_and_claim(&b, &result("b"), Some("w").into(), LONG)
            .await
            .unwrap();
        assert!(!done.goal_complete);
        let ClaimOutcome::Claimed(r) = next else {
            panic!("r is for role w, got {next:?}")
        };
        assert_eq!(r.task, "r");
        let (done, next) = store
            .complete_and_claim(&r, &result("r"), Some("w").into(), LONG)
            .await
            .unwrap();
        assert!(done.goal_complete);
        assert_eq!(
            next,
            ClaimOutcome::Empty {
                retry_in: None,
                goal_state: GoalState::Complete
            }
        );
    }

    pub async fn complete_and_claim_with_a_stale_lease_claims_nothing(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b", "c"]), &[("a", "b")])).await;
        let stale = claim(&*store, "g", "slow", SHORT).await.unwrap();
        tokio::time::sleep(SHORT * 2).await;
        assert_lost(
            store
                .complete_and_claim(&stale, &result("late"), None.into(), LONG)
                .await,
            "complete_and_claim",
        );
        assert_eq!(store.reap("g").await.unwrap().requeued, ["a"]);
        let fresh = claim(&*store, "g", "fast", LONG).await.unwrap();
        assert_lost(
            store
                .complete_and_claim(&stale, &result("late"), None.into(), LONG)
                .await,
            "complete_and_claim",
        );
        let states = statuses(&*store, "g").await;
        assert_eq!(states["a"], TaskStatus::Running, "the fresh holder keeps a");
        assert_eq!(states["b"], TaskStatus::Blocked, "nothing was completed");
        assert_eq!(states["c"], TaskStatus::Ready, "nothing was claimed");
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.count(TaskStatus::Running), 1);
        assert_eq!(fresh.task, "a");
    }

    pub async fn complete_and_claim_on_an_empty_goal_returns_empty_with_the_retry_hint(
        store: Arc<dyn Store>,
    ) {
        write(&*store, plan("g", nodes(&["a", "b", "c"]), &[("a", "c")])).await;
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        let b = claim(&*store, "g", "y", LONG).await.unwrap();
        store
            .fail(&b, "flaky", true, SHORT * 4, Recovery::Never)
            .await
            .unwrap();
        let (done, next) = store
            .complete_and_claim(&a, &result("a"), None.into(), LONG)
            .await
            .unwrap();
        assert_eq!(done.promoted, ["c"]);
        let ClaimOutcome::Claimed(c) = next else {
            panic!("c was promoted, got {next:?}")
        };
        let (done, next) = store
            .complete_and_claim(&c, &result("c"), None.into(), LONG)
            .await
            .unwrap();
        assert!(done.promoted.is_empty() && !done.goal_complete);
        match next {
            ClaimOutcome::Empty {
                retry_in: Some(wait),
                ..
            } => assert!(wait <= SHORT * 4, "{wait:?}"),
            other => panic!("only b is left, backing off: got {other:?}"),
        }
        assert_eq!(status_of(&*store, "g", "c").await, TaskStatus::Done);
    }

    pub async fn reap_requeues_an_expired_task_and_counts_the_attempt(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a"]), &[])).await;
        let lease = claim(&*store, "g", "x", SHORT).await.unwrap();
        assert!(
            store.reap("g").await.unwrap().requeued.is_empty(),
            "lease still live"
        );
        tokio::time::sleep(SHORT * 2).await;
        let out = store.reap("g").await.unwrap();
        assert_eq!(out.requeued, ["a"]);
        assert!(out.failed.is_empty());
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!((task.status, task.attempt), (TaskStatus::Ready, 1));
        assert!(task.last_error.unwrap().contains("lease expired"));
        assert!(
            store.reap("g").await.unwrap().requeued.is_empty(),
            "reaped once"
        );
        let again = claim(&*store, "g", "y", LONG).await.unwrap();
        assert_eq!((again.attempt, again.fence), (2, lease.fence + 1));
    }

    pub async fn reap_fails_a_task_at_max_attempts(store: Arc<dyn Store>) {
        write_with_attempts(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")]), 2).await;
        for attempt in 1..=2 {
            let lease = claim(&*store, "g", "x", SHORT).await.unwrap();
            assert_eq!(lease.attempt, attempt);
            tokio::time::sleep(SHORT * 2).await;
            let out = store.reap("g").await.unwrap();
            if attempt < 2 {
                assert_eq!(out.requeued, ["a"]);
            } else {
                assert_eq!(out.failed, ["a"]);
                assert!(out.requeued.is_empty());
            }
        }
        assert_eq!(status_of(&*store, "g", "a").await, TaskStatus::Failed);
        assert_eq!(status_of(&*store, "g", "b").await, TaskStatus::Blocked);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.state, GoalState::Failed);
        assert!(claim(&*store, "g", "x", LONG).await.is_none());
    }

    pub async fn fail_retries_after_the_backoff_then_fails_for_good(store: Arc<dyn Store>) {
        write_with_attempts(&*store, plan("g", nodes(&["a"]), &[]), 2).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        let out = store
            .fail(&lease, "flaky", true, SHORT * 2, Recovery::Never)
            .await
            .unwrap();
        assert_eq!(out, FailOutcome::Retrying { after: SHORT * 2 });
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Ready);
        assert_eq!(task.last_error.as_deref(), Some("flaky"));
        match store.claim("g", "x", None, LONG).await.unwrap() {
            ClaimOutcome::Empty {
                retry_in: Some(wait),
                ..
            } => assert!(wait <= SHORT * 2),
            other => panic!("a backing-off task is not claimable yet, got {other:?}"),
        }
        tokio::time::sleep(SHORT * 3).await;
        let second = claim(&*store, "g", "x", LONG)
            .await
            .expect("claimable after backoff");
        assert_eq!(second.attempt, 2);
        let out = store
            .fail(&second, "still flaky", true, SHORT, Recovery::Never)
            .await
            .unwrap();
        assert_eq!(out, FailOutcome::Failed);
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Failed);
        assert_eq!(task.last_error.as_deref(), Some("still flaky"));
        assert_eq!(
            store.goal_status("g").await.unwrap().unwrap().state,
            GoalState::Failed
        );
    }

    pub async fn a_non_retryable_failure_fails_the_task_and_the_goal(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[])).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        let out = store
            .fail(&lease, "bad answer", false, SHORT, Recovery::Never)
            .await
            .unwrap();
        assert_eq!(out, FailOutcome::Failed);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.state, GoalState::Failed);
        assert_eq!(goal.count(TaskStatus::Failed), 1);
        assert!(goal.finished_ms.is_some());
    }

    pub async fn release_gives_the_task_back_without_counting_the_attempt(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a"]), &[])).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        store.release(&lease).await.unwrap();
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!((task.status, task.attempt), (TaskStatus::Ready, 0));
        assert_lost(
            store.complete(&lease, &result("a")).await,
            "complete after release",
        );
        let again = claim(&*store, "g", "y", LONG).await.unwrap();
        assert_eq!((again.attempt, again.fence), (1, 2));
    }

    pub async fn a_goal_backing_off_gives_the_task_back_and_claims_nothing_until_it_ends(
        store: Arc<dyn Store>,
    ) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[])).await;
        let first = claim(&*store, "g", "x", LONG).await.unwrap();
        let second = claim(&*store, "g", "y", LONG).await.unwrap();
        let wait = Duration::from_millis(400);
        store
            .back_off(&first, wait, "429 from claude")
            .await
            .unwrap();
        let task = store.task("g", &first.task).await.unwrap().unwrap();
        assert_eq!(
            (task.status, task.attempt),
            (TaskStatus::Ready, 0),
            "given back without counting the attempt"
        );
        assert_lost(
            store.complete(&first, &result("a")).await,
            "complete after backing off",
        );
        // A second agent hitting the limit with a shorter reset does not cut the wait short.
        store
            .back_off(&second, Duration::from_millis(1), "shorter")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // No agent of the goal claims while it waits, and the claim says how long.
        match store.claim("g", "z", None, LONG).await.unwrap() {
            ClaimOutcome::Empty {
                retry_in: Some(left),
                ..
            } => assert!(left < wait && left > Duration::ZERO, "{left:?}"),
            other => panic!("claimed during the backoff: {other:?}"),
        }
        let status = store.goal_status("g").await.unwrap().unwrap();
        let backoff = status.backoff.expect("the backoff is shown");
        assert_eq!(backoff.reason, "429 from claude");
        assert!(backoff.until_ms >= status.created_ms + 300, "{backoff:?}");
        tokio::time::sleep(wait).await;
        let again = claim(&*store, "g", "z", LONG).await.expect("claims resume");
        assert_eq!((again.task.as_str(), again.attempt), ("a", 1));
    }

    pub async fn drop_task_revokes_the_lease_and_retry_task_brings_it_back(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        store.drop_task("g", "a", "dropped").await.unwrap();
        let task = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Failed);
        assert_eq!(task.last_error.as_deref(), Some("dropped"));
        assert_lost(
            store.complete(&lease, &result("a")).await,
            "complete after drop",
        );
        assert_eq!(
            store.goal_status("g").await.unwrap().unwrap().state,
            GoalState::Failed
        );
        // Dropping a BLOCKED task works too, and dropping twice is harmless.
        store.drop_task("g", "b", "dropped").await.unwrap();
        store.drop_task("g", "b", "dropped").await.unwrap();

        assert_eq!(
            store.retry_task("g", "b").await.unwrap(),
            TaskStatus::Blocked
        );
        assert_eq!(
            store.goal_status("g").await.unwrap().unwrap().state,
            GoalState::Failed,
            "a is still failed"
        );
        assert_eq!(store.retry_task("g", "a").await.unwrap(), TaskStatus::Ready);
        assert_eq!(
            store.goal_status("g").await.unwrap().unwrap().state,
            GoalState::Active
        );
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!((lease.task.as_str(), lease.attempt), ("a", 1));
        assert_eq!(
            store.complete(&lease, &result("a")).await.unwrap().promoted,
            ["b"]
        );
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        assert!(
            store
                .complete(&lease, &result("b"))
                .await
                .unwrap()
                .goal_complete
        );
    }

    pub async fn drop_and_retry_name_unknown_tasks_and_wrong_states(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a"]), &[])).await;
        let err = store.drop_task("g", "nope", "dropped").await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownTask { .. }), "{err:?}");
        assert!(err.to_string().contains("\"nope\""), "{err}");
        let err = store.retry_task("g", "a").await.unwrap_err();
        assert!(err.to_string().contains("is READY"), "{err}");
        let err = store.elevate("g", "nope", 5).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownTask { .. }), "{err:?}");
        let lease = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&lease, &result("a")).await.unwrap();
        let err = store.drop_task("g", "a", "dropped").await.unwrap_err();
        assert!(err.to_string().contains("is DONE"), "{err}");
        assert_eq!(status_of(&*store, "g", "a").await, TaskStatus::Done);
        let err = store.claim("nope", "x", None, LONG).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownGoal { .. }), "{err:?}");
    }

    pub async fn elevate_changes_which_task_is_claimed_next(store: Arc<dyn Store>) {
        write(
            &*store,
            plan(
                "g",
                vec![node("a", 5), node("b", 1), node("c", 0)],
                &[("a", "c")],
            ),
        )
        .await;
        store.elevate("g", "b", 10).await.unwrap();
        // Elevating a BLOCKED task takes effect when it becomes READY.
        store.elevate("g", "c", 20).await.unwrap();
        let first = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!(first.task, "b");
        assert_eq!(store.task("g", "b").await.unwrap().unwrap().priority, 10);
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&a, &result("a")).await.unwrap();
        assert_eq!(store.task("g", "c").await.unwrap().unwrap().priority, 20);
        assert_eq!(claim(&*store, "g", "x", LONG).await.unwrap().task, "c");
    }

    pub async fn the_goal_completes_when_every_task_is_done(store: Arc<dyn Store>) {
        write(
            &*store,
            plan("g", nodes(&["a", "b", "c"]), &[("a", "b"), ("a", "c")]),
        )
        .await;
        let mut completions = Vec::new();
        while let Some(lease) = claim(&*store, "g", "x", LONG).await {
            completions.push(store.complete(&lease, &result(&lease.task)).await.unwrap());
        }
        assert_eq!(completions.len(), 3);
        assert!(completions[..2].iter().all(|c| !c.goal_complete));
        assert!(completions[2].goal_complete);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.state, GoalState::Complete);
        assert_eq!(goal.count(TaskStatus::Done), 3);
        for s in [TaskStatus::Ready, TaskStatus::Running, TaskStatus::Blocked] {
            assert_eq!(goal.count(s), 0, "{s}");
        }
        let tasks = store.tasks("g").await.unwrap();
        assert!(
            tasks
                .iter()
                .all(|t| t.finished_ms.is_some() && t.artifacts.len() == 1)
        );
    }

    pub async fn goal_status_counts_every_state_exactly(store: Arc<dyn Store>) {
        let mut tasks = nodes(&["a", "b", "d", "e", "f", "g"]);
        tasks.push(Node {
            role: Some("w".into()),
            ..node("c", 0)
        });
        write(&*store, plan("g", tasks, &[("a", "d"), ("e", "g")])).await;
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&a, &result("a")).await.unwrap();
        // e holds g up, so it outranks b and d.
        let e = claim(&*store, "g", "x", LONG).await.unwrap();
        let b = claim(&*store, "g", "x", LONG).await.unwrap();
        let d = claim(&*store, "g", "x", LONG).await.unwrap();
        store
            .fail(&d, "flaky", true, LONG, Recovery::Never)
            .await
            .unwrap();
        assert_eq!([&e.task, &b.task, &d.task], ["e", "b", "d"]);
        store
            .fail(&e, "bad", false, SHORT, Recovery::Never)
            .await
            .unwrap();
        // a DONE; b RUNNING; c (role w), d (backing off), f READY; e FAILED; g BLOCKED.
        assert_eq!(counts(&*store).await, [1, 3, 1, 0, 1, 1]);
        store.retry_task("g", "e").await.unwrap();
        assert_eq!(counts(&*store).await, [1, 4, 1, 0, 1, 0]);
        store.drop_task("g", "b", "dropped").await.unwrap();
        assert_eq!(counts(&*store).await, [1, 4, 0, 0, 1, 1]);
    }

    pub async fn the_agent_guard_admits_one_holder_at_a_time(store: Arc<dyn Store>) {
        let store = &*store;
        let acquire = |holder| store.acquire_agent_guard("research", holder, SHORT);
        let renew = |holder| store.renew_agent_guard("research", holder, SHORT);
        assert!(acquire("p1").await.unwrap());
        assert!(!acquire("p2").await.unwrap());
        assert!(acquire("p1").await.unwrap(), "re-entrant");
        assert!(renew("p1").await.unwrap());
        assert!(!renew("p2").await.unwrap());
        store.release_agent_guard("research", "p2").await.unwrap();
        assert!(!acquire("p2").await.unwrap());
        store.release_agent_guard("research", "p1").await.unwrap();
        assert!(acquire("p2").await.unwrap());
        // A holder that dies stops renewing; the guard then expires and frees the name.
        tokio::time::sleep(SHORT * 2).await;
        assert!(!renew("p2").await.unwrap());
        assert!(acquire("p3").await.unwrap());
        // p3 dies; p4 waits for the name, trying every third of the TTL. Its
        // tries must not keep p3's guard alive (a restarted process then never
        // got its agents back).
        let waiting = tokio::time::Instant::now();
        while !acquire("p4").await.unwrap() {
            assert!(
                waiting.elapsed() < SHORT * 3,
                "a waiter's tries kept the dead holder's guard alive"
            );
            tokio::time::sleep(SHORT / 3).await;
        }
    }

    pub async fn agent_registration_and_heartbeat_ttl(store: Arc<dyn Store>) {
        let record = AgentRecord {
            name: "research".into(),
            goal: "g".into(),
            role: Some("research".into()),
            kind: porki::domain::AgentKind::Reviewer,
            process: "host:1".into(),
            state: porki::store::AgentState::Running,
        };
        store.register_agent(&record).await.unwrap();
        store
            .register_agent(&AgentRecord {
                name: "writer".into(),
                role: None,
                kind: porki::domain::AgentKind::Builder,
                ..record.clone()
            })
            .await
            .unwrap();
        let agents = store.agents().await.unwrap();
        assert_eq!(agents.len(), 2);
        // Read back whole, its kind included.
        assert_eq!(agents[0], record);
        assert_eq!(agents[1].role, None);
        assert_eq!(agents[1].kind, porki::domain::AgentKind::Builder);
        let bad = AgentRecord {
            name: "bad name".into(),
            ..record
        };
        assert!(matches!(
            store.register_agent(&bad).await,
            Err(StoreError::InvalidId(_))
        ));

        // Alive while its guard is taken and renewed; a renewal by someone else
        // keeps nothing alive.
        assert!(!store.agent_alive("research").await.unwrap());
        assert!(
            store
                .acquire_agent_guard("research", "p1", SHORT)
                .await
                .unwrap()
        );
        assert!(store.agent_alive("research").await.unwrap());
        tokio::time::sleep(SHORT * 2 / 3).await;
        assert!(
            store
                .renew_agent_guard("research", "p1", SHORT)
                .await
                .unwrap()
        );
        tokio::time::sleep(SHORT * 2 / 3).await;
        assert!(
            store.agent_alive("research").await.unwrap(),
            "the renewal kept it alive"
        );
        tokio::time::sleep(SHORT * 2).await;
        assert!(!store.agent_alive("research").await.unwrap());
        assert!(
            !store
                .renew_agent_guard("research", "p1", SHORT)
                .await
                .unwrap()
        );
        assert!(!store.agent_alive("research").await.unwrap());
    }

    pub async fn the_stored_plan_reads_back_sorted(store: Arc<dyn Store>) {
        assert!(store.dag("g").await.unwrap().is_none());
        let mut tasks = nodes(&["c", "a", "b"]);
        tasks[0].role = Some("writer".into());
        tasks[0].expected_artifacts = vec!["c.md".into()];
        write(
            &*store,
            plan("g", tasks, &[("b", "c"), ("a", "c"), ("a", "b")]),
        )
        .await;
        let dag = store.dag("g").await.unwrap().unwrap();
        let node_ids: Vec<&str> = dag.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(node_ids, ["a", "b", "c"]);
        assert_eq!(dag.nodes[2].role.as_deref(), Some("writer"));
        assert_eq!(dag.nodes[2].expected_artifacts, ["c.md"]);
        let edges: Vec<(&str, &str)> = dag
            .edges
            .iter()
            .map(|e| (e.source.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(edges, [("a", "b"), ("a", "c"), ("b", "c")]);
    }

    pub async fn events_announce_ready_and_completion(store: Arc<dyn Store>) {
        let mut events = store.events();
        // The Redis feed subscribes in the background; give it a moment to be live.
        tokio::time::sleep(Duration::from_millis(200)).await;
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        let event = next(&mut events).await;
        assert_eq!((event.goal.as_str(), event.kind), ("g", EventKind::Ready));
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&a, &result("a")).await.unwrap();
        // A completion is announced only by what it changes for idle agents.
        assert_eq!(
            next(&mut events).await.kind,
            EventKind::Ready,
            "b was promoted"
        );
        let b = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&b, &result("b")).await.unwrap();
        assert_eq!(next(&mut events).await.kind, EventKind::GoalComplete);
    }

    /// The next event other than a resync, which any backend may send at any
    /// time (a reconnect, a new subscription) to say "look again".
    async fn next(
        events: &mut tokio::sync::broadcast::Receiver<porki::store::StoreEvent>,
    ) -> porki::store::StoreEvent {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event within 5 s")
                .expect("event channel open");
            if event.kind != EventKind::Resync {
                return event;
            }
        }
    }

    pub async fn claim_preferred_takes_the_pick_only_when_it_is_ready_for_the_agent(
        store: Arc<dyn Store>,
    ) {
        let mut writer = node("w", 1);
        writer.role = Some("writer".into());
        let nodes = vec![node("best", 9), node("low", 1), node("blocked", 5), writer];
        write(&*store, plan("g", nodes, &[("best", "blocked")])).await;
        let pick = |task: &'static str| {
            let store = store.clone();
            async move {
                match store
                    .claim_preferred("g", "x", None.into(), LONG, Some(task))
                    .await
                    .unwrap()
                {
                    ClaimOutcome::Claimed(lease) => Some(lease.task),
                    ClaimOutcome::Empty { .. } => None,
                }
            }
        };
        assert_eq!(
            pick("low").await.as_deref(),
            Some("low"),
            "a READY pick is taken"
        );
        assert_eq!(
            pick("blocked").await.as_deref(),
            Some("best"),
            "a BLOCKED pick falls back"
        );
        assert_eq!(
            pick("w").await,
            None,
            "another role's task is not taken, nothing else left"
        );
        assert_eq!(pick("nope").await, None);
        let lease = store
            .claim_preferred("g", "y", Some("writer").into(), LONG, Some("nope"))
            .await
            .unwrap();
        assert!(
            matches!(lease, ClaimOutcome::Claimed(ref l) if l.task == "w"),
            "{lease:?}"
        );
    }
}
