//! One run of an agent: take the single-active guard, register, restore what
//! survives a restart, then step — claim a task (with `--slot-before-claim`,
//! once a gate slot is granted: `slot_first.rs`) and execute it, or wait for a
//! store event, a heartbeat change or the cadence — until retired or stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;

use crate::domain::Dag;
use crate::heartbeat::Cursor;
use crate::project::AgentConfig;
use crate::store::{
    AgentField, AgentRecord, AgentState, ClaimOutcome, ClaimScope, GoalState, StoreError,
    StoreEvent,
};
use crate::workspace::GoalWorkspace;

use super::control::PauseMode;
use super::execute::{Claimed, Executed};
use super::lease::{AgentGuard, HeldLease, StoreOutage};
use super::record::MEMORY_LEN;
use super::slot_first::SlotFirst;
use super::{AgentDeps, AgentError, AgentExit};

/// Longest single wait between steps (a paused agent waits this long at a time).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What one step of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A task was claimed and executed (and any task claimed with its completion).
    Executed,
    /// Nothing to do now: wait this long at most (or until an event).
    Idle(Duration),
    /// The goal is complete: the agent retires.
    Retired,
}

/// The state of one run of the agent (rebuilt from the store on restart).
pub(super) struct Worker {
    pub(super) config: AgentConfig,
    pub(super) deps: AgentDeps,
    pub(super) held: HeldLease,
    /// The agent name's single-active guard (released by the actor on every exit).
    pub(super) guard: Arc<AgentGuard>,
    pub(super) stop: watch::Receiver<Option<Duration>>,
    pub(super) heartbeat: Arc<Notify>,
    pub(super) plan: Option<Dag>,
    pub(super) memory: VecDeque<String>,
    /// The memory changed since its last snapshot.
    pub(super) memory_unsaved: bool,
    /// When the last snapshot was written.
    pub(super) memory_saved: Option<Instant>,
    /// The results of DONE dependencies of this goal, as read (capped), by task.
    pub(super) done_outputs: HashMap<String, String>,
    /// Set while a PAUSE directive is in effect (persisted in the store).
    pub(super) paused: Option<PauseMode>,
    /// A STOP directive was read.
    pub(super) stop_directive: bool,
    /// How much of the heartbeat file this run has applied or skipped, for when
    /// the store loses its copy (a new Redis): reading then goes on from here.
    pub(super) heartbeat_cursor: Option<Cursor>,
}

impl Worker {
    /// A worker for one run of the agent.
    pub(super) fn new(
        config: AgentConfig,
        deps: AgentDeps,
        held: HeldLease,
        guard: Arc<AgentGuard>,
        stop: watch::Receiver<Option<Duration>>,
        heartbeat: Arc<Notify>,
    ) -> Self {
        Self {
            config,
            deps,
            held,
            guard,
            stop,
            heartbeat,
            plan: None,
            memory: VecDeque::new(),
            memory_unsaved: false,
            memory_saved: None,
            done_outputs: HashMap::new(),
            paused: None,
            stop_directive: false,
            heartbeat_cursor: None,
        }
    }

    /// The whole run: guard, registration, restore, the loop, deregistration.
    pub(super) async fn run(mut self) -> Result<AgentExit, AgentError> {
        let store = self.deps.store.clone();
        let name = self.config.name.clone();
        let guard = self.guard.clone();
        let mut stop = self.stop.clone();
        if !guard
            .take(async move {
                let _ = stop.wait_for(Option::is_some).await;
            })
            .await
        {
            return Ok(AgentExit::Stopped);
        }
        let record = |state: AgentState| AgentRecord {
            name: name.clone(),
            goal: self.config.goal.clone(),
            role: self.config.role.clone(),
            kind: self.config.kind,
            process: self.deps.settings.process.clone(),
            state,
        };
        let running = record(AgentState::Running);
        let retired = record(AgentState::Retired);
        let stopped = record(AgentState::Stopped);
        if let Err(e) = store.register_agent(&running).await {
            tracing::warn!(agent = %name, error = %e, "cannot register the agent");
        }
        self.restore().await;
        let outcome = tokio::select! {
            exit = self.work() => Ok(exit),
            lost = guard.keep() => Err(lost),
        };
        self.save_memory().await;
        let record = match &outcome {
            Ok(AgentExit::Retired) => retired,
            _ => stopped,
        };
        let _ = store.register_agent(&record).await;
        outcome
    }

    /// Brings back what survives a restart: PAUSE, the memory, unapplied heartbeat lines.
    async fn restore(&mut self) {
        let store = self.deps.store.clone();
        let name = &self.config.name;
        match store.agent_value(name, AgentField::Paused).await {
            Ok(Some(mode)) => {
                tracing::info!(agent = %name, "agent is paused (a PAUSE is in effect); append RESUME to its heartbeat file to continue");
                self.paused = Some(PauseMode::parse(&mode));
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

    /// The workspace of `goal`.
    pub(super) fn workspace(&self, goal: &str) -> GoalWorkspace {
        self.deps.settings.workspaces.for_goal(goal)
    }

    /// Whether the agent was asked to stop (by the Supervisor or a STOP directive).
    fn stopping(&self) -> bool {
        self.stop.borrow().is_some() || self.stop_directive
    }

    /// Whether the agent goes on claiming after the task at hand.
    pub(super) fn keeps_working(&self) -> bool {
        self.paused.is_none() && !self.stopping()
    }

    /// Steps until the agent retires or is stopped, waiting between idle steps.
    async fn work(&mut self) -> AgentExit {
        let mut events = self.deps.store.events();
        let mut outage = StoreOutage::default();
        loop {
            if self.stopping() {
                return AgentExit::Stopped;
            }
            drain(&mut events);
            let wait = match self.step(&mut events, &mut outage).await {
                Step::Executed => continue,
                Step::Idle(wait) => wait,
                Step::Retired => return AgentExit::Retired,
            };
            self.save_memory().await;
            self.wait(wait, &mut events).await;
        }
    }

    /// Claims and executes one task, or says how long to wait for one.
    async fn step(
        &mut self,
        events: &mut broadcast::Receiver<StoreEvent>,
        outage: &mut StoreOutage,
    ) -> Step {
        if self.paused.is_some() {
            return Step::Idle(Duration::MAX);
        }
        let store = self.deps.store.clone();
        let (goal, name) = (self.config.goal.clone(), self.config.name.clone());
        let role = self.config.claim_role();
        let scope = ClaimScope {
            role: role.as_deref(),
            roleless: self.config.takes_roleless(),
        };
        let ttl = self.deps.settings.lease_ttl;
        // An LLM pick can take long: a stop request ends it (nothing is held yet).
        let mut stop = self.stop.clone();
        let pick = tokio::select! {
            pick = self.pick() => pick,
            _ = stop.wait_for(Option::is_some) => return Step::Idle(Duration::ZERO),
        };
        let slot = match self.slot_first() {
            true => match self.slot_for_claim(scope, outage).await {
                SlotFirst::Granted(permit) => Some(permit),
                SlotFirst::NothingReady => None,
                SlotFirst::Wait(wait) => return Step::Idle(wait),
            },
            false => None,
        };
        let sent = Instant::now();
        let claimed = store
            .claim_preferred(&goal, &name, scope, ttl, pick.as_deref())
            .await;
        match claimed {
            Ok(ClaimOutcome::Claimed(lease)) if slot.is_none() && self.slot_first() => {
                outage.recovered(&name);
                self.give_back_unslotted(&lease).await;
                Step::Idle(Duration::ZERO)
            }
            Ok(ClaimOutcome::Claimed(lease)) => {
                outage.recovered(&name);
                let mut next = Claimed { lease, sent, slot };
                loop {
                    match self.execute(next, events).await {
                        Executed::Next(claimed) => next = claimed,
                        Executed::Finished => return Step::Executed,
                        Executed::Wait(wait) => return Step::Idle(wait),
                    }
                }
            }
            Ok(ClaimOutcome::Empty {
                retry_in,
                goal_state,
            }) => {
                outage.recovered(&name);
                if goal_state == GoalState::Complete {
                    tracing::info!(agent = %name, goal = %goal, "goal complete; agent retires");
                    return Step::Retired;
                }
                Step::Idle(retry_in.map_or(self.config.cadence, |r| r.min(self.config.cadence)))
            }
            Err(StoreError::UnknownGoal { .. }) => {
                outage.recovered(&name);
                Step::Idle(self.config.cadence)
            }
            Err(e) => Step::Idle(outage.failed(&name, &e)),
        }
    }

    /// Waits up to `wait` for an event about the goal (unless paused), a stop, or a
    /// heartbeat change, which it applies.
    async fn wait(&mut self, wait: Duration, events: &mut broadcast::Receiver<StoreEvent>) {
        let goal = self.config.goal.clone();
        let heartbeat = self.heartbeat.clone();
        let mut stop = self.stop.clone();
        let heartbeat_changed = tokio::select! {
            _ = wait_for_goal_event(events, &goal), if self.paused.is_none() => false,
            _ = tokio::time::sleep(wait.min(MAX_WAIT)) => false,
            _ = stop.wait_for(Option::is_some) => false,
            _ = heartbeat.notified() => true,
        };
        if heartbeat_changed {
            self.apply_heartbeat(None).await;
        }
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
