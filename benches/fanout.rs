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

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const TASKS: usize = 1_000;
const AGENTS: usize = 16;

fn main() {
    let server = support::RedisServer::start();
    let proxy = CountingProxy::start(server.port());
    let dir = support::temp_dir("fanout-bench");
    write_project(&dir);
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
    let after = command_stats(server.port());
    let mut per_kind: Vec<(String, u64)> = after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        // The two INFO calls of this bench are not porki's.
        .map(|(name, calls)| {
            let calls = if name == "info" {
                calls.saturating_sub(1)
            } else {
                calls
            };
            (name, calls)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect();
    per_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
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

/// One agent holds the task list (a root, then every other task after it); the
/// other agents help. No roles: any agent takes any task.
fn write_project(dir: &Path) {
    let mut tasks = String::from("# Fan-out\n\n## Tasks\n- [root] The root\n");
    for i in 1..TASKS {
        tasks.push_str(&format!("- [t{i:04}] Task {i} after: root\n"));
    }
    std::fs::write(dir.join("tasks.md"), tasks).unwrap();
    let mut text = String::from("# Fan-out benchmark\n\n## Agents\n");
    for a in 0..AGENTS {
        text.push_str(&format!(
            "\n### agent{a:02}\n- Goal: fanout\n- Cadence: 30s\n"
        ));
        if a == 0 {
            text.push_str("- Instructions: tasks.md\n");
        }
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
}

/// `INFO commandstats`: calls per command name.
fn command_stats(port: u16) -> BTreeMap<String, u64> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .expect("connect to redis-server");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// A TCP proxy in front of Redis that counts the commands clients send.
struct CountingProxy {
    port: u16,
    counts: Arc<Counts>,
}

impl CountingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let count = counts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let count = count.clone();
                std::thread::spawn(move || forward_counting(client_in, server_out, &count));
                std::thread::spawn(move || forward(server, client));
            }
        });
        Self { port, counts }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn commands(&self) -> u64 {
        self.counts.total.load(Ordering::Relaxed)
    }

    /// Commands sent, by name, most first.
    fn by_name(&self) -> Vec<(String, u64)> {
        let mut names: Vec<_> = self
            .counts
            .names
            .lock()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names
    }
}

fn forward(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Forwards requests, counting each command: a RESP array of bulk strings.
fn forward_counting(mut from: TcpStream, mut to: TcpStream, count: &Counts) {
    let mut buf = [0u8; 64 * 1024];
    let mut parser = RequestParser::default();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        count
            .total
            .fetch_add(parser.feed(&buf[..n]), Ordering::Relaxed);
        let mut names = count.names.lock().unwrap();
        for (name, n) in std::mem::take(&mut parser.names) {
            *names.entry(name).or_default() += n;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// What the proxy counted.
#[derive(Default)]
struct Counts {
    total: AtomicU64,
    names: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// Where the parser is in a stream of `*N\r\n($LEN\r\nBYTES\r\n){N}` requests.
#[derive(Default)]
struct RequestParser {
    line: Vec<u8>,
    /// Bulk strings left in the current command.
    args_left: u64,
    /// Bytes of the current bulk string (and its `\r\n`) left to skip.
    skip: u64,
    /// Whether the next bulk string is a command's name.
    name_next: bool,
    /// The name being read.
    name: Vec<u8>,
    /// Commands seen, by name.
    names: BTreeMap<String, u64>,
}

impl RequestParser {
    /// Reads `bytes`; returns how many commands started in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut started = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(bytes.len());
                if self.name_next {
                    self.name.extend_from_slice(&bytes[..n]);
                    if self.skip as usize == n {
                        let name = String::from_utf8_lossy(&self.name).trim().to_lowercase();
                        *self.names.entry(name).or_default() += 1;
                        self.name.clear();
                        self.name_next = false;
                    }
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(bytes);
                break;
            };
            self.line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.line);
            let number = |l: &[u8]| -> u64 {
                std::str::from_utf8(&l[1..])
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0)
            };
            match line.first() {
                Some(b'*') if self.args_left == 0 => {
                    started += 1;
                    self.args_left = number(&line);
                    self.name_next = true;
                }
                Some(b'$') => {
                    self.args_left = self.args_left.saturating_sub(1);
                    self.skip = number(&line) + 2;
                }
                _ => {}
            }
        }
        started
    }
}
