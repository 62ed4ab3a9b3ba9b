//! Tasks run per second against a private redis-server, single client and 8
//! concurrent clients, each beside the plain PING round-trip rate of the same run:
//! the plain loop (claim, then complete: two round trips per task) and the
//! `complete_and_claim` loop (one round trip per task).
//!
//! Run: `cargo bench --bench claim_complete` (needs `redis-server` on PATH).
//! Target: ratio ≥ 0.33, i.e. a cycle costs at most three round trips' worth of time.

// The integration tests' helpers, for their private `redis-server`; the bench
// leaves the rest unused.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use porki::domain::{Dag, Node};
use porki::store::prelude::*;
use porki::store::{ClaimOutcome, MemoryStore, RedisStore, TaskResult, WriteDagOptions};

const TASKS_PER_CLIENT: usize = 5_000;
const PINGS_PER_CLIENT: usize = 10_000;
const LEASE: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = support::RedisServer::start();
    let url = server.url();
    println!("tasks run per second vs PING, redis-server on {url}");
    println!(
        "{:<44} {:>10} {:>10} {:>7}",
        "case", "cycles/s", "PING/s", "ratio"
    );
    for clients in [1usize, 8] {
        for loop_kind in [Loop::ClaimThenComplete, Loop::CompleteAndClaim] {
            // PING measured right before each loop, so both see the same machine load.
            let ping = ping_rate(&url, clients).await;
            let stores = redis_stores(&url, clients).await;
            let goal = format!("bench-{clients}-{}", loop_kind.slug());
            let cycles = cycle_rate(&stores, &goal, loop_kind).await;
            println!(
                "{:<44} {:>10.0} {:>10.0} {:>7.2}",
                format!("redis, {clients} client(s), {}", loop_kind.label()),
                cycles,
                ping,
                cycles / ping
            );
        }
    }
    for loop_kind in [Loop::ClaimThenComplete, Loop::CompleteAndClaim] {
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let cycles = cycle_rate(&vec![memory; 8], "bench-memory", loop_kind).await;
        println!(
            "{:<44} {:>10.0} {:>10} {:>7}",
            format!("memory://, 8 clients, {}", loop_kind.label()),
            cycles,
            "-",
            "-"
        );
    }
}

/// How a worker runs its tasks.
#[derive(Clone, Copy)]
enum Loop {
    /// `claim`, then `complete`: two round trips per task.
    ClaimThenComplete,
    /// One `claim`, then `complete_and_claim` per task: one round trip per task.
    CompleteAndClaim,
}

impl Loop {
    fn label(self) -> &'static str {
        match self {
            Loop::ClaimThenComplete => "claim+complete",
            Loop::CompleteAndClaim => "complete_and_claim",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Loop::ClaimThenComplete => "plain",
            Loop::CompleteAndClaim => "combined",
        }
    }
}

async fn redis_stores(url: &str, clients: usize) -> Vec<Arc<dyn Store>> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..clients {
        stores.push(Arc::new(RedisStore::connect(url).await.expect("connect")));
    }
    stores
}

/// PINGs per second over `clients` connections, each waiting for its reply.
async fn ping_rate(url: &str, clients: usize) -> f64 {
    let mut connections = Vec::new();
    for _ in 0..clients {
        let client = redis::Client::open(url).expect("a Redis URL");
        connections.push(
            client
                .get_multiplexed_async_connection()
                .await
                .expect("connect"),
        );
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                for _ in 0..PINGS_PER_CLIENT {
                    let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (clients * PINGS_PER_CLIENT) as f64 / started.elapsed().as_secs_f64()
}

/// Tasks run per second, one client per store, until the goal is drained.
async fn cycle_rate(stores: &[Arc<dyn Store>], goal: &str, loop_kind: Loop) -> f64 {
    let total = stores.len()
        * std::env::var("BENCH_TASKS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(TASKS_PER_CLIENT);
    let nodes = (0..total)
        .map(|i| Node {
            priority: (i % 7) as i32,
            ..Node::new(format!("t{i}"), "bench")
        })
        .collect();
    let dag = Dag {
        goal_id: goal.to_string(),
        nodes,
        edges: Vec::new(),
    }
    .validate_with_cap(total)
    .expect("valid plan");
    stores[0]
        .write_dag(&dag, &WriteDagOptions::default())
        .await
        .expect("write plan");
    let result = TaskResult {
        progress: "ok".into(),
        artifacts: Vec::new(),
    };
    let started = Instant::now();
    let workers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let store = store.clone();
            let goal = goal.to_string();
            let result = result.clone();
            tokio::spawn(async move {
                let agent = format!("bench-{i}");
                let mut done = 0usize;
                let mut next = store.claim(&goal, &agent, None, LEASE).await.unwrap();
                while let ClaimOutcome::Claimed(lease) = next {
                    next = match loop_kind {
                        Loop::ClaimThenComplete => {
                            store.complete(&lease, &result).await.unwrap();
                            store.claim(&goal, &agent, None, LEASE).await.unwrap()
                        }
                        Loop::CompleteAndClaim => {
                            store
                                .complete_and_claim(&lease, &result, None, LEASE)
                                .await
                                .unwrap()
                                .1
                        }
                    };
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    assert_eq!(done, total, "every task ran once");
    total as f64 / started.elapsed().as_secs_f64()
}
