//! Keeping goals right across processes and over time (issue 12): the token
//! budget under concurrent calls, and the event feed's first resync. (The
//! store-level halves run on every backend in `store_conformance::upkeep`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use porki::llm::{FailureKind, LlmError, LlmProvider, LlmRequest, LlmResponse, Phase, Usage};
use porki::llm_gate::{CallError, LlmCaller, LlmGate};
use porki::store::prelude::*;
use porki::store::{EventKind, MemoryStore, RedisStore, Reservation};

use crate::support::{Prefixed, RedisCluster, RedisServer};

const LONG: Duration = Duration::from_secs(60);

async fn redis_store(server: &RedisServer) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&server.url()).await.unwrap())
}

async fn cluster_store() -> Arc<dyn Store> {
    let store = RedisStore::connect_cluster(&RedisCluster::shared().url())
        .await
        .unwrap();
    Prefixed::new(Arc::new(store))
}

fn caller(
    store: &Arc<dyn Store>,
    provider: Arc<dyn LlmProvider>,
    budget: Option<u64>,
) -> LlmCaller {
    LlmCaller {
        gate: LlmGate::spawn(store.clone(), 0, Duration::from_secs(30)),
        provider,
        store: store.clone(),
        goal_token_budget: budget,
        metrics: Default::default(),
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// --- defect 9: the token budget under concurrent calls -----------------------

/// Answers every call after `delay`, reporting exactly the tokens
/// `Usage::estimate` gives its prompt.
struct Counted {
    calls: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl LlmProvider for Counted {
    fn name(&self) -> &str {
        "counted"
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(LlmResponse {
            text: "{}".into(),
            usage: Usage::estimate(&request.prompt, ""),
        })
    }
}

/// Prompts of 400 characters: an estimate of 100 tokens each.
const ESTIMATE: u64 = 100;
const BUDGET: u64 = 250;

async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate(store: Arc<dyn Store>) {
    let provider = Arc::new(Counted {
        calls: AtomicUsize::new(0),
        delay: Duration::from_millis(300),
    });
    let caller = caller(&store, provider.clone(), Some(BUDGET));
    let request = LlmRequest::new(Phase::Execute, "x".repeat(400), LONG);
    let results = futures::future::join_all((0..8).map(|_| caller.call("g", &request))).await;
    let spent = store.goal_status("g").await.unwrap().unwrap().tokens;
    assert!(
        spent <= BUDGET + ESTIMATE,
        "8 concurrent calls spent {spent} of a {BUDGET}-token budget"
    );
    let made = provider.calls.load(Ordering::SeqCst);
    assert_eq!(
        made, 3,
        "admitted while spent + reserved < budget: 0, 100, 200"
    );
    assert_eq!(spent, 300);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        // Refused while calls in flight held the rest: the goal waits, it does not fail.
        assert!(
            matches!(refused, CallError::BudgetReserved { .. }),
            "{refused}"
        );
        assert!(matches!(refused.kind(), FailureKind::RateLimited { .. }));
    }
    // Settled, the budget is spent: the next call fails closed.
    let err = caller.call("g", &request).await.unwrap_err();
    assert!(
        matches!(err, CallError::BudgetSpent { spent: 300, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::Fatal);
    assert!(err.to_string().contains("--goal-token-budget"), "{err}");
}

/// A call dropped midway (lease lost, DROP-TASK) gives its reservation back at
/// once instead of holding the budget until the reservation expires.
async fn a_dropped_call_gives_its_reservation_back(store: Arc<dyn Store>) {
    let provider = Arc::new(Counted {
        calls: AtomicUsize::new(0),
        delay: LONG,
    });
    let caller = caller(&store, provider.clone(), Some(ESTIMATE));
    let request = LlmRequest::new(Phase::Execute, "x".repeat(400), LONG);
    let call = tokio::time::timeout(Duration::from_millis(200), caller.call("g", &request));
    assert!(call.await.is_err(), "the call was dropped");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    wait_for("the dropped call's reservation is given back", async || {
        let probe = store.reserve_tokens("g", "probe", 1, ESTIMATE, LONG).await;
        probe.unwrap() == Reservation::Reserved
    })
    .await;
    store.settle_tokens("g", "probe", 0, 0.0).await.unwrap();
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_memory() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(store.clone()).await;
    a_dropped_call_gives_its_reservation_back(Arc::new(MemoryStore::new())).await;
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_redis() {
    let server = RedisServer::start();
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(redis_store(&server).await).await;
    let other = RedisServer::start();
    a_dropped_call_gives_its_reservation_back(redis_store(&other).await).await;
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_cluster() {
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(cluster_store().await).await;
    a_dropped_call_gives_its_reservation_back(cluster_store().await).await;
}

// --- defect 14: the first subscription -----------------------------------------

#[tokio::test]
async fn the_single_redis_feed_sends_a_resync_after_its_first_subscription() {
    // What was published before the subscription was live is lost (pub/sub keeps
    // nothing): subscribers must be told to look again, the first time too.
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut events = store.events();
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s of subscribing")
        .unwrap();
    assert_eq!((first.goal.as_str(), first.kind), ("", EventKind::Resync));
}
