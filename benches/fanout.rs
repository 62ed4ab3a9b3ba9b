//! What one task costs Redis in a whole run, as a user runs it: `porki run` (the
//! release binary) with 16 agents and the offline provider on a 1,000-task
//! fan-out (one root, 999 tasks after it), `--until-done`, against a private
//! redis-server.
//!
//! Printed per run: tasks per second (from start to exit, planning included),
//! Redis commands per task counted server-side (`INFO commandstats`, so the
//! commands inside Lua scripts count too), and round trips per task: the
//! commands porki's connections sent, counted by a proxy in front of Redis
//! (a pipeline counts one per command in it). The commands of the heaviest kinds
//! follow. Targets (issue 12): at most 20 commands and 1.5 round trips per task.
//!
//! Run: `cargo bench --bench fanout` (needs `redis-server` on PATH).

#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/project.rs"]
mod project;
#[path = "common/redis_counts.rs"]
mod redis_counts;

use std::process::Command;
use std::time::Instant;

use redis_counts::{CountingProxy, command_stats, commands_between};

const TASKS: usize = 1_000;
const AGENTS: usize = 16;

fn main() {
    let server = support::RedisServer::start();
    let proxy = CountingProxy::start(server.port());
    let dir = support::temp_dir("fanout-bench");
    // One agent holds the task list (a root, then every other task after it);
    // the other agents help. No roles: any agent takes any task.
    let tasks: String = std::iter::once("- [root] The root\n".to_string())
        .chain((1..TASKS).map(|i| format!("- [t{i:04}] Task {i} after: root\n")))
        .collect();
    project::write_project(&dir, "fanout", AGENTS, &tasks, |_| {
        "- Cadence: 30s\n".into()
    });
    let before = command_stats(server.port());
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_porki"))
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--until-done",
            "--log-level",
            "warn",
        ])
        .arg("--instructions")
        .arg(dir.join("INSTRUCTIONS.md"))
        .arg("--redis-url")
        .arg(proxy.url())
        .arg("--workspace")
        .arg(dir.join("workspace"))
        .status()
        .expect("run the porki binary");
    let elapsed = started.elapsed();
    assert!(status.success(), "porki run failed: {status}");
    let per_kind = commands_between(&before, &command_stats(server.port()));
    let commands: u64 = per_kind.iter().map(|(_, calls)| calls).sum();
    let tasks = TASKS as f64;
    println!(
        "{TASKS}-task fan-out, {AGENTS} agents, offline provider, porki run --until-done on one redis-server"
    );
    println!(
        "{:>9} {:>12} {:>15} {:>9}",
        "tasks/s", "cmds/task", "round trips/task", "seconds"
    );
    println!(
        "{:>9.0} {:>12.1} {:>15.2} {:>9.2}",
        tasks / elapsed.as_secs_f64(),
        commands as f64 / tasks,
        proxy.commands() as f64 / tasks,
        elapsed.as_secs_f64()
    );
    let heaviest: Vec<String> = per_kind
        .iter()
        .take(10)
        .map(|(name, calls)| format!("{name} {:.2}", *calls as f64 / tasks))
        .collect();
    println!("server commands per task, by name: {}", heaviest.join(", "));
    let sent: Vec<String> = proxy
        .by_name()
        .iter()
        .take(8)
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / tasks))
        .collect();
    println!("round trips per task, by command: {}", sent.join(", "));
}
