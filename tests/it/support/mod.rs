//! Helpers shared by every test module; one copy of each.
//!
//! - `redis_server`: a private `redis-server` on a free port, per test.
//! - `redis_cluster`: a Redis Cluster on loopback (three primaries, three
//!   replicas): one shared by the binary's tests, or a private one to break.
//! - `prefixed`: a store view that gives a test its own goal and agent names on
//!   the shared cluster.
//! - `process`: the `porki` binary under test, and waiting on and signalling
//!   child processes.
//! - `runtime`: the orchestrator in-process, with a scripted LLM provider.
//! - `store`: task ids, plans (`Dag`s), and claiming from a store.
//! - `fixture`: a project for the real binary whose provider records every
//!   execution.
//! - `clis`: the real `claude` and `codex` CLIs (installed from npm on first use)
//!   and the environment that keeps them offline.
//! - `model`: a stand-in for the model behind them, on loopback.
//! - `proxy`: a TCP proxy to Redis that freezes, or cuts a reply.
//! - `web`: the dashboard in-process on a free port, and plain HTTP requests.
//! - `prometheus`: a strict reader of the Prometheus text format.
//! - `webdriver`: headless Chromium through chromedriver, in plain WebDriver.
//! - here: a tokio runtime for sync tests, free ports, temp folders, polling
//!   with a deadline, and small file helpers.

pub mod clis;
pub mod fixture;
pub mod git;
pub mod model;
pub mod prefixed;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod redis_cluster;
pub mod redis_server;
pub mod runtime;
pub mod store;
pub mod web;
pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use git::{git_in, git_output};
pub use prefixed::Prefixed;
pub use process::{PORKI, exit_stderr, porki, signal, success_stdout, wait_exit};
pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisServer, hget};
pub use store::{claim, ids, node, nodes, plan, seed_team};

/// Takes a turn at `llm:gate`, the one key of the LLM gate for a whole store:
/// on the shared cluster, the tests that count its slots take turns.
pub fn llm_gate_turn() -> &'static tokio::sync::Mutex<()> {
    static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    &GATE
}

/// Runs `future` to completion on a fresh current-thread tokio runtime, for
/// the synchronous tests that read a store now and then.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio_runtime().block_on(future)
}

/// A current-thread tokio runtime with time and I/O, for a test that keeps one
/// (a `RedisStore` stays bound to the runtime it connected on).
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// A loopback port nothing listens on right now (it can be taken before the
/// caller binds it: callers that start servers retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A fresh, empty temp folder for one test: `porki-test-NAME-PID-N`.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "porki-test-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp folder");
    dir
}

/// Calls `check` every `every` until it returns `Some`; `None` once `limit`
/// has passed without it.
pub fn poll<T>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Waits until `check` returns `Some`, failing the test after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll(limit, Duration::from_millis(20), check)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting until {what}"))
}

/// Waits until `check` holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    wait_for(limit, what, || check().then_some(()))
}

/// Appends a line to a file, as `echo LINE >> FILE` does.
pub fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(file, "{line}").unwrap();
}

/// Writes an executable script (a fake LLM CLI for the `command` provider).
pub fn write_script(path: &Path, text: impl AsRef<str>) {
    std::fs::write(path, text.as_ref()).unwrap();
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path, perms).unwrap();
}
