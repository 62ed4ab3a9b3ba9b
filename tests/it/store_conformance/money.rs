//! The goal money budget (`--goal-budget-usd`) on every backend: a call
//! reserves its estimated cost before it is made and settles the cost the
//! provider reported after it, in the same step as the token budget; a call
//! whose cost no provider reported is counted, never a silent $0.

use std::sync::Arc;
use std::time::Duration;

use porki::store::prelude::*;
use porki::store::{Admission, BudgetAsk, CallCost, WriteDagOptions, write_plan};

use super::{cluster, memory, redis};

conformance!(
    untimed: [
        money_is_admitted_while_spent_reserved_and_the_estimate_fit,
        settling_replaces_the_reservation_with_the_reported_cost,
        concurrent_money_reservations_never_pass_the_budget,
        both_budgets_are_reserved_in_one_step_and_either_refuses,
        calls_of_unknown_cost_are_counted_and_outlive_a_replan,
    ],
    timed: [
        an_expired_money_reservation_stops_counting,
    ],
);

/// What a call asks of a money budget of `usd` (no token budget).
fn ask(usd: f64, ttl: Duration) -> BudgetAsk {
    BudgetAsk {
        tokens: 1,
        token_budget: None,
        usd_budget: Some(usd),
        usd_default: 0.5,
        ttl,
    }
}

/// A money refusal's (spent, reserved, estimate), `None` if not one.
fn refused(admission: Admission) -> Option<(f64, f64, f64)> {
    match admission {
        Admission::Money {
            spent,
            reserved,
            estimate,
        } => Some((spent, reserved, estimate)),
        _ => None,
    }
}

fn close(a: (f64, f64, f64), b: (f64, f64, f64)) -> bool {
    (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9 && (a.2 - b.2).abs() < 1e-9
}

mod behaviour {
    use super::super::{LONG, SHORT};
    use super::*;
    use crate::support::{nodes, plan};

    pub async fn money_is_admitted_while_spent_reserved_and_the_estimate_fit(
        store: Arc<dyn Store>,
    ) {
        // No call reported a cost yet: each reserves the default $0.50.
        let reserve = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .reserve_budget("g", id, &ask(1.0, LONG))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(reserve("a").await, Admission::Reserved);
        assert_eq!(
            reserve("b").await,
            Admission::Reserved,
            "0.50 + 0.50 fit $1"
        );
        let third = refused(reserve("c").await).expect("refused by money");
        assert!(close(third, (0.0, 1.0, 0.5)), "{third:?}");
        // A call dropped midway gives its reservation back.
        store.settle_tokens("g", "b", 0, 0.0).await.unwrap();
        assert_eq!(reserve("c").await, Admission::Reserved);
        // A budget smaller than the default admits the goal's first call.
        let small = ask(0.3, LONG);
        assert_eq!(
            store.reserve_budget("small", "x", &small).await.unwrap(),
            Admission::Reserved
        );
        let next = refused(store.reserve_budget("small", "y", &small).await.unwrap());
        assert!(close(next.unwrap(), (0.0, 0.3, 0.3)), "{next:?}");
    }

    pub async fn settling_replaces_the_reservation_with_the_reported_cost(store: Arc<dyn Store>) {
        let reserve = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .reserve_budget("g", id, &ask(1.0, LONG))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(reserve("a").await, Admission::Reserved);
        assert_eq!(reserve("b").await, Admission::Reserved);
        store
            .settle_budget("g", "a", 15, CallCost::Priced(0.4))
            .await
            .unwrap();
        // a's $0.50 went, its $0.40 counts; the next call reserves the mean, $0.40.
        let after_a = refused(reserve("c").await).expect("0.40 + 0.50 + 0.40 pass $1");
        assert!(close(after_a, (0.4, 0.5, 0.4)), "{after_a:?}");
        store
            .settle_budget("g", "b", 15, CallCost::Priced(0.4))
            .await
            .unwrap();
        let after_b = refused(reserve("c").await).expect("0.80 + 0.40 pass $1");
        assert!(close(after_b, (0.8, 0.0, 0.4)), "{after_b:?}");
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(goal.tokens, 30);
        assert!((goal.cost_usd - 0.8).abs() < 1e-9, "{}", goal.cost_usd);
        let spending = store.goal_spending("g").await.unwrap();
        assert_eq!((spending.priced_calls, spending.cost_unknown), (2, 0));
        assert!((spending.priced_usd - 0.8).abs() < 1e-9);
        // A raised budget admits the next call.
        assert_eq!(
            store
                .reserve_budget("g", "c", &ask(1.2, LONG))
                .await
                .unwrap(),
            Admission::Reserved
        );
    }

    pub async fn concurrent_money_reservations_never_pass_the_budget(store: Arc<dyn Store>) {
        // Twenty calls at once against $2 at $0.50 each: four fit, exactly.
        let calls = (0..20).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("call-{i}");
                store
                    .reserve_budget("g", &id, &ask(2.0, LONG))
                    .await
                    .unwrap()
            })
        });
        let mut admitted = 0;
        for call in calls.collect::<Vec<_>>() {
            if call.await.unwrap() == Admission::Reserved {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 4, "reservations sum to the budget, never past it");
    }

    pub async fn both_budgets_are_reserved_in_one_step_and_either_refuses(store: Arc<dyn Store>) {
        let both = |tokens: u64, usd: f64| BudgetAsk {
            tokens,
            token_budget: Some(100),
            ..ask(usd, LONG)
        };
        assert_eq!(
            store
                .reserve_budget("g", "a", &both(60, 0.5))
                .await
                .unwrap(),
            Admission::Reserved
        );
        // Refused by money: it reserves no tokens either.
        assert!(
            refused(
                store
                    .reserve_budget("g", "b", &both(30, 0.5))
                    .await
                    .unwrap()
            )
            .is_some()
        );
        assert_eq!(
            store
                .reserve_budget("g", "c", &both(30, 5.0))
                .await
                .unwrap(),
            Admission::Reserved,
            "60 + 30 reserved tokens: b's 30 were never held"
        );
        assert_eq!(
            store
                .reserve_budget("g", "d", &both(30, 5.0))
                .await
                .unwrap(),
            Admission::Reserved
        );
        assert_eq!(
            store.reserve_budget("g", "e", &both(1, 5.0)).await.unwrap(),
            Admission::Tokens {
                spent: 0,
                reserved: 120
            },
            "the token budget refuses as before"
        );
    }

    pub async fn calls_of_unknown_cost_are_counted_and_outlive_a_replan(store: Arc<dyn Store>) {
        let (_, _) = write_plan(
            &*store,
            plan("g", nodes(&["a"]), &[]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        assert_eq!(
            store
                .reserve_budget("g", "a", &ask(1.0, LONG))
                .await
                .unwrap(),
            Admission::Reserved
        );
        store
            .settle_budget("g", "a", 15, CallCost::Unknown)
            .await
            .unwrap();
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!((goal.tokens, goal.cost_usd), (15, 0.0));
        assert_eq!(store.goal_spending("g").await.unwrap().cost_unknown, 1);
        // Its reservation went (no priced call: the next reserves the default).
        assert_eq!(
            store
                .reserve_budget("g", "b", &ask(1.0, LONG))
                .await
                .unwrap(),
            Admission::Reserved
        );
        store
            .settle_budget("g", "b", 0, CallCost::Unknown)
            .await
            .unwrap();
        let read = store.goal_status("g").await.unwrap().unwrap().fingerprint;
        let replacing = WriteDagOptions {
            expected: Some(read),
            ..Default::default()
        };
        write_plan(&*store, plan("g", nodes(&["x"]), &[]), &replacing, 100)
            .await
            .unwrap();
        let spending = store.goal_spending("g").await.unwrap();
        assert_eq!(
            spending.cost_unknown, 2,
            "what the goal spent outlives its plan"
        );
        assert_eq!(
            store.goal_spending("none").await.unwrap(),
            Default::default()
        );
    }

    pub async fn an_expired_money_reservation_stops_counting(store: Arc<dyn Store>) {
        // The process dies between reserving and settling.
        assert_eq!(
            store
                .reserve_budget("g", "a", &ask(0.5, SHORT))
                .await
                .unwrap(),
            Admission::Reserved
        );
        assert!(
            refused(
                store
                    .reserve_budget("g", "b", &ask(0.5, LONG))
                    .await
                    .unwrap()
            )
            .is_some()
        );
        tokio::time::sleep(SHORT * 2).await;
        assert_eq!(
            store
                .reserve_budget("g", "b", &ask(0.5, LONG))
                .await
                .unwrap(),
            Admission::Reserved
        );
    }
}
