//! What waiting costs: N agents in one `porki run` (the release binary) whose
//! goal has nothing for them, against a private redis-server.
//!
//! The goal's one task runs once and then waits for a person's approval
//! (`(approval)`), so every agent is idle: nothing READY, no lease held. Each
//! agent has its own heartbeat file, watched as in production, and the default
//! cadence (30 s). Once the task waits, the bench lets the process settle, then
//! measures over a window (`PORKI_IDLE_SECONDS`, default 60):
//!
//! - Redis commands per agent per second, counted server-side (`INFO
//!   commandstats`, so the commands inside Lua scripts count too), and the
//!   round trips porki's connections sent (a counting proxy);
//! - CPU, as a percentage of one core (the process's user + system time);
//! - resident memory at the end and its peak (`VmRSS`, `VmHWM`).
//!
//! Targets (issue 19), for 200 idle agents: at most 0.5 commands per agent per
//! second, 2 % of a core and 150 MB.
//!
//! Run: `cargo bench --bench idle` (needs `redis-server` on PATH);
//! `PORKI_IDLE_AGENTS=2,200` chooses the agent counts, and `PORKI_BIN` another
//! porki binary to measure (an older build, say).

#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/project.rs"]
mod project;
#[path = "common/redis_counts.rs"]
mod redis_counts;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_counts::{CountingProxy, command_stats, commands_between};

fn main() {
    let counts: Vec<usize> = std::env::var("PORKI_IDLE_AGENTS")
        .unwrap_or_else(|_| "2,200".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("PORKI_IDLE_AGENTS: agent counts, e.g. 2,200")
        })
        .collect();
    let window = Duration::from_secs(std::env::var("PORKI_IDLE_SECONDS").ok().map_or(60, |s| {
        s.parse().expect("PORKI_IDLE_SECONDS: whole seconds")
    }));
    println!(
        "idle agents in one porki run (offline provider, one task awaiting approval, default cadence), {}s window",
        window.as_secs()
    );
    println!(
        "{:>7} {:>17} {:>20} {:>11} {:>8} {:>9}",
        "agents", "cmds/agent/s", "round trips/agent/s", "CPU % core", "RSS MB", "peak MB"
    );
    for agents in counts {
        measure(agents, window);
    }
}

fn measure(agents: usize, window: Duration) {
    let server = support::RedisServer::start();
    let proxy = CountingProxy::start(server.port());
    let dir = support::temp_dir("idle-bench");
    // One agent holds the task list: a single task that waits for approval
    // after it runs. Every agent has its own heartbeat file.
    project::write_project(
        &dir,
        "idle",
        agents,
        "- [only] The one task (approval)\n",
        |a| format!("- Heartbeat: heartbeat/agent{a:03}.md\n"),
    );
    let binary = std::env::var("PORKI_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_porki").into());
    let mut porki = Command::new(binary)
        .args(["run", "--llm-provider", "offline", "--log-level", "warn"])
        // Every agent runs at once (the default limit is 10).
        .arg("--spawn-limit")
        .arg(agents.to_string())
        .arg("--instructions")
        .arg(dir.join("INSTRUCTIONS.md"))
        .arg("--redis-url")
        .arg(proxy.url())
        .arg("--workspace")
        .arg(dir.join("workspace"))
        .stdout(Stdio::null())
        .spawn()
        .expect("run the porki binary");
    wait_until_awaiting_approval(server.port(), &mut porki);
    // Let every agent finish starting up (guards, registration, first claims).
    std::thread::sleep(Duration::from_secs(5));
    let (stats_before, sent_before) = (command_stats(server.port()), proxy.commands());
    let cpu_before = cpu_time(porki.id());
    let started = Instant::now();
    std::thread::sleep(window);
    let per_kind = commands_between(&stats_before, &command_stats(server.port()));
    let sent = proxy.commands() - sent_before;
    let sent_by_name = proxy.by_name();
    let cpu = cpu_time(porki.id()) - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    let (rss, peak) = memory_mb(porki.id());
    let _ = porki.kill();
    let _ = porki.wait();
    let commands: u64 = per_kind.iter().map(|(_, calls)| calls).sum();
    let per_agent_second = |n: u64| n as f64 / agents as f64 / elapsed;
    println!(
        "{agents:>7} {:>17.3} {:>20.3} {:>11.2} {rss:>8.1} {peak:>9.1}",
        per_agent_second(commands),
        per_agent_second(sent),
        cpu.as_secs_f64() / elapsed * 100.0,
    );
    let heaviest: Vec<String> = per_kind
        .iter()
        .take(8)
        .map(|(name, calls)| format!("{name} {:.3}", per_agent_second(*calls)))
        .collect();
    println!(
        "        server commands per agent per second, by name: {}",
        heaviest.join(", ")
    );
    // Over the whole run, start-up included: what kinds of requests porki sends.
    let sent: Vec<String> = sent_by_name
        .iter()
        .take(6)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "        requests sent over the whole run, by command: {}",
        sent.join(", ")
    );
}

/// Polls the task's status in Redis until it waits for approval.
fn wait_until_awaiting_approval(port: u16, porki: &mut Child) {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .expect("connect to redis-server");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Option<String> = redis::cmd("HGET")
            .arg("task:{idle}:only")
            .arg("status")
            .query(&mut conn)
            .unwrap();
        if status.as_deref() == Some("AWAITING_APPROVAL") {
            return;
        }
        if let Ok(Some(exit)) = porki.try_wait() {
            panic!("porki run ended before the task waited for approval: {exit}");
        }
        assert!(
            Instant::now() < deadline,
            "the task did not reach AWAITING_APPROVAL within 2 minutes (status {status:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// User + system CPU time of a process so far (`/proc/PID/stat`).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) in its parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("run getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// Resident memory now and at its peak, in MB (`VmRSS`, `VmHWM`).
fn memory_mb(pid: u32) -> (f64, f64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}
