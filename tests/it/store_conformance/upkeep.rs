//! The goal-level behaviours of issue 12, on every backend like the rest of the
//! suite: the token budget is reserved before a call and settled after it.

use std::sync::Arc;
use std::time::Duration;

use porki::store::Reservation;
use porki::store::prelude::*;

use super::{cluster, memory, redis};

conformance!(
    untimed: [],
    timed: [
        token_reservations_admit_calls_while_the_budget_lasts_and_expire,
    ],
);

mod behaviour {
    use super::super::{LONG, SHORT};
    use super::*;

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
