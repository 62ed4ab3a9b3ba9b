//! The gate's order on the memory store, on tokio's paused clock: who gets a
//! freed slot, and when.

use std::sync::Mutex;

use super::*;
use crate::store::MemoryStore;

/// Who got a slot, and when.
type Got = Arc<Mutex<Vec<(&'static str, Instant)>>>;

/// Starts a waiter that records when it got its slot and holds it for `hold`.
fn waiter(
    gate: &GateHandle,
    name: &'static str,
    urgency: Urgency,
    got: &Got,
    hold: Duration,
) -> tokio::task::JoinHandle<()> {
    let (gate, got) = (gate.clone(), got.clone());
    actix_rt::spawn(async move {
        let permit = gate.acquire(urgency).await.unwrap();
        got.lock().unwrap().push((name, Instant::now()));
        tokio::time::sleep(hold).await;
        drop(permit);
    })
}

/// A gate of one slot on a fresh memory store, the slot taken.
async fn one_taken_slot() -> (Arc<dyn Store>, GateHandle, SlotPermit) {
    tokio::time::pause();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = LlmGate::spawn(store.clone(), 1, Duration::from_secs(900));
    let held = gate.acquire(Urgency::Plan).await.unwrap();
    (store, gate, held)
}

/// Frees `held` once every waiter is queued, waits for `waiters`, and returns
/// the names in the order they got the slot.
async fn order_after_release(
    held: SlotPermit,
    waiters: Vec<tokio::task::JoinHandle<()>>,
    got: &Got,
) -> Vec<&'static str> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(got.lock().unwrap().is_empty(), "nobody got a taken slot");
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    got.lock().unwrap().iter().map(|(name, _)| *name).collect()
}

const fn task(rank_ms: u64) -> Urgency {
    Urgency::Task { rank_ms }
}

const MINUTE: u64 = 60_000;

#[actix_rt::test]
async fn calls_of_one_rank_take_slots_in_the_order_they_came_and_a_dropped_waiter_takes_none() {
    let (store, gate, first) = one_taken_slot().await;
    let got = Got::default();
    let mut waiters = Vec::new();
    for name in ["b", "c", "d", "e"] {
        waiters.push(waiter(
            &gate,
            name,
            task(0),
            &got,
            Duration::from_millis(300),
        ));
        // Each starts waiting a little after the one before.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // `d` gives up (its caller went away) before its turn.
    waiters.remove(2).abort();
    assert_eq!(
        order_after_release(first, waiters, &got).await,
        ["b", "c", "e"]
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.gate_in_flight().await.unwrap(), 0, "every slot freed");
}

#[actix_rt::test]
async fn a_higher_ranked_call_that_came_later_gets_the_slot_first() {
    let (_store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let hold = Duration::from_millis(100);
    let low = waiter(&gate, "low", task(MINUTE), &got, hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let high = waiter(&gate, "high", task(5 * MINUTE), &got, hold);
    // Not ranked yet counts as 0.
    let unranked = waiter(&gate, "unranked", Urgency::task(None), &got, hold);
    assert_eq!(
        order_after_release(held, vec![low, high, unranked], &got).await,
        ["high", "low", "unranked"]
    );
}

#[actix_rt::test]
async fn a_plan_call_goes_before_any_task_call() {
    let (_store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let hold = Duration::from_millis(100);
    let top = waiter(&gate, "top-task", task(u64::MAX), &got, hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let plan = waiter(&gate, "plan", Urgency::Plan, &got, hold);
    assert_eq!(
        order_after_release(held, vec![top, plan], &got).await,
        ["plan", "top-task"]
    );
}

#[actix_rt::test]
async fn an_old_call_is_overtaken_only_by_calls_ranked_above_it_by_more_than_its_wait() {
    let (_store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let hold = Duration::from_millis(100);
    let old = waiter(&gate, "old", task(0), &got, hold);
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    // Ranked 2 min above `old`, which waited 3: behind it. Ranked 4 min above: ahead.
    let near = waiter(&gate, "near", task(2 * MINUTE), &got, hold);
    let far = waiter(&gate, "far", task(4 * MINUTE), &got, hold);
    assert_eq!(
        order_after_release(held, vec![old, near, far], &got).await,
        ["far", "old", "near"]
    );
}

#[actix_rt::test]
async fn no_rank_moves_a_call_ahead_of_one_that_waited_longer_than_the_rank_cap() {
    let (_store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let hold = Duration::from_millis(100);
    let old = waiter(&gate, "old", task(0), &got, hold);
    tokio::time::sleep(RANK_CAP + Duration::from_secs(1)).await;
    let plan = waiter(&gate, "plan", Urgency::Plan, &got, hold);
    let top = waiter(&gate, "top-task", task(u64::MAX), &got, hold);
    assert_eq!(
        order_after_release(held, vec![old, plan, top], &got).await,
        ["old", "plan", "top-task"]
    );
}

#[actix_rt::test]
async fn a_dropped_waiter_takes_no_slot_and_blocks_nobody() {
    let (store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let hold = Duration::from_millis(100);
    let high = waiter(&gate, "high", Urgency::Plan, &got, hold);
    let low = waiter(&gate, "low", task(0), &got, hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The caller of `high` goes away while it is first in the queue.
    high.abort();
    assert!(high.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let freed_at = Instant::now();
    drop(held);
    low.await.unwrap();
    let got = got.lock().unwrap().clone();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), ["low"]);
    // At once: not after the dropped waiter would have expired from the queue.
    let after = got[0].1 - freed_at;
    assert!(
        after < RECHECK,
        "low got the slot {after:?} after it was freed"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.gate_in_flight().await.unwrap(), 0, "every slot freed");
}

#[actix_rt::test]
async fn a_slot_freed_in_this_process_wakes_its_waiter_at_once() {
    let (_store, gate, held) = one_taken_slot().await;
    let got = Got::default();
    let next = waiter(&gate, "next", task(0), &got, Duration::ZERO);
    // Freed between two of the waiter's rechecks.
    tokio::time::sleep(Duration::from_millis(1000) + RECHECK / 2).await;
    let freed_at = Instant::now();
    drop(held);
    next.await.unwrap();
    let after = got.lock().unwrap()[0].1 - freed_at;
    assert!(after < RECHECK / 4, "given {after:?} after it was freed");
}

#[actix_rt::test]
async fn a_slot_freed_in_another_process_is_taken_within_a_recheck() {
    tokio::time::pause();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = LlmGate::spawn(store.clone(), 1, Duration::from_secs(900));
    // Another process's call holds the slot.
    let other = SlotAsk {
        cap: 1,
        ttl: SLOT_TTL,
        head_start: Duration::ZERO,
        alive_for: WAITER_ALIVE_FOR,
    };
    assert!(store.gate_acquire("other", other).await.unwrap());
    let got = Got::default();
    let next = waiter(&gate, "next", task(0), &got, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1000) + RECHECK / 2).await;
    let freed_at = Instant::now();
    store.gate_release("other").await.unwrap();
    next.await.unwrap();
    let after = got.lock().unwrap()[0].1 - freed_at;
    assert!(after <= RECHECK, "given {after:?} after it was freed");
}

#[actix_rt::test]
async fn a_waiter_gives_up_after_the_wait_and_leaves_the_queue() {
    tokio::time::pause();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = LlmGate::spawn(store, 1, Duration::from_secs(5));
    let held = gate.acquire(Urgency::Plan).await.unwrap();
    let started = Instant::now();
    let err = gate.acquire(Urgency::Plan).await.unwrap_err();
    assert!(matches!(err, GateError::Timeout { cap: 1, .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(
        err.to_string().contains("PORKI_LLM_MAX_CONCURRENCY"),
        "{err}"
    );
    // The call that gave up is not ahead of a later one: it left the queue.
    let got = Got::default();
    let later = waiter(&gate, "later", task(0), &got, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let freed_at = Instant::now();
    drop(held);
    later.await.unwrap();
    let after = got.lock().unwrap()[0].1 - freed_at;
    assert!(after < RECHECK, "given {after:?} after it was freed");
}

#[actix_rt::test]
async fn a_cap_of_zero_gates_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = LlmGate::spawn(store.clone(), 0, Duration::from_secs(1));
    let _permits = [
        gate.acquire(Urgency::Plan).await.unwrap(),
        gate.acquire(task(0)).await.unwrap(),
    ];
    assert_eq!(store.gate_in_flight().await.unwrap(), 0);
}
