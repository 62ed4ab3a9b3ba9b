//! porki runs a team of LLM agents against goals.
//!
//! An orchestrator turns each goal into a task DAG, agents claim and execute the
//! tasks under time-limited leases, and operators steer them through heartbeat
//! files. Redis is the only shared state.
//!
//! # The actor tree
//!
//! One process, one actix `System`:
//!
//! ```text
//! Supervisor ─┬─ DagPlanner        (planner)     instructions → LLM → validated plan → store
//!             ├─ HeartbeatWatcher  (watcher)     heartbeat and instructions files → messages
//!             ├─ LeaseReaper       (reaper)      expired leases → task READY again (or FAILED)
//!             ├─ Ranker            (ranker)      tasks' ranks refreshed as they finish and the plan grows
//!             ├─ LlmGate           (llm_gate)    cap on concurrent LLM calls, shared through the store
//!             └─ AgentActor × N    (agent)       claim → execute (LLM) → complete, one per declared agent
//! ```
//!
//! The [`supervisor`] restarts a crashed agent (backoff and an intensity limit);
//! everything else is rebuilt from the store after a crash.
//!
//! # Module map
//!
//! Actors, one module each:
//! - [`supervisor`]: the root actor; `config` ([`supervisor::RunSettings`], every
//!   run setting and its defaults), `restart` ([`supervisor::RestartPolicy`]),
//!   `slots` (the spawn limit, crash restarts, reloads) and `unserved` (READY
//!   tasks nobody can take; soft ones handed to a builder).
//! - [`agent`]: the AgentActor; `worker` (the run and its step loop), `execute`
//!   (one task from prompt to verdict), `prompts` (what the LLM is told, pick and
//!   summary), `verdict` (what an answer means), `record` (writing the outcome),
//!   `review` (a review's verdict), `control` (heartbeat directives), `lease`
//!   (the lease keeper with its local deadline, the single-active guard, outage
//!   backoff); under worktree isolation `repos` (each goal's repository),
//!   `isolate` (an attempt's worktree and commit), `queue` (the goal's merge
//!   queue), `merge` (recording a merged or conflicting attempt).
//! - [`planner`]: the DagPlanner. [`reaper`]: the LeaseReaper. [`ranker`]: the
//!   Ranker (claims take the READY task of highest priority, then rank). [`llm_gate`]: the
//!   LlmGate and [`llm_gate::LlmCaller`], the one way an actor calls the LLM;
//!   [`usage`] adds calls' usage to the goals' totals in batches.
//! - [`watcher`]: the HeartbeatWatcher (`notify` on the files' folders, polling
//!   fallback).
//!
//! Shared state:
//! - [`store`]: the [`store::Store`] trait, grouped by concern ([`store::TaskStore`],
//!   [`store::ControlStore`], [`store::TeamStore`], [`store::GoalStore`], [`store::GateStore`],
//!   [`store::AgentStore`], [`store::GcStore`], [`store::MergeStore`]; `use porki::store::prelude::*`
//!   brings them all).
//!   [`store::RedisStore`] (`store/redis/`), on one Redis or a Redis Cluster, runs
//!   each multi-key change as one Lua script (`store/lua/`) that names every key
//!   it touches ([`store::keys`] builds them all); [`store::MemoryStore`]
//!   (`store/memory/`) is the embedded `memory://` twin with the same semantics.
//!
//! Pure parts (no I/O):
//! - [`domain`]: plans ([`domain::Dag`]) and their validation, task states, teams
//!   (agent and task kinds, policies, [`domain::shape_plan`]), ranks by the
//!   critical path ([`domain::rank`]), key-safe names.
//! - [`instructions`]: the instructions file (agents, goals, planner context) in
//!   its markdown and YAML forms, agents' task lists and the plan they make, and
//!   the template `porki instructions create` writes (`template`).
//! - [`heartbeat`]: heartbeat directives (`PAUSE`, `DROP-TASK`…) and the cursor
//!   that applies each line once (and its stored form, naming its file).
//! - [`report`]: what `porki status` and `porki graph` print (text table, status
//!   JSON, Mermaid, DOT, graph JSON), one renderer per file.
//!
//! Watching it:
//! - [`metrics`]: the process's counters and histograms ([`metrics::Metrics`],
//!   passed in through [`supervisor::RunSettings`]; the actors call one method
//!   where something happens) and their Prometheus text, with gauges read from the
//!   store at scrape time.
//! - [`web`]: the dashboard (`porki serve`, `porki run --http`): pages rendered
//!   on the server (the DAG as SVG), live through server-sent events driven by
//!   the store's goal events, `/metrics`, `/healthz`, `/readyz`.
//!
//! Around them:
//! - [`project`]: loading an instructions file and the agent files it names.
//! - [`git`]: the real `git` for `--isolation worktree` (docs/isolation.md): a
//!   goal's repository (adopted or owned) and branch, a worktree per attempt,
//!   commits with porki's trailers, merges without a checkout (compare-and-set,
//!   or a leased push to `--git-remote`), merged tasks read from trailers, gc.
//! - [`workspace`]: each goal's workspace and artifacts folder, where an
//!   answer's outputs must lie, and the check that no workspace holds the files
//!   that steer porki.
//! - [`llm`]: the [`llm::LlmProvider`] trait and its providers (`llm/cli/`: CLIs in
//!   their own process group, with an environment stripped of porki's secrets
//!   (`env`); `llm/http/`: OpenAI-compatible and Anthropic over one client;
//!   `offline`), the prompts of each phase and the parsing of answers.
//!
//! Data flows one way: a validated plan is written to the store; agents claim,
//! renew, complete or fail tasks through it; completion promotes dependents in
//! the same atomic step. `docs/architecture.md` follows one task through the files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod domain;
pub mod git;
pub mod heartbeat;
pub mod instructions;
pub mod llm;
pub mod llm_gate;
pub mod metrics;
pub mod planner;
pub mod project;
pub mod ranker;
pub mod reaper;
pub mod report;
pub mod store;
pub mod supervisor;
pub mod usage;
pub mod watcher;
pub mod web;
pub mod workspace;
