//! The AgentActor: one declared agent. It claims the best READY task of its goal
//! (and role), executes it through the LLM under a lease it renews every third of
//! the TTL, then completes or fails it. Idle, it waits for a store event about its
//! goal (a task became READY, a lease was reaped, the plan was written); the
//! agent's cadence is only a safety-net poll.
//!
//! The work runs as one future inside the actor, wrapped in `catch_unwind`: an
//! error or a panic ends the actor with an [`AgentExited`] report to the
//! Supervisor, which decides about a restart. A lease held at that moment is
//! failed (retryable) so the task does not wait for the reaper.
//!
//! - `worker`: the run (guard, registration, restore) and its step loop;
//! - `slot_first`: with `--slot-before-claim`, the LLM slot taken before claiming;
//! - `execute`: one task from prompt to its record in the store (`record`, and
//!   `review` for the verdicts of reviews and escalations);
//! - `verdict`: what an answer means (done, failed, a goal-wide backoff);
//! - `control`: heartbeat directives;
//! - `lease`: the held lease and its renewal, the single-active guard, outage backoff;
//! - `isolate`: with `--isolation worktree`, the attempt's worktree, and its
//!   commit merged through the goal's merge queue.

mod control;
mod execute;
mod isolate;
mod lease;
mod merge;
mod prompts;
mod queue;
mod record;
mod repos;
mod review;
mod slot_first;
mod verdict;
mod worker;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::prelude::*;
use futures::FutureExt;
use thiserror::Error;
use tokio::sync::{Notify, watch};

use crate::domain::Isolation;
use crate::llm_gate::LlmCaller;
use crate::project::AgentConfig;
use crate::store::{Recovery, Store, retry_backoff};
use crate::workspace::Workspaces;

pub use self::lease::HeldLeases;
pub use self::repos::GitContext;

use self::lease::{AgentGuard, HeldLease};
use self::worker::Worker;

/// Settings shared by every agent of a process.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Lease TTL of a claimed task.
    pub lease_ttl: Duration,
    /// Timeout of one LLM call.
    pub llm_timeout: Duration,
    /// Each goal's workspace and artifacts folder.
    pub workspaces: Workspaces,
    /// TTL of the single-active guard (which also says the agent is alive).
    pub guard_ttl: Duration,
    /// `host:pid` of this process, recorded in the registration.
    pub process: String,
    /// Ask the LLM which READY task to take (`--llm-select`) instead of priority order.
    pub llm_select: bool,
    /// Summarize each finished task for its dependents (`--llm-summarize`).
    pub llm_summarize: bool,
    /// The process's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Reviews that may ask for changes before a further rejection escalates
    /// (`--max-review-cycles`).
    pub max_review_cycles: u32,
    /// The isolation of goals whose instructions give none (`--isolation`).
    pub isolation: Isolation,
    /// git, for the goals isolated in worktrees (found at start when any is).
    pub git: Option<Arc<GitContext>>,
    /// Wait for an LLM slot before claiming, then run the task's execute call
    /// with it (`--slot-before-claim`), when the provider takes slots.
    pub slot_before_claim: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(60),
            llm_timeout: crate::llm::DEFAULT_TIMEOUT,
            workspaces: Workspaces::default(),
            guard_ttl: Duration::from_secs(15),
            process: process_id(),
            llm_select: false,
            llm_summarize: false,
            metrics: Arc::default(),
            max_review_cycles: crate::domain::DEFAULT_MAX_REVIEW_CYCLES,
            isolation: Isolation::Shared,
            git: None,
            slot_before_claim: true,
        }
    }
}

/// `host:pid` of this process.
pub fn process_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// What the agent shares with the rest of the process.
#[derive(Clone)]
pub struct AgentDeps {
    /// The store.
    pub store: Arc<dyn Store>,
    /// LLM calls, through the gate and within the goal's budget.
    pub caller: LlmCaller,
    /// Settings.
    pub settings: AgentSettings,
    /// The leases this process's agents hold, for the Supervisor to give back on exit.
    pub held: HeldLeases,
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// Its goal is complete: nothing left to do.
    Retired,
    /// It was asked to stop.
    Stopped,
    /// Its run failed with an error.
    Failed(String),
    /// Its run panicked.
    Panicked(String),
}

impl AgentExit {
    /// Whether the Supervisor should restart the agent.
    pub fn is_failure(&self) -> bool {
        matches!(self, AgentExit::Failed(_) | AgentExit::Panicked(_))
    }
}

/// An agent's actor ended.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct AgentExited {
    /// Agent name.
    pub name: String,
    /// Which start of the agent this was (the Supervisor's count).
    pub run: u64,
    /// How.
    pub exit: AgentExit,
}

/// Stop the agent: at once (held task released) or after finishing the held task within `grace`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopAgent {
    /// How long the held task may still run; zero releases it at once.
    pub grace: Duration,
}

/// Why an agent's run ended in error.
#[derive(Debug, Error)]
pub enum AgentError {
    /// Another process took the agent's single-active guard.
    #[error("agent {0} lost its single-active guard to another process")]
    GuardLost(String),
}

/// The agent actor.
pub struct AgentActor {
    config: AgentConfig,
    deps: AgentDeps,
    supervisor: Recipient<AgentExited>,
    run: u64,
    stop: watch::Sender<Option<Duration>>,
    held: HeldLease,
    guard: Arc<AgentGuard>,
    heartbeat: Arc<Notify>,
}

impl AgentActor {
    /// The `run`-th start of an agent for `config`, reporting its end to `supervisor`.
    pub fn new(
        config: AgentConfig,
        deps: AgentDeps,
        supervisor: Recipient<AgentExited>,
        run: u64,
    ) -> Self {
        let held = HeldLease::new(&config.name, deps.held.clone());
        let guard = Arc::new(AgentGuard::new(
            deps.store.clone(),
            config.name.clone(),
            deps.settings.guard_ttl,
        ));
        Self {
            config,
            deps,
            supervisor,
            run,
            stop: watch::channel(None).0,
            held,
            guard,
            heartbeat: Arc::new(Notify::new()),
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let worker = Worker::new(
            self.config.clone(),
            self.deps.clone(),
            self.held.clone(),
            self.guard.clone(),
            self.stop.subscribe(),
            self.heartbeat.clone(),
        );
        let run = AssertUnwindSafe(worker.run()).catch_unwind();
        ctx.spawn(wrap_future(run).then(|result, agent: &mut AgentActor, _| {
            let exit = match result {
                Ok(Ok(exit)) => exit,
                Ok(Err(e)) => AgentExit::Failed(e.to_string()),
                Err(panic) => AgentExit::Panicked(panic_message(&*panic)),
            };
            let lease = agent.held.take();
            let store = agent.deps.store.clone();
            let guard = agent.guard.clone();
            let report = AgentExited {
                name: agent.config.name.clone(),
                run: agent.run,
                exit: exit.clone(),
            };
            let supervisor = agent.supervisor.clone();
            wrap_future(async move {
                if let Some(lease) = lease {
                    // A crash counts the attempt (the task may be what crashes it); a
                    // stop gives the task back as it was.
                    let given_back = match &exit {
                        AgentExit::Panicked(m) | AgentExit::Failed(m) => {
                            let why = format!("the agent ended with an error: {m}");
                            let backoff = retry_backoff(lease.attempt);
                            store
                                .fail(&lease, &why, true, backoff, Recovery::Never)
                                .await
                                .map(drop)
                        }
                        AgentExit::Stopped | AgentExit::Retired => store.release(&lease).await,
                    };
                    if let Err(e) = given_back {
                        tracing::warn!(task = %lease.task, error = %e, "could not give back the task of an ended agent; the reaper will");
                    }
                }
                // Whatever ended the run (a panic included), the agent name is free
                // for its restart at once, not after the guard's TTL.
                guard.release().await;
                supervisor.do_send(report);
            })
        }).map(|_, _, ctx: &mut Context<AgentActor>| ctx.stop()));
    }
}

impl Handler<crate::watcher::HeartbeatChanged> for AgentActor {
    type Result = ();

    fn handle(&mut self, _: crate::watcher::HeartbeatChanged, _: &mut Self::Context) {
        // A stored permit: the worker reads the file when it next can, even if busy now.
        self.heartbeat.notify_one();
    }
}

impl Handler<StopAgent> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: StopAgent, _: &mut Self::Context) {
        let _ = self.stop.send(Some(msg.grace));
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".into())
}
