//! Proof under faults: the real `porki` binary against a real `redis-server`,
//! killed, stalled and starved, with a provider that records every execution.
//!
//! Long versions (20 kills, 10,000-task soak) run with `PORKI_FAULT_LONG=1`;
//! the default is a shortened version of each scenario that fits CI.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::fixture::{Fixture, ids_in, statuses};
use crate::support::{
    RedisServer, exit_stderr, free_port, hget, porki, signal, temp_dir, tokio_runtime, wait_exit,
    wait_for, wait_until, write_script,
};

fn long() -> bool {
    std::env::var_os("PORKI_FAULT_LONG").is_some()
}

/// A deterministic pseudo-random sequence, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_mid_run_and_restart_completes_without_rerunning_done_tasks() {
    let server = RedisServer::start();
    let tasks = 30;
    let fixture = Fixture::new("kill9", &["a", "b", "c"], tasks, 3, "0.3");
    let mut rng = Lcg(0x5eed);
    let kills = if long() { 20 } else { 3 };
    // A kill lands soon after a run starts a task, most often the task the last
    // kill left RUNNING (reclaimed first): each kill may spend an attempt of the
    // same task, which must not fail it here.
    let attempts = (kills + 2).to_string();
    let run = |log: &str| {
        fixture
            .command(&server.url(), log)
            .args(["--max-attempts", &attempts])
            .spawn()
            .unwrap()
    };
    let mut conn = server.conn();
    // (record length at the kill, DONE then, RUNNING then)
    let mut snapshots = Vec::new();
    // The first kill lands while the (slow) plan call runs.
    let mut planning = fixture
        .command(&server.url(), "planning.log")
        .args(["--max-attempts", &attempts])
        .env("FAULT_PLAN_DELAY", "3")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    signal(&planning, Signal::SIGKILL);
    let _ = planning.wait();
    assert!(
        statuses(&mut conn, tasks).is_empty(),
        "killed while planning: no plan stored"
    );
    for round in 0..kills {
        let mut child = run(&format!("run-{round}.log"));
        // Each kill lands mid-run: once this process has started executing a
        // task (a RUNNING task may be the last one's, its lease not yet expired),
        // a little later.
        let started = fixture.starts().len();
        wait_until(Duration::from_secs(30), "this run executes a task", || {
            fixture.starts().len() > started
        });
        std::thread::sleep(Duration::from_millis(rng.next(900)));
        signal(&child, Signal::SIGKILL);
        let _ = child.wait();
        let states = statuses(&mut conn, tasks);
        snapshots.push((
            fixture.starts().len(),
            ids_in(&states, "DONE"),
            ids_in(&states, "RUNNING"),
        ));
        if states.values().all(|s| s == "DONE") {
            break;
        }
    }
    let mut last = run("final.log");
    assert_eq!(
        wait_exit(&mut last, Duration::from_secs(120)),
        0,
        "{}",
        fixture.log("final.log")
    );

    let states = statuses(&mut conn, tasks);
    assert_eq!(states.len(), tasks);
    assert!(states.values().all(|s| s == "DONE"), "{states:?}");
    // Else the checks below check nothing: a kill landed with tasks in flight
    // and some work already DONE, before the goal was complete.
    assert!(
        snapshots
            .iter()
            .any(|(_, done, running)| !running.is_empty()
                && !done.is_empty()
                && done.len() < tasks),
        "no kill landed mid-run: {snapshots:?}"
    );
    let starts = fixture.starts();
    for (i, (at, done, running)) in snapshots.iter().enumerate() {
        let until = snapshots.get(i + 1).map_or(starts.len(), |s| s.0);
        let after: Vec<&String> = starts[*at..until].iter().map(|(t, _)| t).collect();
        for task in &after {
            assert!(
                !done.contains(*task),
                "kill {i}: {task} was DONE before the kill and ran again"
            );
        }
        for task in running {
            let again = after.iter().filter(|t| **t == task).count();
            assert!(
                again <= 1,
                "kill {i}: {task} was RUNNING at the kill and ran {again} times after"
            );
        }
    }
}

#[test]
fn a_redis_restart_mid_run_pauses_claiming_and_the_goal_still_completes() {
    let mut server = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]);
    let tasks = 24;
    let fixture = Fixture::new("redis-restart", &["a", "b"], tasks, 2, "0.3");
    let mut child = fixture.start(&server.url(), "run.log");
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(120)),
        0,
        "{}",
        fixture.log("run.log")
    );
    let log = fixture.log("run.log");
    assert!(
        log.contains("cannot reach Redis"),
        "the outage is logged: {log}"
    );
    assert!(
        log.contains("reconnected to Redis"),
        "the recovery is logged: {log}"
    );
    assert!(
        !log.contains("lost its single-active guard"),
        "no agent crashed over the outage: {log}"
    );
    let states = statuses(&mut server.conn(), tasks);
    assert!(states.values().all(|s| s == "DONE"), "{states:?}");
    let ran: BTreeSet<String> = fixture.starts().into_iter().map(|(t, _)| t).collect();
    assert_eq!(ran.len(), tasks, "every task ran");
}

#[test]
fn a_stalled_process_loses_its_lease_and_its_late_completion_is_rejected() {
    let server = RedisServer::start();
    let tasks = 6;
    let stalled = Fixture::new("stalled", &["a"], tasks, 1, "1");
    let mut a = stalled.start(&server.url(), "a.log");
    let mut conn = server.conn();
    let held = wait_for(Duration::from_secs(20), "a starts a task", || {
        ids_in(&statuses(&mut conn, tasks), "RUNNING")
            .into_iter()
            .next()
    });
    signal(&a, Signal::SIGSTOP);
    // Another process with its own agent takes over the goal meanwhile.
    let helper = Fixture::new("stalled-b", &["b"], tasks, 1, "0.2");
    let mut b = helper.start(&server.url(), "b.log");
    std::thread::sleep(Duration::from_secs(5));
    signal(&a, Signal::SIGCONT);
    assert_eq!(
        wait_exit(&mut b, Duration::from_secs(60)),
        0,
        "{}",
        helper.log("b.log")
    );
    assert_eq!(
        wait_exit(&mut a, Duration::from_secs(60)),
        0,
        "{}",
        stalled.log("a.log")
    );
    let progress: String = hget(&mut conn, &format!("task:{{g}}:{held}"), "progress");
    assert_eq!(
        progress,
        format!("{held} by {}", b.id()),
        "the reclaimer's result is kept"
    );
    let log = stalled.log("a.log");
    assert!(
        log.contains("stale completion rejected") || log.contains("lease lost"),
        "the stalled holder's result was dropped: {log}"
    );
}

#[test]
fn a_soak_run_finishes_with_flat_memory() {
    let server = RedisServer::start();
    let tasks = if long() { 10_000 } else { 1_500 };
    let dir = temp_dir("soak");
    let mut list = String::from("# Soak\n\n## Tasks\n\n");
    for i in 0..tasks {
        list.push_str(&format!("- [s{i:05}] Task {i} (after: none)\n"));
    }
    std::fs::write(dir.join("worker.md"), list).unwrap();
    let mut instructions = String::from("## Agents\n");
    // One agent carries the task list (the offline planner makes a node per item
    // of each agent's list); the others share the roleless tasks.
    instructions.push_str("### w0\n- Goal: soak\n- Instructions: worker.md\n");
    for a in 1..4 {
        instructions.push_str(&format!("### w{a}\n- Goal: soak\n"));
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), instructions).unwrap();
    let started = Instant::now();
    // Chaos: agents panic mid-task now and then, and once in a while the whole
    // process stalls past the lease TTL with a finished result in hand.
    // The first completion always stalls past the TTL (so a stale result is
    // always rejected), later ones rarely.
    let failpoints =
        "agent-execute=0.5%panic(chaos);agent-before-complete=1*sleep(2500)->0.03%sleep(2500)";
    let mut child = porki()
        // Goals' workspaces in the test's folder, not the crate's.
        .current_dir(&dir)
        .env("FAILPOINTS", failpoints)
        // With backtraces on, the first panic loads the debug binary's symbols
        // (~160 MB, once): a jump that is not the growth this test looks for.
        .env_remove("RUST_BACKTRACE")
        .args([
            "run",
            "--until-done",
            "--llm-provider",
            "offline",
            "--llm-max-concurrency",
            "0",
        ])
        .args([
            "--lease-ttl",
            "2s",
            "--max-attempts",
            "50",
            "--max-restarts",
            "100000",
        ])
        .args(["--redis-url", &server.url(), "--instructions"])
        .arg(dir.join("INSTRUCTIONS.md"))
        .arg("--artifacts-dir")
        .arg(dir.join("artifacts"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let runtime = tokio_runtime();
    let store = runtime
        .block_on(porki::store::RedisStore::connect(&server.url()))
        .unwrap();
    let done = || {
        runtime
            .block_on(porki::store::GoalStore::goal_status(&store, "soak"))
            .unwrap()
            .map_or(0, |s| s.count(porki::domain::TaskStatus::Done))
    };
    let (mut early_rss, mut late_rss) = (None, None);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        let done = done();
        if early_rss.is_none() && done >= tasks as u64 / 10 {
            early_rss = rss_kib(child.id());
        }
        if done >= tasks as u64 * 95 / 100 {
            late_rss = rss_kib(child.id()).or(late_rss);
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the soak did not finish in bounded time"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 0);
    assert_eq!(done(), tasks as u64, "every task DONE");
    let (early, late) = (
        early_rss.expect("RSS sampled early"),
        late_rss.expect("RSS sampled late"),
    );
    println!(
        "soak: {tasks} tasks in {:?}, RSS {early} KiB at 10% done, {late} KiB at the end",
        started.elapsed()
    );
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    let Faults {
        panics,
        lost,
        rejected,
    } = Faults::in_log(&log);
    println!("soak: {panics} agent panics, {lost} lost leases, {rejected} stale results rejected");
    assert!(panics > 0, "the soak had agent panics");
    assert!(lost >= 1, "the soak lost a lease to a stall");
    assert_eq!(
        rejected, lost,
        "every lost lease's late result was rejected, and only those"
    );

    assert!(
        late * 100 <= early * 120,
        "RSS grew from {early} KiB to {late} KiB (more than 20%)"
    );
}

/// Resident set size of a process, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn db_size(server: &RedisServer) -> u64 {
    redis::cmd("DBSIZE").query(&mut server.conn()).unwrap()
}

#[test]
fn bad_instructions_get_a_clear_error_exit_2_and_store_nothing() {
    let server = RedisServer::start();
    let dir = temp_dir("bad-instructions");
    let agent = |name: &str| format!("## Agents\n### {name}\n- Goal: g\n").into_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("binary", vec![0, 159, 146, 150, 0, 1], "binary"),
        ("huge", vec![b'a'; 10 * 1024 * 1024], "limit"),
        (
            "latin1",
            b"## Agents\n### a\n- Goal: caf\xe9\n".to_vec(),
            "UTF-8",
        ),
        ("star", agent("a*b"), "a*b"),
        ("space", agent("a b"), "a b"),
        ("open-brace", agent("a{b"), "a{b"),
        ("close-brace", agent("a}b"), "a}b"),
        ("colon", agent("a:b"), "a:b"),
        ("no-agents", b"# Just a title\n".to_vec(), "## Agents"),
    ];
    // Agents whose task lists wait on each other: a cycle across agents.
    std::fs::write(
        dir.join("x.md"),
        "## Tasks\n- [draft] Draft (after: review)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("y.md"),
        "## Tasks\n- [review] Review (after: draft)\n",
    )
    .unwrap();
    let cyclic = b"## Agents\n### x\n- Goal: g\n- Instructions: x.md\n### y\n- Goal: g\n- Instructions: y.md\n";
    let mut cases = cases;
    cases.push(("cyclic", cyclic.to_vec(), "cycle: draft -> review -> draft"));
    for (name, bytes, expected) in cases {
        let path = dir.join(format!("{name}.md"));
        std::fs::write(&path, bytes).unwrap();
        let validate = porki()
            .args(["instructions", "validate"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = exit_stderr(&validate, 2, name);
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in {stderr}"
        );
        assert!(
            stderr.lines().count() <= 5,
            "{name}: the error is short: {stderr}"
        );
        let run = porki()
            // Goals' workspaces in the test's folder, not the crate's.
            .current_dir(&dir)
            .args([
                "run",
                "--llm-provider",
                "offline",
                "--until-done",
                "--redis-url",
                &server.url(),
                "--instructions",
            ])
            .arg(&path)
            .output()
            .unwrap();
        exit_stderr(&run, 2, name);
        assert_eq!(db_size(&server), 0, "{name}: nothing was stored");
    }
}

/// A `command` provider that answers every plan call with the contents of `answer`.
fn planner_answering(dir: &std::path::Path, answer: &[u8]) -> PathBuf {
    std::fs::write(dir.join("answer.txt"), answer).unwrap();
    let script = dir.join("planner.sh");
    write_script(
        &script,
        format!(
            "#!/bin/sh\ncat > /dev/null\ncat '{}'\n",
            dir.join("answer.txt").display()
        ),
    );
    script
}

#[test]
fn bad_plans_from_the_llm_fail_the_goal_with_the_reason_and_write_no_tasks() {
    let server = RedisServer::start();
    let huge: Vec<serde_json::Value> = (0..100_000)
        .map(|i| serde_json::json!({"id": format!("n{i}")}))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("prose", "I think you should start with research.".into(), "not JSON"),
        ("types", r#"{"nodes": [{"id": 7, "title": ["x"]}]}"#.into(), "nodes"),
        ("cycle", r#"{"nodes":[{"id":"a"},{"id":"b"}],"edges":[{"source":"a","target":"b"},{"source":"b","target":"a"}]}"#.into(), "cycle: a -> b -> a"),
        ("huge", serde_json::json!({"nodes": huge}).to_string(), "more than the limit of 10000"),
        ("key-breaking", r#"{"nodes":[{"id":"a}:b"}]}"#.into(), "task id \"a}:b\" is not allowed"),
    ];
    for (name, answer, expected) in cases {
        let dir = temp_dir(&format!("bad-plan-{name}"));
        let goal = format!("goal-{name}");
        std::fs::write(
            dir.join("I.md"),
            format!("## Agents\n### a\n- Goal: {goal}\n"),
        )
        .unwrap();
        let output = porki()
            // Goals' workspaces in the test's folder, not the crate's.
            .current_dir(&dir)
            .args([
                "run",
                "--until-done",
                "--llm-provider",
                "command",
                "--llm-cli",
            ])
            .arg(planner_answering(&dir, answer.as_bytes()))
            .args(["--redis-url", &server.url(), "--instructions"])
            .arg(dir.join("I.md"))
            .output()
            .unwrap();
        exit_stderr(&output, 1, name);
        let mut conn = server.conn();
        let error: Option<String> = hget(&mut conn, &format!("goal:{{{goal}}}"), "last_error");
        let error = error.unwrap_or_default();
        assert!(
            error.contains(expected),
            "{name}: expected {expected:?} in {error:?}"
        );
        let tasks: Vec<String> = redis::cmd("KEYS")
            .arg(format!("task:{{{goal}}}:*"))
            .query(&mut conn)
            .unwrap();
        assert!(tasks.is_empty(), "{name}: no task written");
    }
}

#[test]
fn an_unreachable_redis_is_retried_with_backoff_and_said_so() {
    let dir = temp_dir("unreachable");
    std::fs::write(dir.join("I.md"), "## Agents\n### a\n- Goal: g\n").unwrap();
    let port = free_port();
    let log = dir.join("stderr.log");
    let mut child = porki()
        // Goals' workspaces in the test's folder, not the crate's.
        .current_dir(&dir)
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--redis-url",
            &format!("redis://127.0.0.1:{port}"),
            "--instructions",
        ])
        .arg(dir.join("I.md"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still retrying, not exited"
    );
    signal(&child, Signal::SIGKILL);
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let retries = text.matches("cannot reach the store; retrying").count();
    assert!(retries >= 2, "the retries are logged: {text}");
}

#[test]
fn an_api_key_never_reaches_logs_errors_or_redis() {
    let server = RedisServer::start();
    let secret = "sk-test-0123456789-SECRET";
    // An OpenAI-compatible server that rejects every request, echoing nothing secret.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"message":"model not found"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = temp_dir("secret");
    std::fs::write(dir.join("I.md"), "## Agents\n### a\n- Goal: g\n").unwrap();
    let output = porki()
        // Goals' workspaces in the test's folder, not the crate's.
        .current_dir(&dir)
        .args([
            "run",
            "--until-done",
            "--log-level",
            "debug",
            "--llm-provider",
            "openai",
            "--llm-base-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--redis-url", &server.url(), "--instructions"])
        .arg(dir.join("I.md"))
        .env("OPENAI_API_KEY", secret)
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 1, "a run with a rejected key");
    assert!(
        stderr.contains("model not found"),
        "the server's message is shown: {stderr}"
    );
    assert!(
        !stderr.contains("SECRET"),
        "the key leaked into the logs: {stderr}"
    );
    let status = porki()
        .args(["status", "--json", "--redis-url", &server.url()])
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("SECRET"),
        "the key leaked into status --json"
    );
    let mut conn = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut conn).unwrap();
        assert!(
            !String::from_utf8_lossy(&dump).contains("SECRET"),
            "the key leaked into {key}"
        );
    }
}

/// What a run's log says the injected faults did.
struct Faults {
    /// Agents that crashed and were restarted.
    panics: usize,
    /// Leases lost (the task went back to READY, or failed at max attempts).
    lost: usize,
    /// Late results of lost leases that the store refused.
    rejected: usize,
}

impl Faults {
    fn in_log(log: &str) -> Self {
        Faults {
            panics: count_lines(log, &["agent crashed; restarting"]),
            lost: count_lines(
                log,
                &[
                    "lease lost; task back to READY",
                    "lease lost at max attempts",
                ],
            ),
            rejected: count_lines(
                log,
                &[
                    "stale completion rejected",
                    "lease lost while the task ran",
                    "stale failure rejected",
                ],
            ),
        }
    }
}

/// Lines of `text` containing any of `needles`.
fn count_lines(text: &str, needles: &[&str]) -> usize {
    text.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .count()
}

/// Several processes, 20 agents in all, with agents panicking mid-task and whole
/// processes stalling past the lease TTL (fail points), on one goal.
fn chaos(processes: usize) {
    let server = RedisServer::start();
    let tasks = 60;
    let fixtures: Vec<Fixture> = (0..processes)
        .map(|p| {
            let agents: Vec<String> = (0..20)
                .filter(|a| a % processes == p)
                .map(|a| format!("p{p}-a{a}"))
                .collect();
            let agents: Vec<&str> = agents.iter().map(String::as_str).collect();
            Fixture::new(&format!("chaos-{processes}-{p}"), &agents, tasks, 3, "0.05")
        })
        .collect();
    // Each process stalls once, holding its first finished result past the lease
    // TTL, so the stale-result path is always exercised; panics are random.
    let failpoints = "agent-execute=8%panic(chaos);agent-before-complete=1*sleep(3000)";
    let mut children: Vec<Child> = fixtures
        .iter()
        .map(|f| {
            f.command(&server.url(), "run.log")
                .args(["--max-attempts", "50"])
                .env("FAILPOINTS", failpoints)
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    for (child, fixture) in children.iter_mut().zip(&fixtures) {
        assert_eq!(
            wait_exit(child, Duration::from_secs(240)),
            0,
            "{}",
            fixture.log("run.log")
        );
    }
    let mut conn = server.conn();
    let states = statuses(&mut conn, tasks);
    assert!(
        states.len() == tasks && states.values().all(|s| s == "DONE"),
        "{states:?}"
    );
    for i in 0..tasks {
        let id = format!("t{i:03}");
        let progress: String = hget(&mut conn, &format!("task:{{g}}:{id}"), "progress");
        let by: u32 = progress.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            pids.contains(&by),
            "{id}: result from an unknown process: {progress}"
        );
    }
    let logs: String = fixtures.iter().map(|f| f.log("run.log")).collect();
    let Faults {
        panics,
        lost,
        rejected,
    } = Faults::in_log(&logs);
    println!(
        "chaos with {processes} processes: {panics} agent panics, {lost} lost leases, {rejected} stale results rejected"
    );
    assert!(panics > 0, "the run had agent panics");
    assert!(
        lost >= processes,
        "each process's stall lost at least its own lease: {lost}"
    );
    assert_eq!(
        rejected, lost,
        "every lost lease's late result was rejected, and only those"
    );
}

#[test]
fn two_processes_with_agent_panics_and_stalls_complete_every_task_once() {
    chaos(2);
}

#[test]
fn three_processes_with_agent_panics_and_stalls_complete_every_task_once() {
    chaos(3);
}

#[test]
fn bad_heartbeat_lines_are_reported_once_and_change_nothing() {
    let server = RedisServer::start();
    let dir = temp_dir("bad-heartbeat");
    std::fs::write(dir.join("tasks.md"), "## Tasks\n- [one] One\n- [two] Two\n").unwrap();
    std::fs::write(
        dir.join("I.md"),
        "## Agents\n### a\n- Goal: g\n- Instructions: tasks.md\n- Heartbeat: hb.md\n",
    )
    .unwrap();
    let mut heartbeat =
        String::from("# operators append below\nthis line is prose, not a directive\n");
    heartbeat.push_str(&"PAUSE ".repeat(200_000));
    heartbeat.push('\n');
    heartbeat.push_str("\u{1}\u{2}garbage\u{7f}\nDROP-TASK nosuch\nELEVATE one lots\n");
    std::fs::write(dir.join("hb.md"), heartbeat).unwrap();
    // A cursor stored at the top of the file: its lines are for this run, not
    // history, so the agent reads them all.
    let _: () = redis::cmd("SET")
        .arg("agent:{a}:heartbeat_cursor")
        .arg("0:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .query(&mut server.conn())
        .unwrap();
    let output = porki()
        .args([
            "run",
            "--until-done",
            "--llm-provider",
            "offline",
            "--redis-url",
            &server.url(),
            "--instructions",
        ])
        .arg(dir.join("I.md"))
        .arg("--artifacts-dir")
        .arg(dir.join("artifacts"))
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 0, "a run with bad heartbeat lines");
    let mut conn = server.conn();
    let errors: Vec<String> = redis::cmd("LRANGE")
        .arg("agent:{a}:errors")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("too long")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("nosuch")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("ELEVATE")), "{errors:?}");
    assert!(
        stderr.len() < 100_000,
        "the 1 MB line is not echoed into the log"
    );
    for task in ["one", "two"] {
        let status: String = hget(&mut conn, &format!("task:{{g}}:{task}"), "status");
        assert_eq!(status, "DONE");
    }
}
