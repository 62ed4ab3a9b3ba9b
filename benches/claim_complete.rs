//! Tasks run per second against a private redis-server and a private Redis
//! Cluster (three primaries, three replicas), single client and 8 concurrent
//! clients, each beside the plain PING round-trip rate of the same run: the plain
//! loop (claim, then complete: two round trips per task) and the
//! `complete_and_claim` loop (one round trip per task). On the cluster each
//! client works through goals of its own, so the goals spread over the slots
//! and the primaries.
//!
//! Server-side cost per task comes from `INFO commandstats`, summed over the
//! primaries before and after each case: commands (those the scripts run
//! included) and scripts (`EVALSHA`, plus the `WAIT` a cluster completion sends
//! with it) per task, and the server time of the scripts per task.
//!
//! Run: `cargo bench --bench claim_complete` (needs `redis-server` and
//! `redis-cli` on PATH). Target: ratio ≥ 0.33, i.e. a cycle costs at most three
//! round trips' worth of time.

// The integration tests' helpers, for their private `redis-server` and cluster;
// the bench leaves the rest unused.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use porki::domain::{Dag, Node};
use porki::store::prelude::*;
use porki::store::{ClaimOutcome, MemoryStore, RedisStore, TaskResult, WriteDagOptions};

const TASKS_PER_CLIENT: usize = 5_000;
const PINGS_PER_CLIENT: usize = 10_000;
const LEASE: Duration = Duration::from_secs(60);
/// Goals per client on the cluster.
const CLUSTER_GOALS_PER_CLIENT: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = support::RedisServer::start();
    let url = server.url();
    let cluster = support::RedisCluster::start();
    println!(
        "tasks run per second vs PING; redis-server on {url}, cluster {}",
        cluster.url()
    );
    println!(
        "{:<48} {:>9} {:>9} {:>6} {:>10} {:>12} {:>12}",
        "case", "tasks/s", "PING/s", "ratio", "cmds/task", "scripts/task", "µs/task"
    );
    for clients in [1usize, 8] {
        for loop_kind in [Loop::ClaimThenComplete, Loop::CompleteAndClaim] {
            // PING measured right before each loop, so both see the same machine load.
            let ping = ping_rate(Target::Single(&url), clients).await;
            let stores = stores(Target::Single(&url), clients).await;
            let goal = format!("bench-{clients}-{}", loop_kind.slug());
            let before = command_stats(&[server_port(&url)]);
            let tasks = cycle_rate(&stores, &vec![vec![goal]; clients], loop_kind).await;
            let cost = command_stats(&[server_port(&url)]).since(&before, tasks.total);
            report(
                format!("redis, {clients} client(s), {}", loop_kind.label()),
                &tasks,
                Some(ping),
                Some(cost),
            );
        }
    }
    let primaries = primary_ports(&cluster);
    for clients in [1usize, 8] {
        for loop_kind in [Loop::ClaimThenComplete, Loop::CompleteAndClaim] {
            let cluster_url = cluster.url();
            let ping = ping_rate(Target::Cluster(&cluster_url), clients).await;
            let stores = stores(Target::Cluster(&cluster_url), clients).await;
            let goals: Vec<Vec<String>> = (0..clients)
                .map(|c| {
                    (0..CLUSTER_GOALS_PER_CLIENT)
                        .map(|g| format!("bench-{clients}-{}-{c}-{g}", loop_kind.slug()))
                        .collect()
                })
                .collect();
            let before = command_stats(&primaries);
            let tasks = cycle_rate(&stores, &goals, loop_kind).await;
            let cost = command_stats(&primaries).since(&before, tasks.total);
            report(
                format!(
                    "cluster, {clients} client(s), {} goals, {}",
                    clients * CLUSTER_GOALS_PER_CLIENT,
                    loop_kind.label()
                ),
                &tasks,
                Some(ping),
                Some(cost),
            );
        }
    }
    for loop_kind in [Loop::ClaimThenComplete, Loop::CompleteAndClaim] {
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Eight workers on one goal.
        let goals = vec![vec!["bench-memory".to_string()]; 8];
        let tasks = cycle_rate(&vec![memory; 8], &goals, loop_kind).await;
        report(
            format!("memory://, 8 clients, {}", loop_kind.label()),
            &tasks,
            None,
            None,
        );
    }
}

fn report(case: String, tasks: &Rate, ping: Option<f64>, cost: Option<Cost>) {
    let dash = || "-".to_string();
    println!(
        "{:<48} {:>9.0} {:>9} {:>6} {:>10} {:>12} {:>12}",
        case,
        tasks.per_second,
        ping.map_or_else(dash, |p| format!("{p:.0}")),
        ping.map_or_else(dash, |p| format!("{:.2}", tasks.per_second / p)),
        cost.as_ref()
            .map_or_else(dash, |c| format!("{:.1}", c.commands)),
        cost.as_ref()
            .map_or_else(dash, |c| format!("{:.2}", c.scripts)),
        cost.as_ref()
            .map_or_else(dash, |c| format!("{:.0}", c.script_us)),
    );
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

/// Where a case runs.
#[derive(Clone, Copy)]
enum Target<'a> {
    Single(&'a str),
    Cluster(&'a str),
}

async fn stores(target: Target<'_>, clients: usize) -> Vec<Arc<dyn Store>> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..clients {
        let store = match target {
            Target::Single(url) => RedisStore::connect(url).await,
            Target::Cluster(url) => RedisStore::connect_cluster(url).await,
        };
        stores.push(Arc::new(store.expect("connect")));
    }
    stores
}

/// PINGs per second over `clients` connections, each waiting for its reply.
async fn ping_rate(target: Target<'_>, clients: usize) -> f64 {
    match target {
        Target::Single(url) => {
            let client = redis::Client::open(url).unwrap();
            let mut connections = Vec::new();
            for _ in 0..clients {
                connections.push(client.get_multiplexed_async_connection().await.unwrap());
            }
            pings(connections).await
        }
        Target::Cluster(url) => {
            let seeds: Vec<String> = url
                .trim_start_matches("redis+cluster://")
                .split(',')
                .map(|node| format!("redis://{node}"))
                .collect();
            let client = redis::cluster::ClusterClient::new(seeds).unwrap();
            let mut connections = Vec::new();
            for _ in 0..clients {
                connections.push(client.get_async_connection().await.unwrap());
            }
            pings(connections).await
        }
    }
}

async fn pings<C>(connections: Vec<C>) -> f64
where
    C: redis::aio::ConnectionLike + Send + 'static,
{
    let clients = connections.len();
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

/// Tasks run, and how fast.
struct Rate {
    total: usize,
    per_second: f64,
}

/// Tasks run per second, one client per store, each draining its goals in turn
/// (`goals[i]` for the client of `stores[i]`).
async fn cycle_rate(stores: &[Arc<dyn Store>], goals: &[Vec<String>], loop_kind: Loop) -> Rate {
    let per_client = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TASKS_PER_CLIENT);
    let mut distinct: Vec<&String> = goals.iter().flatten().collect();
    distinct.sort();
    distinct.dedup();
    let per_goal = (per_client * stores.len()).div_ceil(distinct.len());
    for goal in &distinct {
        let nodes = (0..per_goal)
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
        .validate_with_cap(per_goal)
        .expect("valid plan");
        stores[0]
            .write_dag(&dag, &WriteDagOptions::default())
            .await
            .expect("write plan");
    }
    let total = per_goal * distinct.len();
    let result = TaskResult {
        progress: "ok".into(),
        ..TaskResult::default()
    };
    let started = Instant::now();
    let workers: Vec<_> = stores
        .iter()
        .zip(goals)
        .enumerate()
        .map(|(i, (store, goals))| {
            let store = store.clone();
            let goals = goals.clone();
            let result = result.clone();
            tokio::spawn(async move {
                let agent = format!("bench-{i}");
                let mut done = 0usize;
                for goal in goals {
                    let mut next = store.claim(&goal, &agent, None, LEASE).await.unwrap();
                    while let ClaimOutcome::Claimed(lease) = next {
                        next = match loop_kind {
                            Loop::ClaimThenComplete => {
                                store.complete(&lease, &result).await.unwrap();
                                store.claim(&goal, &agent, None, LEASE).await.unwrap()
                            }
                            Loop::CompleteAndClaim => {
                                store
                                    .complete_and_claim(&lease, &result, None.into(), LEASE)
                                    .await
                                    .unwrap()
                                    .1
                            }
                        };
                        done += 1;
                    }
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
    Rate {
        total,
        per_second: total as f64 / started.elapsed().as_secs_f64(),
    }
}

/// `INFO commandstats` summed over some nodes: command → (calls, usec).
struct Stats(HashMap<String, (u64, u64)>);

/// Server-side cost per task between two [`Stats`].
struct Cost {
    /// Commands, those run inside scripts included.
    commands: f64,
    /// Scripts (and the WAITs sent with cluster completions).
    scripts: f64,
    /// Server time of the scripts, µs.
    script_us: f64,
}

impl Stats {
    fn since(&self, before: &Stats, tasks: usize) -> Cost {
        let delta = |name: &str| {
            let (calls, usec) = self.0.get(name).copied().unwrap_or_default();
            let (was_calls, was_usec) = before.0.get(name).copied().unwrap_or_default();
            (calls - was_calls, usec - was_usec)
        };
        let commands: u64 = self
            .0
            .keys()
            .filter(|name| name.as_str() != "info")
            .map(|name| delta(name).0)
            .sum();
        let (evalsha, evalsha_us) = delta("evalsha");
        let (wait, _) = delta("wait");
        let per_task = |n: u64| n as f64 / tasks as f64;
        Cost {
            commands: per_task(commands),
            scripts: per_task(evalsha + wait),
            script_us: per_task(evalsha_us),
        }
    }
}

fn command_stats(ports: &[u16]) -> Stats {
    let mut stats = HashMap::new();
    for port in ports {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection())
            .expect("connect to a node");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                    .unwrap_or(0)
            };
            let entry = stats.entry(name.to_string()).or_insert((0, 0));
            entry.0 += field("calls");
            entry.1 += field("usec");
        }
    }
    Stats(stats)
}

fn server_port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn primary_ports(cluster: &support::RedisCluster) -> Vec<u16> {
    cluster
        .topology()
        .into_iter()
        .filter(|n| n.primary)
        .map(|n| n.port)
        .collect()
}
