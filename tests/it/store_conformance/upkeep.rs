//! The goal-level behaviours of issue 12, on every backend like the rest of the
//! suite: replacing a plan is a compare-and-set on the fingerprint the replacer
//! read and keeps what the goal spent; the token budget is reserved before a call
//! and settled after it.

use std::sync::Arc;
use std::time::Duration;

use porki::domain::TaskStatus;
use porki::store::prelude::*;
use porki::store::{
    GoalState, PlanError, Reservation, StoreError, WriteDagOptions, WriteDagOutcome, write_plan,
};

use super::{cluster, memory, redis};

conformance!(
    untimed: [
        a_replan_replaces_only_the_plan_it_read,
        replacing_a_plan_keeps_what_the_goal_spent,
    ],
    timed: [
        token_reservations_admit_calls_while_the_budget_lasts_and_expire,
    ],
);

fn replacing(fingerprint: &str) -> WriteDagOptions {
    WriteDagOptions {
        expected: Some(fingerprint.to_string()),
        ..Default::default()
    }
}

async fn fingerprint(store: &dyn Store, goal: &str) -> String {
    store.goal_status(goal).await.unwrap().unwrap().fingerprint
}

mod behaviour {
    use super::super::{LONG, SHORT, result, statuses, write};
    use super::*;
    use crate::support::{claim, nodes, plan};

    pub async fn a_replan_replaces_only_the_plan_it_read(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        // Two processes replanning the changed instructions both read this plan.
        let read = fingerprint(&*store, "g").await;
        let first = plan("g", nodes(&["x", "y"]), &[("x", "y")]);
        let second = plan("g", nodes(&["p", "q"]), &[]);
        let (outcome, _) = write_plan(&*store, first.clone(), &replacing(&read), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        let replaced = fingerprint(&*store, "g").await;
        let x = claim(&*store, "g", "w", LONG).await.unwrap();
        store.complete(&x, &result("x")).await.unwrap();

        // The second one's plan arrives later: the plan it read is gone.
        let err = write_plan(&*store, second.clone(), &replacing(&read), 100)
            .await
            .unwrap_err();
        match err {
            PlanError::Store(StoreError::PlanConflict { ref existing, .. }) => {
                assert_eq!(existing, &replaced)
            }
            other => panic!("a stale replace must be refused with PlanConflict, got {other:?}"),
        }
        let states = statuses(&*store, "g").await;
        assert_eq!(
            states,
            [
                ("x".into(), TaskStatus::Done),
                ("y".into(), TaskStatus::Ready)
            ]
            .into(),
            "the first replan's progress is kept"
        );
        // Had it got the same answer, it resumes; a write expecting nothing never replaces.
        let (outcome, _) = write_plan(&*store, first, &replacing(&read), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Unchanged);
        assert!(
            write_plan(&*store, second.clone(), &WriteDagOptions::default(), 100)
                .await
                .is_err()
        );
        // Expecting the plan that is stored now replaces it.
        let (outcome, _) = write_plan(&*store, second, &replacing(&replaced), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        assert_eq!(
            statuses(&*store, "g").await.keys().collect::<Vec<_>>(),
            ["p", "q"]
        );
    }

    pub async fn replacing_a_plan_keeps_what_the_goal_spent(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b", "c"]), &[("a", "b")])).await;
        store.add_usage("g", 100, 1.5).await.unwrap();
        // A call in flight holds 30 tokens of a budget; a rate limit makes the goal wait.
        let held = store
            .reserve_tokens("g", "in-flight", 30, 1_000, LONG)
            .await
            .unwrap();
        assert_eq!(held, Reservation::Reserved);
        let a = claim(&*store, "g", "w", LONG).await.unwrap();
        store
            .back_off(&a, Duration::from_secs(600), "429 from claude")
            .await
            .unwrap();
        let c = store.task("g", "c").await.unwrap().unwrap();
        assert_eq!(c.status, TaskStatus::Ready);

        let read = fingerprint(&*store, "g").await;
        let (outcome, _) = write_plan(
            &*store,
            plan("g", nodes(&["x"]), &[]),
            &replacing(&read),
            100,
        )
        .await
        .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(
            (goal.state, goal.total, goal.count(TaskStatus::Ready)),
            (GoalState::Active, 1, 1),
            "the plan is the new one"
        );
        assert_ne!(goal.fingerprint, read);
        assert_eq!(goal.tokens, 100, "tokens spent on the goal are kept");
        assert_eq!(goal.cost_usd, 1.5, "and its cost");
        assert_eq!(
            goal.backoff.map(|b| b.reason).as_deref(),
            Some("429 from claude"),
            "a limit's wait is about the goal, not the plan"
        );
        // The call in flight still holds its 30: 100 + 30 leave 1 of 131.
        let next = |id: &'static str| {
            let store = store.clone();
            async move { store.reserve_tokens("g", id, 1, 131, LONG).await.unwrap() }
        };
        assert_eq!(next("one").await, Reservation::Reserved);
        assert_eq!(
            next("two").await,
            Reservation::Spent {
                spent: 100,
                reserved: 31
            }
        );
        store
            .settle_tokens("g", "in-flight", 20, 0.0)
            .await
            .unwrap();
        assert_eq!(store.goal_status("g").await.unwrap().unwrap().tokens, 120);
    }

    pub async fn token_reservations_admit_calls_while_the_budget_lasts_and_expire(
        store: Arc<dyn Store>,
    ) {
        // The goal has no plan yet (its plan call is the first to reserve).
        let reserve = |id: &'static str, tokens: u64, budget: u64, ttl: Duration| {
            let store = store.clone();
            async move {
                store
                    .reserve_tokens("g", id, tokens, budget, ttl)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(reserve("a", 60, 100, LONG).await, Reservation::Reserved);
        assert_eq!(
            reserve("b", 60, 100, LONG).await,
            Reservation::Reserved,
            "admitted while spent + reserved is under the budget"
        );
        assert_eq!(
            reserve("c", 1, 100, LONG).await,
            Reservation::Spent {
                spent: 0,
                reserved: 120
            }
        );
        assert_eq!(store.settle_tokens("g", "a", 50, 0.25).await.unwrap(), 50);
        assert_eq!(
            reserve("c", 1, 100, LONG).await,
            Reservation::Spent {
                spent: 50,
                reserved: 60
            },
            "a's reservation went, its use counts"
        );
        // b's call failed: it used nothing, and its reservation goes.
        assert_eq!(store.settle_tokens("g", "b", 0, 0.0).await.unwrap(), 50);
        // c's process dies between reserving and settling: its reservation expires.
        assert_eq!(reserve("c", 40, 100, SHORT).await, Reservation::Reserved);
        assert_eq!(
            reserve("d", 1, 90, LONG).await,
            Reservation::Spent {
                spent: 50,
                reserved: 40
            }
        );
        tokio::time::sleep(SHORT * 2).await;
        assert_eq!(reserve("d", 1, 90, LONG).await, Reservation::Reserved);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!((goal.tokens, goal.cost_usd), (50, 0.25));
        // Settling without a reservation adds usage, as add_usage does.
        assert_eq!(store.settle_tokens("g", "", 5, 0.0).await.unwrap(), 55);
    }
}
