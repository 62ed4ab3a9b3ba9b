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

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::fut::wrap_future;
use actix::prelude::*;
use futures::FutureExt;
use thiserror::Error;
use tokio::sync::{Notify, broadcast, watch};

use crate::domain::Dag;
use crate::heartbeat::{Cursor, Directive, LineKind, NewLines, new_lines, parse_line};
use crate::llm::answer::{SelectAnswer, TaskAnswer, TaskAnswerStatus, parse_answer};
use crate::llm::prompt::{
    AgentBrief, SelectContext, TaskContext, execute_prompt, select_prompt, summarize_prompt,
};
use crate::llm::{LlmRequest, Phase};
use crate::llm_gate::{CallError, LlmCaller};
use crate::project::AgentConfig;
use crate::store::prelude::*;
use crate::store::{
    AgentField, AgentRecord, ClaimOutcome, EventKind, FailOutcome, Lease, StoreError, StoreEvent,
    TaskResult, new_token, retry_backoff,
};

/// Settings shared by every agent of a process.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Lease TTL of a claimed task.
    pub lease_ttl: Duration,
    /// Timeout of one LLM call.
    pub llm_timeout: Duration,
    /// Where execute prompts tell the LLM to write artifacts (per goal below it).
    pub artifact_dir: PathBuf,
    /// TTL of the single-active guard and the heartbeat key.
    pub guard_ttl: Duration,
    /// `host:pid` of this process, recorded in the registration.
    pub process: String,
    /// Ask the LLM which READY task to take (`--llm-select`) instead of priority order.
    pub llm_select: bool,
    /// Summarize each finished task for its dependents (`--llm-summarize`).
    pub llm_summarize: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(60),
            llm_timeout: crate::llm::DEFAULT_TIMEOUT,
            artifact_dir: PathBuf::from("artifacts"),
            guard_ttl: Duration::from_secs(15),
            process: process_id(),
            llm_select: false,
            llm_summarize: false,
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
    stop: watch::Sender<Option<Duration>>,
    held: Arc<Mutex<Option<Lease>>>,
    heartbeat: Arc<Notify>,
}

impl AgentActor {
    /// An agent for `config`, reporting its end to `supervisor`.
    pub fn new(config: AgentConfig, deps: AgentDeps, supervisor: Recipient<AgentExited>) -> Self {
        Self {
            config,
            deps,
            supervisor,
            stop: watch::channel(None).0,
            held: Arc::new(Mutex::new(None)),
            heartbeat: Arc::new(Notify::new()),
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let worker = Worker {
            config: self.config.clone(),
            deps: self.deps.clone(),
            held: self.held.clone(),
            stop: self.stop.subscribe(),
            heartbeat: self.heartbeat.clone(),
            plan: None,
            memory: VecDeque::new(),
            paused: None,
            stop_directive: false,
        };
        let run = AssertUnwindSafe(worker.run()).catch_unwind();
        ctx.spawn(wrap_future(run).then(|result, agent: &mut AgentActor, _| {
            let exit = match result {
                Ok(Ok(exit)) => exit,
                Ok(Err(e)) => AgentExit::Failed(e.to_string()),
                Err(panic) => AgentExit::Panicked(panic_message(&*panic)),
            };
            let lease = agent.held.lock().unwrap_or_else(|e| e.into_inner()).take();
            let store = agent.deps.store.clone();
            let report = AgentExited {
                name: agent.config.name.clone(),
                exit: exit.clone(),
            };
            let supervisor = agent.supervisor.clone();
            wrap_future(async move {
                if let Some(lease) = lease {
                    let why = match &exit {
                        AgentExit::Panicked(m) => format!("agent panicked: {m}"),
                        AgentExit::Failed(m) => format!("agent failed: {m}"),
                        _ => "agent stopped".into(),
                    };
                    let backoff = retry_backoff(lease.attempt);
                    if let Err(e) = store.fail(&lease, &why, true, backoff).await {
                        tracing::warn!(task = %lease.task, error = %e, "could not give back the task of an ended agent; the reaper will");
                    }
                }
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

/// Most READY tasks offered to the LLM to choose from.
const MAX_SELECT_CANDIDATES: usize = 20;

/// Most recent actions kept as the agent's memory.
const MEMORY_LEN: usize = 20;

/// The state of one run of the agent (rebuilt from the store on restart).
struct Worker {
    config: AgentConfig,
    deps: AgentDeps,
    held: Arc<Mutex<Option<Lease>>>,
    stop: watch::Receiver<Option<Duration>>,
    heartbeat: Arc<Notify>,
    plan: Option<Dag>,
    memory: VecDeque<String>,
    /// `Some(drain)` while paused by a PAUSE directive (persisted in the store).
    paused: Option<bool>,
    /// A STOP directive was read.
    stop_directive: bool,
}

/// How executing one task ended.
enum Execution {
    Answered(Result<crate::llm::LlmResponse, CallError>),
    LeaseLost,
    /// The operator dropped the task (DROP-TASK): it is FAILED already.
    Dropped,
    /// Stop or pause: the task is given back.
    Released,
}

impl Worker {
    async fn run(mut self) -> Result<AgentExit, AgentError> {
        let store = self.deps.store.clone();
        let name = self.config.name.clone();
        let token = new_token();
        if !self.take_guard(&token).await {
            return Ok(AgentExit::Stopped);
        }
        let base = AgentRecord {
            name: name.clone(),
            goal: self.config.goal.clone(),
            role: self.config.role.clone(),
            process: self.deps.settings.process.clone(),
            state: String::new(),
        };
        let record = move |state: &str| AgentRecord {
            state: state.into(),
            ..base.clone()
        };
        if let Err(e) = store.register_agent(&record("running")).await {
            tracing::warn!(agent = %name, error = %e, "cannot register the agent");
        }
        self.restore().await;
        let keepalive = keep_guard(
            store.clone(),
            name.clone(),
            token.clone(),
            self.deps.settings.guard_ttl,
        );
        let outcome = tokio::select! {
            exit = self.work() => Ok(exit),
            lost = keepalive => Err(lost),
        };
        let state = match &outcome {
            Ok(AgentExit::Retired) => "retired",
            _ => "stopped",
        };
        let _ = store.register_agent(&record(state)).await;
        let _ = store.release_agent_guard(&name, &token).await;
        outcome
    }

    /// Brings back what survives a restart: PAUSE, the memory, unapplied heartbeat lines.
    async fn restore(&mut self) {
        let store = self.deps.store.clone();
        let name = &self.config.name;
        match store.agent_value(name, AgentField::Paused).await {
            Ok(Some(mode)) => {
                tracing::info!(agent = %name, "agent is paused (a PAUSE is in effect); append RESUME to its heartbeat file to continue");
                self.paused = Some(mode == "drain");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot read the agent's pause state")
            }
        }
        if let Ok(Some(json)) = store.agent_value(name, AgentField::Memory).await {
            match serde_json::from_str::<Vec<String>>(&json) {
                Ok(memory) => {
                    self.memory = memory.into_iter().rev().take(MEMORY_LEN).rev().collect()
                }
                Err(e) => {
                    tracing::warn!(agent = %name, error = %e, "stored memory is unreadable; starting with none")
                }
            }
        }
        self.apply_heartbeat(None).await;
    }

    /// Waits for the single-active guard; false if asked to stop first.
    async fn take_guard(&mut self, token: &str) -> bool {
        let ttl = self.deps.settings.guard_ttl;
        let mut told = false;
        loop {
            match self
                .deps
                .store
                .acquire_agent_guard(&self.config.name, token, ttl)
                .await
            {
                Ok(true) => return true,
                Ok(false) if !told => {
                    tracing::warn!(agent = %self.config.name, "agent is live in another process; this process does not run it (it takes over if that process stops)");
                    told = true;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(agent = %self.config.name, error = %e, "cannot check the agent's single-active guard")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(ttl / 3) => {}
                _ = self.stop.wait_for(Option::is_some) => return false,
            }
        }
    }

    async fn work(&mut self) -> AgentExit {
        let store = self.deps.store.clone();
        let (goal, name) = (self.config.goal.clone(), self.config.name.clone());
        let heartbeat = self.heartbeat.clone();
        let mut events = store.events();
        let mut outage = StoreOutage::default();
        loop {
            if self.stop.borrow().is_some() || self.stop_directive {
                return AgentExit::Stopped;
            }
            drain(&mut events);
            let wait = if self.paused.is_some() {
                Duration::MAX
            } else {
                let role = self.config.role.clone();
                let ttl = self.deps.settings.lease_ttl;
                let claimed = match self.pick().await {
                    Some(task) => {
                        store
                            .claim_preferred(&goal, &name, role.as_deref(), ttl, &task)
                            .await
                    }
                    None => store.claim(&goal, &name, role.as_deref(), ttl).await,
                };
                match claimed {
                    Ok(ClaimOutcome::Claimed(lease)) => {
                        outage.recovered(&name);
                        let mut next = Some(lease);
                        while let Some(lease) = next {
                            next = self.execute(lease, &mut events).await;
                        }
                        continue;
                    }
                    Ok(ClaimOutcome::Empty { retry_in }) => {
                        outage.recovered(&name);
                        match store.goal_status(&goal).await {
                            Ok(Some(status))
                                if status.state == crate::store::GoalState::Complete =>
                            {
                                tracing::info!(agent = %name, goal = %goal, "goal complete; agent retires");
                                return AgentExit::Retired;
                            }
                            _ => {}
                        }
                        retry_in.map_or(self.config.cadence, |r| r.min(self.config.cadence))
                    }
                    Err(StoreError::UnknownGoal { .. }) => {
                        outage.recovered(&name);
                        self.config.cadence
                    }
                    Err(e) => outage.failed(&name, &e),
                }
            };
            let mut stop = self.stop.clone();
            let heartbeat_changed = tokio::select! {
                _ = wait_for_goal_event(&mut events, &goal), if self.paused.is_none() => false,
                _ = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => false,
                _ = stop.wait_for(Option::is_some) => false,
                _ = heartbeat.notified() => true,
            };
            if heartbeat_changed {
                self.apply_heartbeat(None).await;
            }
        }
    }

    #[tracing::instrument(skip_all, fields(goal = %lease.goal, task = %lease.task, agent = %lease.agent, attempt = lease.attempt))]
    async fn execute(
        &mut self,
        lease: Lease,
        events: &mut broadcast::Receiver<StoreEvent>,
    ) -> Option<Lease> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease.clone());
        tracing::info!("task claimed");
        // Chaos testing (FAILPOINTS=agent-execute=10%panic): an agent crash mid-task.
        fail::fail_point!("agent-execute");
        let store = self.deps.store.clone();
        let request = match self.task_context(&lease).await {
            Ok(context) => LlmRequest {
                phase: Phase::Execute,
                prompt: execute_prompt(&context),
                timeout: self.deps.settings.llm_timeout,
            },
            Err(e) => {
                // The store is unreachable: give the task back untouched.
                tracing::warn!(error = %e, "cannot read the task's context; releasing it");
                let _ = store.release(&lease).await;
                self.held_clear();
                return None;
            }
        };
        let caller = self.deps.caller.clone();
        let goal = lease.goal.clone();
        let call = async move { caller.call(&goal, &request).await };
        let renew = renew_until_lost(store.clone(), lease.clone(), self.deps.settings.lease_ttl);
        tokio::pin!(call, renew);
        let heartbeat = self.heartbeat.clone();
        let mut stop = self.stop.clone();
        let mut grace_ends: Option<tokio::time::Instant> = None;
        let execution = loop {
            let grace = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answer = &mut call => break Execution::Answered(answer),
                () = &mut renew => break Execution::LeaseLost,
                () = grace => break Execution::Released,
                requested = stop.wait_for(Option::is_some), if grace_ends.is_none() => {
                    let grace = requested.map(|g| g.unwrap_or_default()).unwrap_or_default();
                    grace_ends = Some(tokio::time::Instant::now() + grace);
                }
                _ = heartbeat.notified() => {
                    if self.apply_heartbeat(Some(&lease)).await {
                        break Execution::Dropped;
                    }
                    if self.stop_directive || self.paused == Some(false) {
                        break Execution::Released;
                    }
                }
                event = events.recv() => {
                    // Another process may have dropped this task: check the lease now
                    // rather than at the next renewal.
                    if let Ok(StoreEvent { kind: EventKind::Failed, goal }) = event
                        && goal == lease.goal
                        && let Err(StoreError::LeaseLost { .. }) = store.renew(&lease, self.deps.settings.lease_ttl).await
                    {
                        break Execution::LeaseLost;
                    }
                }
            }
        };
        let mut next = None;
        match execution {
            Execution::Answered(answer) => next = self.finish(&lease, answer).await,
            Execution::LeaseLost => {
                tracing::warn!(
                    "lease lost while the task ran; its LLM call was stopped and its result will not be used"
                );
            }
            Execution::Dropped => {
                tracing::warn!("task dropped by the operator; its LLM call was stopped")
            }
            Execution::Released => match store.release(&lease).await {
                Ok(()) => tracing::info!("task released (agent paused or stopping)"),
                Err(StoreError::LeaseLost { .. }) => tracing::warn!(
                    "lease lost while the task ran (found when giving it back); its result will not be used"
                ),
                Err(e) => tracing::warn!(error = %e, "could not release the task; the reaper will"),
            },
        }
        // The next task (claimed with the completion) is held from here on.
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = next.clone();
        next
    }

    fn held_clear(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// With `--llm-select`, asks the LLM which of the READY tasks to take; `None`
    /// (priority order) when there is no choice to make, the call fails, or the
    /// pick is not a READY task of this agent.
    async fn pick(&mut self) -> Option<String> {
        if !self.deps.settings.llm_select {
            return None;
        }
        let store = self.deps.store.clone();
        let goal = self.config.goal.clone();
        let role = self.config.role.clone();
        let mut ready: Vec<_> = store
            .tasks(&goal)
            .await
            .ok()?
            .into_iter()
            .filter(|t| t.status == crate::domain::TaskStatus::Ready && t.retry_at_ms.is_none())
            .filter(|t| t.role.is_none() || t.role == role)
            .collect();
        if ready.len() < 2 {
            return None;
        }
        ready.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
        ready.truncate(MAX_SELECT_CANDIDATES);
        if self.plan.is_none() {
            self.plan = store.dag(&goal).await.ok()?;
        }
        let plan = self.plan.as_ref()?;
        let candidates = ready
            .iter()
            .filter_map(|t| plan.nodes.iter().find(|n| n.id == t.id).cloned())
            .collect();
        let prompt = select_prompt(&SelectContext {
            goal_id: goal.clone(),
            agent: self.brief(),
            candidates,
        });
        let request = LlmRequest {
            phase: Phase::Select,
            prompt,
            timeout: self.deps.settings.llm_timeout,
        };
        let answer = self.deps.caller.call(&goal, &request).await.ok()?;
        let pick = match parse_answer::<SelectAnswer>(&answer.text) {
            Ok(pick) => pick,
            Err(e) => {
                tracing::warn!(agent = %self.config.name, error = %e, "the task selection answer is unusable; using priority order");
                return None;
            }
        };
        if ready.iter().any(|t| t.id == pick.selected_task_id) {
            tracing::info!(agent = %self.config.name, task = %pick.selected_task_id, justification = %pick.justification, "LLM selected the next task");
            Some(pick.selected_task_id)
        } else {
            tracing::warn!(agent = %self.config.name, task = %pick.selected_task_id, "the LLM picked a task that is not READY for this agent; using priority order");
            None
        }
    }

    /// The agent as prompts describe it.
    fn brief(&self) -> AgentBrief {
        AgentBrief {
            name: self.config.name.clone(),
            role: self.config.role.clone(),
            instructions: self.config.instructions.clone(),
        }
    }

    /// Reads the heartbeat file and applies its new lines once each; returns
    /// whether `held` (the task being executed) was dropped.
    async fn apply_heartbeat(&mut self, held: Option<&Lease>) -> bool {
        let Some(path) = self.config.heartbeat.clone() else {
            return false;
        };
        let store = self.deps.store.clone();
        let name = self.config.name.clone();
        let text = match read_bounded(&path).await {
            Ok(Some(text)) => text,
            Ok(None) => return false,
            Err(e) => {
                self.report(&format!(
                    "cannot read heartbeat file {}: {e}",
                    path.display()
                ))
                .await;
                return false;
            }
        };
        let stored = match store.agent_value(&name, AgentField::HeartbeatCursor).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot read the heartbeat cursor; trying again on the next change");
                self.heartbeat.notify_one();
                return false;
            }
        };
        let cursor = stored.as_deref().and_then(parse_cursor).unwrap_or_default();
        let new = new_lines(&text, &cursor);
        if new.next() == &cursor {
            return false;
        }
        if matches!(new, NewLines::Replaced { .. }) {
            tracing::warn!(agent = %name, path = %path.display(), "heartbeat file was truncated or rewritten; applying only lines past the previous end");
        }
        // The cursor moves before the directives apply: a crash in between loses
        // a directive (append it again) rather than replaying a DROP-TASK.
        let next = format_cursor(new.next());
        match store
            .swap_agent_value(&name, AgentField::HeartbeatCursor, stored.as_deref(), &next)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Someone else moved the cursor (an earlier run of this agent): read again.
                self.heartbeat.notify_one();
                return false;
            }
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot store the heartbeat cursor; trying again on the next change");
                self.heartbeat.notify_one();
                return false;
            }
        }
        let (start, lines) = new.lines();
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut dropped_held = false;
        for (offset, line) in lines.iter().enumerate() {
            let number = start + offset as u64;
            match parse_line(line) {
                LineKind::Blank => {}
                LineKind::Malformed(problem) => {
                    self.report(&format!("{}:{number}: {problem}", path.display()))
                        .await;
                }
                LineKind::Directive(directive) => {
                    tracing::info!(agent = %name, line = number, %directive, "heartbeat directive");
                    if let Err(problem) = self.apply(&directive, held, &mut dropped_held).await {
                        self.report(&format!(
                            "{}:{number}: {directive}: {problem}",
                            path.display()
                        ))
                        .await;
                    }
                }
            }
        }
        dropped_held
    }

    /// Applies one directive.
    async fn apply(
        &mut self,
        directive: &Directive,
        held: Option<&Lease>,
        dropped_held: &mut bool,
    ) -> Result<(), String> {
        let store = self.deps.store.clone();
        let (name, goal) = (self.config.name.clone(), self.config.goal.clone());
        match directive {
            Directive::Pause { drain } => {
                self.paused = Some(*drain);
                let mode = if *drain { "drain" } else { "release" };
                store
                    .set_agent_value(&name, AgentField::Paused, Some(mode))
                    .await
                    .map_err(|e| e.to_string())
            }
            Directive::Resume => {
                self.paused = None;
                store
                    .set_agent_value(&name, AgentField::Paused, None)
                    .await
                    .map_err(|e| e.to_string())
            }
            Directive::DropTask { task } => {
                store
                    .drop_task(&goal, task, "dropped by the operator (DROP-TASK)")
                    .await
                    .map_err(|e| e.to_string())?;
                *dropped_held |= held.is_some_and(|l| &l.task == task);
                Ok(())
            }
            Directive::RetryTask { task } => store
                .retry_task(&goal, task)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Directive::Elevate { task, priority } => store
                .elevate(&goal, task, *priority)
                .await
                .map_err(|e| e.to_string()),
            Directive::Reparse => {
                let Some(path) = self.config.instructions_path.clone() else {
                    return Err("the agent has no instruction file to read again".into());
                };
                match read_bounded(&path).await {
                    Ok(Some(text)) => {
                        self.config.instructions = text;
                        Ok(())
                    }
                    Ok(None) => Err(format!("{} does not exist", path.display())),
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                }
            }
            Directive::FlushMemory => {
                self.memory.clear();
                store
                    .set_agent_value(&name, AgentField::Memory, None)
                    .await
                    .map_err(|e| e.to_string())
            }
            Directive::Stop => {
                self.stop_directive = true;
                Ok(())
            }
        }
    }

    /// Reports a heartbeat problem once: in the log and in `agent:NAME:errors`.
    async fn report(&self, problem: &str) {
        tracing::warn!(agent = %self.config.name, "{problem}");
        if let Err(e) = self
            .deps
            .store
            .push_agent_error(&self.config.name, problem)
            .await
        {
            tracing::debug!(error = %e, "cannot record the agent error");
        }
    }

    /// Records the answer: DONE (claiming the next task in the same round trip
    /// when the agent keeps working) or a failure. Returns the next task, if claimed.
    async fn finish(
        &mut self,
        lease: &Lease,
        answer: Result<crate::llm::LlmResponse, CallError>,
    ) -> Option<Lease> {
        let store = self.deps.store.clone();
        let parsed = answer
            .map_err(|e| (e.is_retryable(), e.to_string()))
            .and_then(|r| {
                parse_answer::<TaskAnswer>(&r.text)
                    .map_err(|e| (true, format!("the answer is not usable: {e}")))
            });
        let (retryable, error) = match parsed {
            Ok(answer) if answer.status == TaskAnswerStatus::Done => {
                // Chaos testing (FAILPOINTS=agent-before-complete=5%sleep(3000)): the
                // whole process stalls with a finished result, as under SIGSTOP.
                fail::fail_point!("agent-before-complete");
                let progress = match self.summarize(lease, &answer).await {
                    Some(summary) => summary,
                    None if answer.notes.is_empty() => answer.outputs.join("\n"),
                    None => answer.notes.clone(),
                };
                let result = TaskResult {
                    progress,
                    artifacts: answer.outputs,
                };
                let keep_working =
                    self.paused.is_none() && !self.stop_directive && self.stop.borrow().is_none();
                let completed = if keep_working {
                    store
                        .complete_and_claim(
                            lease,
                            &result,
                            self.config.role.as_deref(),
                            self.deps.settings.lease_ttl,
                        )
                        .await
                        .map(|(done, next)| (done, Some(next)))
                } else {
                    store
                        .complete(lease, &result)
                        .await
                        .map(|done| (done, None))
                };
                match completed {
                    Ok((done, next)) => {
                        tracing::info!(promoted = ?done.promoted, goal_complete = done.goal_complete, "task done");
                        self.remember(format!("completed {}: {}", lease.task, result.progress))
                            .await;
                        return match next {
                            Some(ClaimOutcome::Claimed(next)) => Some(next),
                            _ => None,
                        };
                    }
                    Err(StoreError::LeaseLost { .. }) => {
                        tracing::warn!(
                            "stale completion rejected: the lease was lost and the task reclaimed; this result is dropped"
                        );
                        return None;
                    }
                    Err(e) => (true, format!("could not record completion: {e}")),
                }
            }
            Ok(answer) => (
                true,
                format!("the LLM reported the task failed: {}", answer.notes),
            ),
            Err(failure) => failure,
        };
        match store
            .fail(lease, &error, retryable, retry_backoff(lease.attempt))
            .await
        {
            Ok(FailOutcome::Retrying { after }) => {
                tracing::warn!(%error, retry_in = ?after, "task failed; will retry")
            }
            Ok(FailOutcome::Failed) => tracing::error!(%error, "task FAILED"),
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!("stale failure rejected: the lease was already lost")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not record the failure; the reaper will return the task")
            }
        }
        self.remember(format!("failed {}: {error}", lease.task))
            .await;
        None
    }

    /// Adds an action to the bounded memory and snapshots it to `agent:NAME:memory`.
    async fn remember(&mut self, action: String) {
        if self.memory.len() == MEMORY_LEN {
            self.memory.pop_front();
        }
        self.memory.push_back(action);
        let snapshot = serde_json::to_string(&self.memory).expect("strings serialize");
        if let Err(e) = self
            .deps
            .store
            .set_agent_value(&self.config.name, AgentField::Memory, Some(&snapshot))
            .await
        {
            tracing::debug!(error = %e, "cannot snapshot the agent's memory");
        }
    }

    /// Builds the execute prompt: the task, its dependencies' outputs, the agent's context.
    /// What execute and summarize prompts say about a task: it, its dependencies' outputs, the agent.
    async fn task_context(&mut self, lease: &Lease) -> Result<TaskContext, StoreError> {
        let store = self.deps.store.clone();
        let known = self
            .plan
            .as_ref()
            .is_some_and(|p| p.nodes.iter().any(|n| n.id == lease.task));
        if !known {
            self.plan = store.dag(&lease.goal).await?;
        }
        let plan = self.plan.as_ref().ok_or_else(|| StoreError::UnknownGoal {
            goal: lease.goal.clone(),
        })?;
        let task = plan
            .nodes
            .iter()
            .find(|n| n.id == lease.task)
            .cloned()
            .ok_or_else(|| StoreError::UnknownTask {
                goal: lease.goal.clone(),
                task: lease.task.clone(),
            })?;
        let mut dependency_outputs = BTreeMap::new();
        for edge in plan.edges.iter().filter(|e| e.target == lease.task) {
            if let Some(dep) = store.task(&lease.goal, &edge.source).await? {
                dependency_outputs.insert(dep.id, dep.progress);
            }
        }
        Ok(TaskContext {
            goal_id: lease.goal.clone(),
            agent: self.brief(),
            memory: self.memory.iter().cloned().collect(),
            task,
            dependency_outputs,
            artifact_dir: self.deps.settings.artifact_dir.join(&lease.goal),
        })
    }

    /// With `--llm-summarize`, condenses what the task produced (and what its
    /// dependencies did) into the note its dependents are given; the execute
    /// note stays if the summary cannot be had.
    async fn summarize(&mut self, lease: &Lease, executed: &TaskAnswer) -> Option<String> {
        if !self.deps.settings.llm_summarize {
            return None;
        }
        let mut context = self.task_context(lease).await.ok()?;
        let produced = format!("{}\n{}", executed.notes, executed.outputs.join("\n"));
        context
            .dependency_outputs
            .insert(format!("{} (this task)", lease.task), produced);
        let request = LlmRequest {
            phase: Phase::Summarize,
            prompt: summarize_prompt(&context),
            timeout: self.deps.settings.llm_timeout,
        };
        let answer = self.deps.caller.call(&lease.goal, &request).await;
        match answer
            .map_err(|e| e.to_string())
            .and_then(|r| parse_answer::<TaskAnswer>(&r.text).map_err(|e| e.to_string()))
        {
            Ok(summary) if !summary.notes.is_empty() => Some(summary.notes),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "summarize call failed; keeping the execute notes");
                None
            }
        }
    }
}

/// Largest heartbeat or instruction file read by an agent.
const MAX_READ: u64 = 16 * 1024 * 1024;

/// Reads a text file off the actor thread's blocking path (`tokio::fs`), lossily
/// decoded; `None` if it does not exist.
async fn read_bounded(path: &std::path::Path) -> std::io::Result<Option<String>> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.len() > MAX_READ => Err(std::io::Error::other(format!(
            "the file is {} bytes, more than the {MAX_READ}-byte limit: trim it",
            meta.len()
        ))),
        Ok(_) => Ok(Some(
            String::from_utf8_lossy(&tokio::fs::read(path).await?).into_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `lines:hash`, as stored in `agent:NAME:heartbeat_cursor`.
fn format_cursor(cursor: &Cursor) -> String {
    format!("{}:{}", cursor.lines, cursor.hash)
}

fn parse_cursor(text: &str) -> Option<Cursor> {
    let (lines, hash) = text.split_once(':')?;
    Some(Cursor {
        lines: lines.parse().ok()?,
        hash: hash.to_string(),
    })
}

/// Renews the lease every third of its TTL; returns once it is lost. A store
/// error is retried until the lease would have run out anyway.
async fn renew_until_lost(store: Arc<dyn Store>, lease: Lease, ttl: Duration) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match store.renew(&lease, ttl).await {
            Ok(()) => last_ok = tokio::time::Instant::now(),
            Err(StoreError::LeaseLost { .. }) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the lease; retrying");
                if last_ok.elapsed() >= ttl {
                    return;
                }
            }
        }
    }
}

/// Renews the single-active guard and the heartbeat key; returns if the guard is lost.
async fn keep_guard(
    store: Arc<dyn Store>,
    name: String,
    token: String,
    ttl: Duration,
) -> AgentError {
    loop {
        match store.renew_agent_guard(&name, &token, ttl).await {
            Ok(true) => {}
            // The guard expired (e.g. Redis was down past its TTL): take it back
            // unless another process already has.
            Ok(false) => match store.acquire_agent_guard(&name, &token, ttl).await {
                Ok(true) => {
                    tracing::info!(agent = %name, "single-active guard had expired; taken again")
                }
                Ok(false) => return AgentError::GuardLost(name),
                Err(e) => {
                    tracing::warn!(agent = %name, error = %e, "cannot re-take the agent's guard")
                }
            },
            Err(e) => tracing::warn!(agent = %name, error = %e, "cannot renew the agent's guard"),
        }
        if let Err(e) = store.agent_heartbeat(&name, ttl).await {
            tracing::debug!(agent = %name, error = %e, "cannot refresh the heartbeat key");
        }
        tokio::time::sleep(ttl / 3).await;
    }
}

/// Returns when an event about `goal` (or a resync) arrives.
async fn wait_for_goal_event(events: &mut broadcast::Receiver<StoreEvent>, goal: &str) {
    loop {
        match events.recv().await {
            Ok(event) if event.concerns(goal) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Drops events already seen: the next claim looks at the store anyway.
fn drain(events: &mut broadcast::Receiver<StoreEvent>) {
    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
}

/// Tracks a store outage: logs its start and end once, and backs off meanwhile.
#[derive(Default)]
struct StoreOutage {
    backoff: Option<Duration>,
}

impl StoreOutage {
    fn failed(&mut self, agent: &str, error: &StoreError) -> Duration {
        let next = match self.backoff {
            None => {
                tracing::warn!(%agent, %error, "store unreachable; claiming paused, reconnecting with backoff");
                Duration::from_millis(100)
            }
            Some(b) => (b * 2).min(Duration::from_secs(5)),
        };
        self.backoff = Some(next);
        next
    }

    fn recovered(&mut self, agent: &str) {
        if self.backoff.take().is_some() {
            tracing::info!(%agent, "store reachable again; claiming resumed");
        }
    }
}
