//! porki's integration tests: one test binary (`cargo test --test it`), one
//! module per area, and one set of helpers in `support`.
//!
//! - `store_conformance`: one behaviour suite run against both store backends
//!   (`memory://` and a private `redis-server`).
//! - `team_conformance`: the team loops of the store (approval, rejection,
//!   reviews with fixes and escalations, recovery, claim scopes, reassignment)
//!   on the same backends.
//! - `runtime`: the orchestrator in-process (Supervisor, agents, planner,
//!   reaper, LLM gate), on the embedded store and on Redis.
//! - `control_plane`: operators steering live agents through heartbeat files
//!   and instruction edits.
//! - `teams`: a builder, a reviewer and a manager through reviews, fixes, an
//!   escalation, a recovery and an approval across a restart; every loop's bound.
//! - `cli`, `status_graph`: the `porki` binary as a user runs it.
//! - `faults`: the real binary under kill -9, Redis restarts, stalls, chaos
//!   fail points, a soak, bad input and secrets.
//! - `cluster`: the real binary on a Redis Cluster through a primary failover
//!   and a live migration of its goal's slot; the CLI on cluster URLs. (Every
//!   `store_conformance` behaviour and every `runtime` test with a Redis variant
//!   also runs on the shared cluster.)
//! - `goal_upkeep`: goals across processes and over time: two `--replan`s at
//!   once, the token budget under concurrent calls, `porki gc` and the
//!   orchestrator's cleanup, the event feed's first resync.
//! - `isolation_remote`: worktree isolation across processes: two `porki run`
//!   with their own repositories sharing a bare remote and a Redis, and bad
//!   git input refused at start (or a refused push failing the attempt).
//! - `llm_gate`: the LLM gate's queue across two real processes (this binary
//!   run a second time) on one `redis-server`.
//! - `redis_access`: the real binary on a secured Redis (a password, an ACL
//!   user, TLS with a private CA, a unix socket), the password shown nowhere.
//! - `redis_keys`: the key layout as other programs see it (hash tags, the move
//!   of old agent keys) and a script's answer to a request sent twice.
//! - `manifests`: the systemg manifests and the instructions files they run.
//! - `network`: a link to Redis that silently stops forwarding, and lost replies.
//! - `web`: the dashboard over HTTP (every endpoint, the metrics format, escaping,
//!   the token) and `porki serve`, `run --http`, `demo --http` as a user runs them.
//! - `browser`: the dashboard in headless Chromium (Debian's `chromium` and
//!   `chromium-driver`), updating live while the demo runs.
//! - `isolation`: worktree isolation with the real binary, git and Redis:
//!   kill -9 around the merge, a stopped holder, conflicts and their merge
//!   tasks, a user's uncommitted changes left alone, worktree cleanup.
//! - `real_cli`: `porki run` driving the real `claude` and `codex` CLIs (pinned,
//!   from npm) against a stand-in model on loopback.
//!
//! Each test isolates itself: its own `redis-server` on a free port
//! (`support::RedisServer`) and its own temp folder (`support::temp_dir`). The
//! Redis Cluster (six `redis-server`s) is started once per binary and shared;
//! tests on it use names of their own (`support::Prefixed`), and tests that
//! kill or reshard nodes start a private one.
//! Select one area with its module path, e.g. `cargo test --test it faults::`.

mod support;

mod browser;
mod cli;
mod cluster;
mod control_plane;
mod faults;
mod goal_upkeep;
mod isolation;
mod isolation_remote;
mod llm_gate;
mod manifests;
mod network;
mod real_cli;
mod redis_access;
mod redis_keys;
mod runtime;
mod status_graph;
mod store_conformance;
mod team_conformance;
mod teams;
mod web;
