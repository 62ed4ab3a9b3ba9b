//! Ranking by the critical path (issue 21) on every backend: a claim takes the
//! READY task of the highest explicit priority, then of the highest rank (the
//! estimated work waiting behind it), then the smallest id; ranks are written
//! with the plan, kept through promotions, releases and retries, given to tasks
//! added at run time, and refreshed by `rerank`.

use std::collections::BTreeMap;
use std::sync::Arc;

use porki::domain::rank::{EstimateSource, StoredRank, TYPICAL_TASK_MS};
use porki::domain::{Node, TaskStatus};
use porki::store::prelude::*;
use porki::store::{ClaimScope, Recovery, RedisStore, WriteDagOptions, write_plan};

use super::{LONG, SHORT, cluster, memory, redis, result, write};
use crate::support::{RedisServer, claim, node, nodes, plan};

conformance!(
    untimed: [
        a_claim_takes_the_task_holding_the_most_work_up_whatever_its_id,
        an_explicit_priority_wins_over_rank,
        a_recovery_ranks_as_high_as_what_the_failed_task_held_up,
        refreshed_ranks_reorder_ready_tasks_unless_the_goal_was_replanned,
        a_goal_planned_without_ranking_claims_by_priority_then_id,
    ],
    timed: [promoted_and_released_tasks_keep_their_rank],
);

/// Short tasks `a`, `b`, `c` beside the chain `z1 → z2 → z3`, whose ids sort last.
fn chain_beside_short_tasks() -> porki::domain::Dag {
    plan(
        "g",
        nodes(&["a", "b", "c", "z1", "z2", "z3"]),
        &[("z1", "z2"), ("z2", "z3")],
    )
}

/// Claims every claimable task of goal `g` for one roleless agent, in order.
async fn claim_all(store: &dyn Store) -> Vec<String> {
    let mut order = Vec::new();
    while let Some(lease) = claim(store, "g", "x", LONG).await {
        order.push(lease.task);
    }
    order
}

async fn rank_of(store: &dyn Store, task: &str) -> Option<u64> {
    store.task("g", task).await.unwrap().unwrap().rank_ms
}

mod behaviour {
    use super::*;

    pub async fn a_claim_takes_the_task_holding_the_most_work_up_whatever_its_id(
        store: Arc<dyn Store>,
    ) {
        write(&*store, chain_beside_short_tasks()).await;
        let head = store.task("g", "z1").await.unwrap().unwrap();
        assert_eq!(
            head.rank_ms,
            Some(3 * TYPICAL_TASK_MS),
            "three tasks behind"
        );
        assert_eq!(head.estimate_ms, Some(TYPICAL_TASK_MS));
        assert_eq!(head.estimate_source, Some(EstimateSource::Default));
        assert_eq!(rank_of(&*store, "a").await, Some(TYPICAL_TASK_MS));
        let z1 = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!(
            (z1.task.as_str(), z1.rank_ms),
            ("z1", Some(3 * TYPICAL_TASK_MS)),
            "the lease carries the rank, for the LLM gate"
        );
        // Completing and claiming in one step hands the next rank over too.
        let (_, next) = store
            .complete_and_claim(&z1, &result("z1"), ClaimScope::builder(None), LONG)
            .await
            .unwrap();
        let porki::store::ClaimOutcome::Claimed(z2) = next else {
            panic!("z2 is READY: {next:?}");
        };
        assert_eq!(
            (z2.task.as_str(), z2.rank_ms),
            ("z2", Some(2 * TYPICAL_TASK_MS))
        );
        assert_eq!(claim_all(&*store).await, ["a", "b", "c"]);
    }

    pub async fn an_explicit_priority_wins_over_rank(store: Arc<dyn Store>) {
        let mut tasks = vec![node("urgent", 1), node("later", -1)];
        tasks.extend(nodes(&["z1", "z2", "plain"]));
        // The plan's own size estimates weigh in too: `plain` is four typical tasks.
        tasks.last_mut().unwrap().estimate = Some(4.0);
        write(&*store, plan("g", tasks, &[("z1", "z2")])).await;
        assert_eq!(rank_of(&*store, "plain").await, Some(4 * TYPICAL_TASK_MS));
        assert_eq!(
            store
                .task("g", "plain")
                .await
                .unwrap()
                .unwrap()
                .estimate_source,
            Some(EstimateSource::Plan)
        );
        assert_eq!(claim_all(&*store).await, ["urgent", "plain", "z1", "later"]);
    }

    pub async fn promoted_and_released_tasks_keep_their_rank(store: Arc<dyn Store>) {
        // root → a (short), root → y1 → y2 (the longer branch).
        let dag = plan(
            "g",
            nodes(&["a", "root", "y1", "y2"]),
            &[("root", "a"), ("root", "y1"), ("y1", "y2")],
        );
        write(&*store, dag).await;
        let root = claim(&*store, "g", "x", LONG).await.unwrap();
        store.complete(&root, &result("root")).await.unwrap();
        let y1 = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!(y1.task, "y1", "the promoted head of the longer branch");
        store.release(&y1).await.unwrap();
        let again = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!(again.task, "y1", "a released task goes back at its rank");
        // A retry backing off comes back at its rank too.
        store
            .fail(&again, "flaky", true, SHORT, Recovery::Never)
            .await
            .unwrap();
        tokio::time::sleep(SHORT * 3).await;
        assert_eq!(claim(&*store, "g", "x", LONG).await.unwrap().task, "y1");
    }

    pub async fn a_recovery_ranks_as_high_as_what_the_failed_task_held_up(store: Arc<dyn Store>) {
        // x → y → z beside the short tasks a and b: x's recovery must still come first.
        let dag = plan(
            "g",
            nodes(&["a", "b", "x", "y", "z"]),
            &[("x", "y"), ("y", "z")],
        );
        write(&*store, dag).await;
        let x = claim(&*store, "g", "x-agent", LONG).await.unwrap();
        assert_eq!(x.task, "x");
        store
            .fail(&x, "broke", false, SHORT, Recovery::SameRole)
            .await
            .unwrap();
        let recovery = store.task("g", "x.recover").await.unwrap().unwrap();
        assert_eq!(recovery.status, TaskStatus::Ready);
        assert_eq!(
            recovery.rank_ms,
            Some(3 * TYPICAL_TASK_MS),
            "one typical task plus the two waiting behind x"
        );
        assert_eq!(claim_all(&*store).await, ["x.recover", "a", "b"]);
    }

    pub async fn refreshed_ranks_reorder_ready_tasks_unless_the_goal_was_replanned(
        store: Arc<dyn Store>,
    ) {
        write(&*store, plan("g", nodes(&["a", "b", "c"]), &[])).await;
        let fingerprint = store.goal_status("g").await.unwrap().unwrap().fingerprint;
        let ranks = |rank_ms: u64| StoredRank {
            rank_ms,
            estimate_ms: rank_ms,
            source: EstimateSource::Measured,
        };
        let fresh = BTreeMap::from([
            ("b".to_string(), ranks(99_000)),
            ("c".to_string(), ranks(70_000)),
            ("gone".to_string(), ranks(99_000)),
        ]);
        assert_eq!(
            store
                .rerank("g", "another plan", 1_000, &fresh)
                .await
                .unwrap(),
            0,
            "ranks of another plan are ignored"
        );
        assert_eq!(rank_of(&*store, "b").await, Some(TYPICAL_TASK_MS));
        assert_eq!(
            store
                .rerank("g", &fingerprint, 4_000, &fresh)
                .await
                .unwrap(),
            2,
            "a task that does not exist is skipped"
        );
        assert!(store.task("g", "gone").await.unwrap().is_none());
        let b = store.task("g", "b").await.unwrap().unwrap();
        assert_eq!(
            (b.rank_ms, b.estimate_source),
            (Some(99_000), Some(EstimateSource::Measured))
        );
        assert_eq!(claim_all(&*store).await, ["b", "c", "a"]);
    }

    pub async fn a_goal_planned_without_ranking_claims_by_priority_then_id(store: Arc<dyn Store>) {
        let options = WriteDagOptions {
            ranked: false,
            ..WriteDagOptions::default()
        };
        write_plan(&*store, chain_beside_short_tasks(), &options, 100)
            .await
            .unwrap();
        assert!(!store.goal_status("g").await.unwrap().unwrap().ranked);
        let head = store.task("g", "z1").await.unwrap().unwrap();
        assert_eq!((head.rank_ms, head.estimate_ms), (None, None));
        let a = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!(a.task, "a");
        // A task added at run time is not ranked either.
        store
            .fail(&a, "broke", false, SHORT, Recovery::SameRole)
            .await
            .unwrap();
        assert_eq!(rank_of(&*store, "a.recover").await, None);
        assert_eq!(claim_all(&*store).await, ["a.recover", "b", "c", "z1"]);
    }
}

/// Two processes agree on the order: one writes the plan, a second one (its
/// own connection) claims for a role and takes the chain's head of that role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_claims_by_the_ranks_the_plan_was_written_with() {
    let server = RedisServer::start();
    let writer = RedisStore::connect(&server.url()).await.expect("connect");
    let claimer = RedisStore::connect(&server.url()).await.expect("connect");
    let build = |id: &str| Node {
        role: Some("build".into()),
        ..node(id, 0)
    };
    let tasks = vec![
        build("a"),
        build("b"),
        build("m1"),
        build("m2"),
        build("m3"),
    ];
    let dag = plan("g", tasks, &[("m1", "m2"), ("m2", "m3")]);
    write(&writer, dag).await;
    let mut order = Vec::new();
    while let porki::store::ClaimOutcome::Claimed(lease) = claimer
        .claim("g", "builder", Some("build"), LONG)
        .await
        .unwrap()
    {
        order.push(lease.task);
    }
    assert_eq!(order, ["m1", "a", "b"]);
}
