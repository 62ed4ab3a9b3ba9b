//! The LLM gate's slots and wait queue (`llm:gate`, `{llm:gate}:queue`), on
//! every backend: the cap, who is next for a freed slot (the earliest place, a
//! place being a waiter's first attempt less its head start), and waiters that
//! leave or stop asking. On the cluster the gate is one key for the whole
//! binary: the tests take turns and use tokens of their own.

use std::sync::Arc;
use std::time::Duration;

use porki::store::prelude::*;
use porki::store::{SlotAsk, new_token};

use super::{LONG, SHORT, cluster, memory, redis};
use crate::support::llm_gate_turn;

conformance!(
    untimed: [
        a_freed_slot_goes_to_the_earliest_place_in_the_queue,
        free_slots_go_to_as_many_waiters_at_the_front,
        a_waiter_that_leaves_blocks_nobody,
    ],
    timed: [
        the_llm_gate_caps_slots_and_frees_a_dead_holders_slot,
        a_waiter_that_stops_asking_blocks_nobody_once_it_is_no_longer_alive,
        a_waiter_keeps_its_place_and_is_overtaken_only_by_a_head_start_above_its_wait,
    ],
);

const MINUTE: Duration = Duration::from_secs(60);

/// An attempt at one of `cap` slots for a waiter `head_start` ahead, alive for a minute.
fn ask(cap: u32, head_start: Duration) -> SlotAsk {
    SlotAsk {
        cap,
        ttl: LONG,
        head_start,
        alive_for: LONG,
    }
}

/// This test's tokens: `name` made unique, and freed at the end.
struct Tokens {
    run: String,
    used: std::sync::Mutex<Vec<String>>,
}

impl Tokens {
    fn new() -> Self {
        Self {
            run: new_token(),
            used: Default::default(),
        }
    }

    fn get(&self, name: &str) -> String {
        let token = format!("{}-{name}", self.run);
        self.used.lock().unwrap().push(token.clone());
        token
    }

    /// Frees every slot and queue place of this test.
    async fn free_all(&self, store: &dyn Store) {
        let used = self.used.lock().unwrap().clone();
        for token in used {
            store.gate_release(&token).await.unwrap();
        }
    }
}

mod behaviour {
    use super::*;

    pub async fn the_llm_gate_caps_slots_and_frees_a_dead_holders_slot(store: Arc<dyn Store>) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let (a, b, c, d, e) = (t.get("a"), t.get("b"), t.get("c"), t.get("d"), t.get("e"));
        let short = SlotAsk {
            ttl: SHORT,
            ..ask(2, Duration::ZERO)
        };
        assert!(
            store
                .gate_acquire(&a, ask(2, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(store.gate_acquire(&b, short).await.unwrap());
        assert!(
            !store
                .gate_acquire(&c, ask(2, Duration::ZERO))
                .await
                .unwrap(),
            "both slots taken"
        );
        assert!(
            store
                .gate_acquire(&a, ask(2, Duration::ZERO))
                .await
                .unwrap(),
            "a holder re-acquires"
        );
        assert_eq!(store.gate_in_flight().await.unwrap(), 2);
        store.gate_release(&a).await.unwrap();
        assert!(
            store
                .gate_acquire(&c, ask(2, Duration::ZERO))
                .await
                .unwrap()
        );
        // b stops renewing (its process died): its slot frees itself.
        tokio::time::sleep(SHORT * 2).await;
        assert!(!store.gate_renew(&b, LONG).await.unwrap());
        assert!(
            store
                .gate_acquire(&d, ask(2, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(store.gate_renew(&d, LONG).await.unwrap());
        assert!(
            !store
                .gate_acquire(&e, ask(2, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(
            store
                .gate_acquire(&e, ask(0, Duration::ZERO))
                .await
                .unwrap(),
            "cap 0 means no cap"
        );
        t.free_all(&*store).await;
        assert_eq!(store.gate_in_flight().await.unwrap(), 0);
    }

    pub async fn a_freed_slot_goes_to_the_earliest_place_in_the_queue(store: Arc<dyn Store>) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let (held, low, mid, high) = (t.get("held"), t.get("low"), t.get("mid"), t.get("high"));
        assert!(
            store
                .gate_acquire(&held, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        // Queued in this order, each ahead of the one before by its head start.
        for (waiter, head_start) in [(&low, Duration::ZERO), (&high, 5 * MINUTE), (&mid, MINUTE)] {
            assert!(
                !store
                    .gate_acquire(waiter, ask(1, head_start))
                    .await
                    .unwrap()
            );
        }
        store.gate_release(&held).await.unwrap();
        for (waiter, head_start) in [(&low, Duration::ZERO), (&mid, MINUTE)] {
            assert!(
                !store
                    .gate_acquire(waiter, ask(1, head_start))
                    .await
                    .unwrap(),
                "high is first in the queue"
            );
        }
        assert!(store.gate_acquire(&high, ask(1, 5 * MINUTE)).await.unwrap());
        store.gate_release(&high).await.unwrap();
        assert!(
            !store
                .gate_acquire(&low, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(store.gate_acquire(&mid, ask(1, MINUTE)).await.unwrap());
        store.gate_release(&mid).await.unwrap();
        assert!(
            store
                .gate_acquire(&low, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        t.free_all(&*store).await;
    }

    pub async fn free_slots_go_to_as_many_waiters_at_the_front(store: Arc<dyn Store>) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let holders = [t.get("h1"), t.get("h2")];
        for holder in &holders {
            assert!(
                store
                    .gate_acquire(holder, ask(2, Duration::ZERO))
                    .await
                    .unwrap()
            );
        }
        let waiters = [
            (t.get("first"), 3 * MINUTE),
            (t.get("second"), 2 * MINUTE),
            (t.get("third"), MINUTE),
        ];
        for (waiter, head_start) in &waiters {
            assert!(
                !store
                    .gate_acquire(waiter, ask(2, *head_start))
                    .await
                    .unwrap()
            );
        }
        store.gate_release(&holders[0]).await.unwrap();
        store.gate_release(&holders[1]).await.unwrap();
        let [first, second, third] = &waiters;
        assert!(
            !store.gate_acquire(&third.0, ask(2, third.1)).await.unwrap(),
            "two free slots, two waiters ahead"
        );
        assert!(
            store
                .gate_acquire(&second.0, ask(2, second.1))
                .await
                .unwrap(),
            "two free slots, one waiter ahead"
        );
        assert!(store.gate_acquire(&first.0, ask(2, first.1)).await.unwrap());
        assert!(!store.gate_acquire(&third.0, ask(2, third.1)).await.unwrap());
        assert_eq!(store.gate_in_flight().await.unwrap(), 2);
        t.free_all(&*store).await;
    }

    pub async fn a_waiter_that_leaves_blocks_nobody(store: Arc<dyn Store>) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let (held, gone, stays) = (t.get("held"), t.get("gone"), t.get("stays"));
        assert!(
            store
                .gate_acquire(&held, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(!store.gate_acquire(&gone, ask(1, 5 * MINUTE)).await.unwrap());
        assert!(
            !store
                .gate_acquire(&stays, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        store.gate_release(&held).await.unwrap();
        assert!(
            !store
                .gate_acquire(&stays, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        // `gone`'s caller stops waiting (it timed out, or was dropped).
        store.gate_release(&gone).await.unwrap();
        assert!(
            store
                .gate_acquire(&stays, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        t.free_all(&*store).await;
    }

    pub async fn a_waiter_that_stops_asking_blocks_nobody_once_it_is_no_longer_alive(
        store: Arc<dyn Store>,
    ) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let (held, ghost, live) = (t.get("held"), t.get("ghost"), t.get("live"));
        assert!(
            store
                .gate_acquire(&held, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        // `ghost` counts as alive for SHORT after each attempt; its process dies.
        let ghostly = SlotAsk {
            alive_for: SHORT,
            ..ask(1, 5 * MINUTE)
        };
        assert!(!store.gate_acquire(&ghost, ghostly).await.unwrap());
        assert!(
            !store
                .gate_acquire(&live, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        store.gate_release(&held).await.unwrap();
        assert!(
            !store
                .gate_acquire(&live, ask(1, Duration::ZERO))
                .await
                .unwrap(),
            "ghost is ahead while it counts as alive"
        );
        tokio::time::sleep(SHORT * 2).await;
        assert!(
            store
                .gate_acquire(&live, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        t.free_all(&*store).await;
    }

    pub async fn a_waiter_keeps_its_place_and_is_overtaken_only_by_a_head_start_above_its_wait(
        store: Arc<dyn Store>,
    ) {
        let _turn = llm_gate_turn().lock().await;
        let t = Tokens::new();
        let (held, old, near, far) = (t.get("held"), t.get("old"), t.get("near"), t.get("far"));
        assert!(
            store
                .gate_acquire(&held, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(
            !store
                .gate_acquire(&old, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Asking again keeps the first attempt's place.
        assert!(
            !store
                .gate_acquire(&old, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        // `old` has waited 300 ms: a head start of 200 ms queues behind it, one of
        // 5 s ahead of it.
        let (near_ask, far_ask) = (
            ask(1, Duration::from_millis(200)),
            ask(1, Duration::from_secs(5)),
        );
        assert!(!store.gate_acquire(&near, near_ask).await.unwrap());
        assert!(!store.gate_acquire(&far, far_ask).await.unwrap());
        store.gate_release(&held).await.unwrap();
        assert!(!store.gate_acquire(&near, near_ask).await.unwrap());
        assert!(
            !store
                .gate_acquire(&old, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        assert!(store.gate_acquire(&far, far_ask).await.unwrap());
        store.gate_release(&far).await.unwrap();
        assert!(!store.gate_acquire(&near, near_ask).await.unwrap());
        assert!(
            store
                .gate_acquire(&old, ask(1, Duration::ZERO))
                .await
                .unwrap()
        );
        store.gate_release(&old).await.unwrap();
        assert!(store.gate_acquire(&near, near_ask).await.unwrap());
        t.free_all(&*store).await;
    }
}
