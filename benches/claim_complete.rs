//! Claim→complete cycles per second against a private redis-server, single client and
//! 8 concurrent clients, each beside the plain PING round-trip rate of the same run.
//!
//! Run: `cargo bench --bench claim_complete` (needs `redis-server` on PATH).
//! Target: ratio ≥ 0.33, i.e. a cycle costs at most three round trips' worth of time.

#[allow(dead_code)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use porki::domain::{Dag, Node};
use porki::store::{ClaimOutcome, MemoryStore, RedisStore, Store, TaskResult, WriteDagOptions};

const TASKS_PER_CLIENT: usize = 5_000;
const PINGS_PER_CLIENT: usize = 10_000;
const LEASE: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = redis_server::RedisServer::start();
    let url = server.url();
    println!("claim→complete vs PING, redis-server on {url}");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "case", "cycles/s", "PING/s", "ratio"
    );
    for clients in [1usize, 8] {
        let ping = ping_rate(&url, clients).await;
        let stores = redis_stores(&url, clients).await;
        let cycles = cycle_rate(&stores, &format!("bench-{clients}")).await;
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>8.2}",
            format!("redis, {clients} client(s)"),
            cycles,
            ping,
            cycles / ping
        );
    }
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cycles = cycle_rate(&vec![memory; 8], "bench-memory").await;
    println!(
        "{:<34} {:>12.0} {:>12} {:>8}",
        "memory://, 8 clients", cycles, "-", "-"
    );
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
        let store = RedisStore::connect(url).await.expect("connect");
        connections.push(store.connection());
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

/// Claim+complete cycles per second, one client per store, until the goal is drained.
async fn cycle_rate(stores: &[Arc<dyn Store>], goal: &str) -> f64 {
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
                while let ClaimOutcome::Claimed(lease) =
                    store.claim(&goal, &agent, None, LEASE).await.unwrap()
                {
                    store.complete(&lease, &result).await.unwrap();
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
