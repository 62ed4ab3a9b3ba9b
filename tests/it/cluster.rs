//! porki on a Redis Cluster: the real binary through a primary failover and a live
//! slot migration of its goal, and the CLI on `redis+cluster://` URLs.
//!
//! The failover and migration tests break a private cluster of their own
//! (`RedisCluster::start`); the CLI test uses the shared one.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::Duration;

use porki::store::prelude::*;
use porki::store::{EventKind, RedisStore, TaskResult, write_plan};

use crate::support::fixture::{Fixture, statuses};
use crate::support::{
    RedisCluster, RedisServer, claim, exit_stderr, hget, llm_gate_turn, nodes, plan, poll, porki,
    success_stdout, temp_dir, tokio_runtime, wait_exit, wait_until,
};

/// Tasks of the goal in the failover and migration runs.
const TASKS: usize = 200;

/// Two `porki run` processes, three agents each, on goal `g` of `url`.
struct Run {
    fixtures: [Fixture; 2],
    children: Vec<Child>,
}

impl Run {
    fn start(name: &str, url: &str) -> Self {
        let fixtures = [
            Fixture::new(&format!("{name}-1"), &["a1", "a2", "a3"], TASKS, 4, "0.05"),
            Fixture::new(&format!("{name}-2"), &["b1", "b2", "b3"], TASKS, 4, "0.05"),
        ];
        let children = fixtures
            .iter()
            .map(|f| {
                f.command(url, "run.log")
                    .args(["--log-style", "json"])
                    .args(["--llm-max-concurrency", "4"])
                    .spawn()
                    .unwrap()
            })
            .collect();
        Run { fixtures, children }
    }

    /// Waits until `done` tasks of the goal are DONE.
    fn wait_done(&self, cluster: &RedisCluster, done: usize) {
        let mut conn = cluster.conn();
        let under_way = poll(Duration::from_secs(90), Duration::from_millis(50), || {
            let remaining: Option<usize> = hget(&mut conn, "goal:{g}", "remaining");
            remaining.is_some_and(|r| TASKS - r >= done).then_some(())
        });
        assert!(
            under_way.is_some(),
            "{done} tasks were not DONE within 90 s: {}\n{}",
            self.fixtures[0].log("run.log"),
            self.fixtures[1].log("run.log")
        );
    }

    /// Waits for both processes to finish the goal.
    fn finish(&mut self) {
        for (child, fixture) in self.children.iter_mut().zip(&self.fixtures) {
            assert_eq!(
                wait_exit(child, Duration::from_secs(240)),
                0,
                "{}",
                fixture.log("run.log")
            );
        }
    }

    /// Checks the goal's end state and the processes' logs: every task DONE, one
    /// accepted completion per task at most (no task DONE twice), and the result
    /// kept is the accepted one's, from the last lease (no stale completion
    /// accepted). Returns what the logs counted, for the test's output.
    fn check(&self, cluster: &RedisCluster) -> Counts {
        let mut conn = cluster.conn();
        let states = statuses(&mut conn, TASKS);
        assert_eq!(states.len(), TASKS);
        assert!(states.values().all(|s| s == "DONE"), "{states:?}");
        let mut counts = Counts::default();
        let mut accepted: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
        for (child, fixture) in self.children.iter().zip(&self.fixtures) {
            for line in fixture.log("run.log").lines() {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let message = entry["fields"]["message"].as_str().unwrap_or("");
                match message {
                    "task done" => {
                        let task = entry["span"]["task"].as_str().expect("task in span");
                        let attempt = entry["span"]["attempt"].as_u64().expect("attempt");
                        accepted
                            .entry(task.to_string())
                            .or_default()
                            .push((child.id(), attempt));
                    }
                    m if m.starts_with("lease lost; task back to READY")
                        || m.starts_with("lease lost at max attempts") =>
                    {
                        counts.lost += 1
                    }
                    m if m.starts_with("stale completion rejected")
                        || m.starts_with("lease lost while the task ran")
                        || m.starts_with("stale failure rejected") =>
                    {
                        counts.rejected += 1
                    }
                    _ => {}
                }
            }
            counts.executions += fixture.starts().len();
        }
        for i in 0..TASKS {
            let id = format!("t{i:03}");
            let key = format!("task:{{g}}:{id}");
            let progress: String = hget(&mut conn, &key, "progress");
            let attempt: u64 = hget(&mut conn, &key, "attempt");
            let by: u32 = progress.rsplit(' ').next().unwrap().parse().unwrap();
            let done = accepted.get(&id).cloned().unwrap_or_default();
            assert!(
                done.len() <= 1,
                "{id} was accepted as DONE more than once: {done:?}"
            );
            if let Some(&(pid, lease_attempt)) = done.first() {
                assert_eq!(
                    (pid, lease_attempt),
                    (by, attempt),
                    "{id}: the result kept ({progress}, attempt {attempt}) is the accepted one"
                );
                counts.accepted += 1;
            }
        }
        counts
    }
}

impl Run {
    /// Asserts that each process's event feed subscribed to the goal's channel
    /// again after the slot moved (so its agents kept waking on events).
    fn assert_resubscribed(&self) {
        for fixture in &self.fixtures {
            let log = fixture.log("run.log");
            assert!(
                log.contains("event feed subscribed again to the goal's events"),
                "the event feed followed the slot: {log}"
            );
        }
    }
}

/// What the logs of a run showed.
#[derive(Debug, Default)]
struct Counts {
    /// Executions the provider recorded.
    executions: usize,
    /// Tasks whose completion was answered ok (the rest were answered with an
    /// error after their write, then found DONE).
    accepted: usize,
    /// Leases the reaper found expired.
    lost: usize,
    /// Holders told their lease was lost (renew, complete or fail refused).
    rejected: usize,
}

#[test]
fn a_primary_failover_mid_run_completes_the_goal_with_no_task_done_twice() {
    let mut cluster = RedisCluster::start();
    let mut run = Run::start("failover", &cluster.url());
    run.wait_done(&cluster, TASKS / 4);

    let slot = cluster.slot_of("goal:{g}");
    let primary = cluster
        .owner_of(slot)
        .expect("the goal's slot has a primary");
    let replica = cluster
        .replica_of(primary)
        .expect("the goal's primary has a replica");
    cluster.kill(primary);
    wait_until(
        Duration::from_secs(30),
        "the replica takes over the goal's slot",
        || cluster.owner_of(slot) == Some(replica),
    );
    // The old primary comes back as a replica of the new one.
    cluster.restart(primary);
    run.finish();

    let counts = run.check(&cluster);
    run.assert_resubscribed();
    println!(
        "failover of :{primary} to :{replica} (slot {slot}) mid-run: {counts:?}, {} tasks",
        TASKS
    );
    assert!(
        counts.accepted >= TASKS * 9 / 10,
        "nearly every completion was answered ok: {counts:?}"
    );
    let node = cluster.topology();
    assert!(
        node.iter()
            .any(|n| n.port == primary && n.replica_of.is_some()),
        "the old primary rejoined as a replica: {node:#?}"
    );
}

#[test]
fn moving_a_live_goals_slot_to_another_primary_loses_nothing() {
    let cluster = RedisCluster::start();
    let mut run = Run::start("migrate", &cluster.url());
    run.wait_done(&cluster, TASKS / 4);

    let slot = cluster.slot_of("goal:{g}");
    let from = cluster
        .owner_of(slot)
        .expect("the goal's slot has a primary");
    let nodes = cluster.topology();
    let id_of = |port: u16| nodes.iter().find(|n| n.port == port).unwrap().id.clone();
    let to = nodes
        .iter()
        .find(|n| n.primary && n.port != from)
        .expect("another primary")
        .port;
    let (from_id, to_id) = (id_of(from), id_of(to));
    let slot_arg = slot.to_string();
    let ok = |port: u16, args: &[&str]| {
        let answer = cluster.cli(port, args);
        assert!(answer.trim() == "OK", "{args:?} on :{port}: {answer}");
    };
    ok(
        to,
        &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id],
    );
    ok(
        from,
        &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id],
    );
    // A few keys at a time, slowly, so the processes work through the migration.
    let mut moved = 0;
    loop {
        let keys = cluster.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "10"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(&keys);
        let answer = cluster.cli(from, &args);
        assert!(
            answer.trim() == "OK" || answer.trim() == "NOKEY",
            "MIGRATE: {answer}"
        );
        moved += keys.len();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(moved > 0, "the goal's keys were in the slot when it moved");
    for port in cluster.ports() {
        let _ = cluster.cli(port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
    }
    run.finish();

    assert_eq!(cluster.owner_of(slot), Some(to), "the slot moved");
    // The processes met the migration: the nodes answered ASK (keys already
    // moved) or TRYAGAIN (a script's keys split between the two nodes).
    let redirects: u64 = [from, to]
        .into_iter()
        .flat_map(|port| {
            let stats = cluster.cli(port, &["INFO", "errorstats"]);
            stats
                .lines()
                .filter(|l| l.starts_with("errorstat_ASK:") || l.starts_with("errorstat_TRYAGAIN:"))
                .filter_map(|l| l.split("count=").nth(1)?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(redirects > 0, "no command met the migration");
    let counts = run.check(&cluster);
    run.assert_resubscribed();
    println!(
        "slot {slot} of goal g moved from :{from} to :{to} mid-run ({moved} keys, {redirects} ASK/TRYAGAIN answers): {counts:?}, {TASKS} tasks"
    );
    assert!(
        counts.accepted >= TASKS * 9 / 10,
        "nearly every completion was answered ok: {counts:?}"
    );
}

#[test]
fn a_goals_events_follow_its_slot_through_a_failover_with_a_resync() {
    let mut cluster = RedisCluster::start();
    tokio_runtime().block_on(async {
        let store = RedisStore::connect_cluster(&cluster.url()).await.unwrap();
        let mut events = store.events();
        // The feed connects in the background; from then on, the first script on a
        // goal waits until the goal's channel is subscribed to.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut next = async move |kind: EventKind| {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let event = tokio::time::timeout_at(deadline, events.recv())
                    .await
                    .unwrap_or_else(|_| panic!("no {kind:?} event within 20 s"))
                    .expect("event channel open");
                if event.kind == kind && (event.goal == "g" || event.goal.is_empty()) {
                    return;
                }
            }
        };
        write_plan(
            &store,
            plan("g", nodes(&["a", "b"]), &[("a", "b")]),
            &Default::default(),
            10,
        )
        .await
        .unwrap();
        next(EventKind::Ready).await;

        let slot = cluster.slot_of("goal:{g}");
        let primary = cluster.owner_of(slot).unwrap();
        let replica = cluster.replica_of(primary).unwrap();
        cluster.kill(primary);
        wait_until(Duration::from_secs(30), "the replica takes over", || {
            cluster.owner_of(slot) == Some(replica)
        });
        // Subscribed again on the new primary, and told to look again.
        next(EventKind::Resync).await;
        let subscribers = || {
            let answer = cluster.cli(replica, &["PUBSUB", "SHARDNUMSUB", "events:{g}"]);
            answer.lines().nth(1).map(str::to_string)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while subscribers().as_deref() != Some("1") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no subscription to events:{{g}} on the new primary"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let a = claim(&store, "g", "x", Duration::from_secs(60))
            .await
            .unwrap();
        store.complete(&a, &TaskResult::default()).await.unwrap();
        next(EventKind::Ready).await;
    });
}

#[test]
fn run_status_and_graph_work_on_a_cluster_url() {
    let cluster = RedisCluster::shared();
    // The demo caps LLM calls with llm:gate, one key for the whole shared cluster.
    let _turn = llm_gate_turn().blocking_lock();
    let url = cluster.url();
    let dir = temp_dir("cluster-demo");
    let output = porki()
        .args(["demo", "--delay", "10ms", "--redis-url", &url, "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = success_stdout(&output);
    assert!(stdout.contains("goal demo-001: complete"), "{stdout}");

    let output = porki()
        .args(["status", "--json", "--goal", "demo-001"])
        .env("PORKI_REDIS_URL", &url)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&success_stdout(&output)).unwrap();
    let text = status.to_string();
    assert!(text.contains("\"complete\""), "{text}");
    // The agents' keys are in slots of their own: the list is read from them all.
    let agents: BTreeSet<&str> = status["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        agents,
        BTreeSet::from(["research", "research_2", "reviewer", "writer"]),
        "{text}"
    );

    let output = porki()
        .args([
            "graph",
            "--goal",
            "demo-001",
            "--format",
            "json",
            "--redis-url",
            &url,
        ])
        .output()
        .unwrap();
    let graph: serde_json::Value = serde_json::from_str(&success_stdout(&output)).unwrap();
    let nodes: BTreeSet<String> = graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert!(nodes.contains("publish"), "{nodes:?}");
}

#[test]
fn a_url_of_the_wrong_kind_is_refused_with_what_to_use_instead() {
    let cluster = RedisCluster::shared();
    let node = cluster.ports()[0];
    let output = porki()
        .args(["status", "--redis-url"])
        .arg(format!("redis://127.0.0.1:{node}"))
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "status on a cluster node with redis://");
    assert!(
        stderr.contains("is a node of a Redis Cluster") && stderr.contains("redis+cluster://"),
        "{stderr}"
    );

    let single = RedisServer::start();
    let url = single.url().replace("redis://", "redis+cluster://");
    let output = porki()
        .args(["status", "--redis-url", &url])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "status on a single Redis with redis+cluster://");
    assert!(
        stderr.contains("is not a Redis Cluster") && stderr.contains("redis://HOST:PORT"),
        "{stderr}"
    );

    let output = porki()
        .args([
            "status",
            "--redis-url",
            "redis+cluster://:hunter2@127.0.0.1:1/2",
        ])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "a cluster URL with a database");
    assert!(stderr.contains("only database 0"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password is hidden: {stderr}"
    );
}
