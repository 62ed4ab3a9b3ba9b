//! `best_ready` on every backend: the rank of the READY task a claim within a
//! scope would take now, read from the READY indexes (`--slot-before-claim`
//! queues at the LLM gate with it before claiming).

use std::sync::Arc;

use porki::domain::Node;
use porki::domain::rank::TYPICAL_TASK_MS;
use porki::store::prelude::*;
use porki::store::{ClaimScope, WriteDagOptions, write_plan};

use super::{LONG, cluster, memory, redis, result, write};
use crate::support::{claim, node, nodes, plan};

conformance!(
    untimed: [
        best_ready_is_the_rank_of_the_task_a_claim_in_the_scope_takes,
        best_ready_follows_an_explicit_priority_over_rank,
        best_ready_is_none_when_nothing_is_ready_for_the_scope,
        best_ready_is_zero_for_a_goal_planned_without_ranking,
    ],
    timed: [],
);

/// A reviewer's task `r` (five typical tasks) beside the roleless chain
/// `z1 → z2 → z3` and the roleless short task `a`.
fn roles_and_a_chain() -> porki::domain::Dag {
    let review = Node {
        role: Some("rev".into()),
        estimate: Some(5.0),
        ..node("r", 0)
    };
    let mut tasks = nodes(&["a", "z1", "z2", "z3"]);
    tasks.push(review);
    plan("g", tasks, &[("z1", "z2"), ("z2", "z3")])
}

async fn best(store: &dyn Store, scope: ClaimScope<'_>) -> Option<u64> {
    store.best_ready("g", scope).await.unwrap()
}

mod behaviour {
    use super::*;

    pub async fn best_ready_is_the_rank_of_the_task_a_claim_in_the_scope_takes(
        store: Arc<dyn Store>,
    ) {
        write(&*store, roles_and_a_chain()).await;
        let t = TYPICAL_TASK_MS;
        assert_eq!(best(&*store, ClaimScope::builder(None)).await, Some(3 * t));
        assert_eq!(best(&*store, ClaimScope::only("rev")).await, Some(5 * t));
        assert_eq!(
            best(&*store, ClaimScope::builder(Some("rev"))).await,
            Some(5 * t),
            "the better of the role's and the roleless index"
        );
        assert_eq!(
            best(&*store, ClaimScope::builder(Some("other"))).await,
            Some(3 * t)
        );
        let z1 = claim(&*store, "g", "x", LONG).await.unwrap();
        assert_eq!((z1.task.as_str(), z1.rank_ms), ("z1", Some(3 * t)));
        assert_eq!(
            best(&*store, ClaimScope::builder(None)).await,
            Some(t),
            "a claimed task leaves the index; z2 waits for z1"
        );
        store.complete(&z1, &result("z1")).await.unwrap();
        assert_eq!(
            best(&*store, ClaimScope::builder(None)).await,
            Some(2 * t),
            "a promoted task enters it at its rank"
        );
    }

    pub async fn best_ready_follows_an_explicit_priority_over_rank(store: Arc<dyn Store>) {
        let mut tasks = vec![node("urgent", 1), node("later", -1)];
        tasks.extend(nodes(&["z1", "z2", "z3"]));
        write(&*store, plan("g", tasks, &[("z1", "z2"), ("z2", "z3")])).await;
        let t = TYPICAL_TASK_MS;
        assert_eq!(best(&*store, ClaimScope::builder(None)).await, Some(t));
        assert_eq!(claim(&*store, "g", "x", LONG).await.unwrap().task, "urgent");
        assert_eq!(best(&*store, ClaimScope::builder(None)).await, Some(3 * t));
        assert_eq!(claim(&*store, "g", "x", LONG).await.unwrap().task, "z1");
        assert_eq!(
            best(&*store, ClaimScope::builder(None)).await,
            Some(t),
            "a negative priority keeps its rank"
        );
        assert_eq!(claim(&*store, "g", "x", LONG).await.unwrap().task, "later");
    }

    pub async fn best_ready_is_none_when_nothing_is_ready_for_the_scope(store: Arc<dyn Store>) {
        assert_eq!(
            best(&*store, ClaimScope::builder(None)).await,
            None,
            "no goal"
        );
        write(&*store, roles_and_a_chain()).await;
        assert_eq!(
            best(&*store, ClaimScope::only("other")).await,
            None,
            "another role's index is empty"
        );
        let taken = store
            .claim_preferred("g", "reviewer", ClaimScope::only("rev"), LONG, None)
            .await
            .unwrap();
        assert!(matches!(taken, porki::store::ClaimOutcome::Claimed(ref l) if l.task == "r"));
        assert_eq!(best(&*store, ClaimScope::only("rev")).await, None);
        while claim(&*store, "g", "x", LONG).await.is_some() {}
        assert_eq!(
            best(&*store, ClaimScope::builder(Some("rev"))).await,
            None,
            "z2 and z3 wait for their dependencies"
        );
    }

    pub async fn best_ready_is_zero_for_a_goal_planned_without_ranking(store: Arc<dyn Store>) {
        let options = WriteDagOptions {
            ranked: false,
            ..WriteDagOptions::default()
        };
        write_plan(&*store, roles_and_a_chain(), &options, 100)
            .await
            .unwrap();
        assert_eq!(best(&*store, ClaimScope::builder(None)).await, Some(0));
    }
}
