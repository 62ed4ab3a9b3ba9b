//! What worktree isolation costs a whole run (issue 20): `porki run` (the
//! release binary) with 8 agents and the offline provider on a 200-task
//! fan-out (one root, 199 tasks after it), `--until-done`, against a private
//! redis-server, once with `--isolation shared` and once with `--isolation
//! worktree`. The offline provider writes one report per task into the
//! artifacts folder, which under worktree isolation lies in the attempt's
//! worktree: every task is one commit and one merge into the goal branch.
//!
//! Printed: each run's seconds, the overhead of isolation in ms per task (the
//! difference of the two runs over the tasks), merges per second, how long a
//! merge held the goal's merge lock, and how long merges waited for it: in
//! all, and while nobody held it (time the queue wasted: a waiter that polls
//! too slowly, or a lock not given back). Waits and holds come from the
//! agents' `merge lock released` debug lines. Targets (issue 20): at most 50 ms
//! of overhead per task, and no wait but for another merge: what is left of
//! the wait while the lock was free is asking for it (the acquire's store
//! round trip, and the wake of a waiter after a release).
//!
//! Run: `cargo bench --bench isolation` (needs `redis-server` and `git` on PATH).

#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/project.rs"]
mod project;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TASKS: usize = 200;
const AGENTS: usize = 8;
/// Issue 20's target: what isolation may add to a task, ms.
const OVERHEAD_TARGET_MS: f64 = 50.0;

/// One `porki run` to the end.
struct Run {
    seconds: f64,
    /// Every merge: (asked for the lock, took it, released it), µs since the epoch.
    merges: Vec<[i64; 3]>,
}

fn main() {
    let shared = run("shared");
    let worktree = run("worktree");
    let tasks = TASKS as f64;
    let overhead_ms = (worktree.seconds - shared.seconds) * 1000.0 / tasks;
    let merges = worktree.merges.len() as f64;
    let held: Vec<i64> = worktree.merges.iter().map(|[_, t, r]| r - t).collect();
    let held_ms = held.iter().sum::<i64>() as f64 / merges / 1000.0;
    let waited: i64 = worktree.merges.iter().map(|[a, t, _]| t - a).sum();
    let idle_ms = idle_wait(&worktree.merges) as f64 / 1000.0;
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "{TASKS}-task fan-out, {AGENTS} agents, offline provider writing one file per task, porki run --until-done, one redis-server"
    );
    println!("shared:            {:.2} s", shared.seconds);
    println!(
        "worktree:          {:.2} s ({} merges, {:.1} merges/s)",
        worktree.seconds,
        worktree.merges.len(),
        merges / worktree.seconds
    );
    println!(
        "overhead:          {overhead_ms:.1} ms per task (target at most {OVERHEAD_TARGET_MS} ms: {})",
        met(overhead_ms <= OVERHEAD_TARGET_MS)
    );
    println!(
        "merge lock held:   {held_ms:.1} ms per merge, {:.1} ms at most ({:.0}% of the worktree run)",
        *held.iter().max().unwrap_or(&0) as f64 / 1000.0,
        held.iter().sum::<i64>() as f64 / 1e4 / worktree.seconds,
    );
    println!(
        "merge lock waited: {:.1} ms per merge; while no merge held it: {idle_ms:.0} ms in all, {:.1} ms per merge (asking for a free lock: the acquire's round trip, the wake after a release)",
        waited as f64 / merges / 1000.0,
        idle_ms / merges,
    );
}

/// Runs the fan-out with `--isolation <isolation>` on a fresh redis-server
/// and workspace; under worktree isolation, checks that the goal branch holds
/// every task's commit once.
fn run(isolation: &str) -> Run {
    let server = support::RedisServer::start();
    let dir = support::temp_dir(&format!("isolation-bench-{isolation}"));
    let goal = format!("iso-{isolation}");
    let tasks: String = std::iter::once("- [root] The root\n".to_string())
        .chain((1..TASKS).map(|i| format!("- [t{i:04}] Task {i} after: root\n")))
        .collect();
    project::write_project(&dir, &goal, AGENTS, &tasks, |_| "- Cadence: 30s\n".into());
    let log = dir.join("porki.log");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_porki"))
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--until-done",
            "--isolation",
            isolation,
            "--log-style",
            "json",
            "--log-level",
            "warn,porki::agent::isolate=debug",
        ])
        .arg("--instructions")
        .arg(dir.join("INSTRUCTIONS.md"))
        .arg("--redis-url")
        .arg(server.url())
        .arg("--workspace")
        .arg(dir.join("workspace"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("run the porki binary");
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "porki run failed: {status}\n{text}");
    let merges = merges(&text);
    if isolation == "worktree" {
        assert_eq!(merges.len(), TASKS, "one merge per task:\n{text}");
        merged_once(&dir.join("workspace"), &goal);
    }
    Run { seconds, merges }
}

/// Every `merge lock released` line of a JSON log, as (asked, taken, released).
fn merges(log: &str) -> Vec<[i64; 3]> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "merge lock released")
        .map(|event| {
            let at: jiff::Timestamp = event["timestamp"].as_str().unwrap().parse().unwrap();
            let released = at.as_microsecond();
            let us = |field: &str| event["fields"][field].as_i64().unwrap();
            let taken = released - us("held_us");
            [taken - us("waited_us"), taken, released]
        })
        .collect()
}

/// Time some merge waited for the lock while no merge held it, µs: the union
/// of the waits less the union of the holds.
fn idle_wait(merges: &[[i64; 3]]) -> i64 {
    let waits = union(merges.iter().map(|[a, t, _]| (*a, *t)).collect());
    let holds = union(merges.iter().map(|[_, t, r]| (*t, *r)).collect());
    let covered: i64 = waits
        .iter()
        .map(|(ws, we)| {
            holds
                .iter()
                .map(|(hs, he)| (we.min(he) - ws.max(hs)).max(0))
                .sum::<i64>()
        })
        .sum();
    waits.iter().map(|(s, e)| e - s).sum::<i64>() - covered
}

/// The union of intervals, as sorted disjoint intervals.
fn union(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Asserts that the goal branch holds each task's commit once, and at most
/// one merge commit of it (a merge commit carries its task's trailers too).
fn merged_once(repo: &Path, goal: &str) {
    let commits = task_trailers(repo, goal, "--no-merges");
    assert_eq!(
        commits.len(),
        TASKS,
        "every task on the goal branch: {commits:?}"
    );
    assert!(
        commits.values().all(|n| *n == 1),
        "committed twice: {commits:?}"
    );
    let merges = task_trailers(repo, goal, "--merges");
    assert!(merges.values().all(|n| *n == 1), "merged twice: {merges:?}");
}

/// How many commits of the goal branch (those `filter` selects) name each task.
fn task_trailers(repo: &Path, goal: &str, filter: &str) -> HashMap<String, usize> {
    let output = Command::new("git")
        .args([
            "log",
            filter,
            "--format=%(trailers:key=Porki-Task,valueonly,separator=)",
            &format!("porki/{goal}"),
        ])
        .current_dir(repo)
        .output()
        .expect("run git");
    assert!(output.status.success(), "git log failed: {output:?}");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for task in String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
    {
        *seen.entry(task.to_string()).or_default() += 1;
    }
    seen
}
