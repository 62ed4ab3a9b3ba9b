//! The agent slots: one per declared agent, started while the spawn limit
//! allows, restarted after a crash by the [`RestartPolicy`], and started, stopped
//! or restarted when the instructions change.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use super::{RestartDecision, RestartHistory, Supervisor};
use crate::agent::{AgentActor, AgentExit, AgentExited, StopAgent};
use crate::project::{AgentConfig, Project};
use crate::reaper::GoalAdded;
use crate::store::{AgentRecord, AgentState};
use crate::watcher::WatchHeartbeats;

/// Where one agent is in its life.
#[derive(Debug)]
pub(super) enum SlotState {
    /// Waiting for a free slot (or a restart backoff).
    Waiting,
    /// Running.
    Running(Addr<AgentActor>),
    /// Scheduled to restart.
    Restarting,
    /// Done for good: retired, stopped, or failed past the restart limit.
    Ended(AgentExit),
}

pub(super) struct AgentSlot {
    pub(super) config: AgentConfig,
    pub(super) state: SlotState,
    pub(super) restarts: RestartHistory,
    /// What to do once the running actor has stopped (after an instructions change).
    pub(super) after_stop: Option<AfterStop>,
}

/// Why a running agent was asked to stop by the Supervisor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    /// It was removed from the instructions.
    Remove,
    /// Its declaration changed: start it again with the new one.
    Restart,
}

impl AgentSlot {
    pub(super) fn new(config: AgentConfig) -> Self {
        Self {
            config,
            state: SlotState::Waiting,
            restarts: RestartHistory::default(),
            after_stop: None,
        }
    }
}

impl Supervisor {
    pub(super) fn running(&self) -> usize {
        self.agents
            .values()
            .filter(|a| matches!(a.state, SlotState::Running(_)))
            .count()
    }

    /// Starts waiting agents while slots are free.
    pub(super) fn fill_slots(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let limit = self.config.settings.spawn_limit.max(1);
        let waiting: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| matches!(a.state, SlotState::Waiting))
            .map(|(n, _)| n.clone())
            .collect();
        for name in waiting {
            if self.running() >= limit {
                tracing::info!(agent = %name, limit, "agent waits for a free slot (spawn limit reached)");
                continue;
            }
            self.start_agent(&name, ctx);
        }
    }

    fn start_agent(&mut self, name: &str, ctx: &mut Context<Self>) {
        let deps = self.deps.clone().expect("deps are set at start");
        let Some(slot) = self.agents.get_mut(name) else {
            return;
        };
        let actor = AgentActor::new(slot.config.clone(), deps, ctx.address().recipient());
        tracing::info!(agent = %name, goal = %slot.config.goal, role = ?slot.config.role, "agent started");
        slot.state = SlotState::Running(actor.start());
    }

    /// Applies a changed instructions file: starts added agents, stops removed
    /// ones (their tasks given back) and restarts changed ones.
    pub(super) fn reload(&mut self, project: Project, ctx: &mut Context<Self>) {
        let old_goals = self.config.project.goals();
        let new: BTreeMap<String, AgentConfig> = project
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.clone()))
            .collect();
        for (name, slot) in self.agents.iter_mut() {
            let after = match new.get(name) {
                None => AfterStop::Remove,
                Some(config) if *config != slot.config => {
                    slot.config = config.clone();
                    AfterStop::Restart
                }
                Some(_) => continue,
            };
            tracing::info!(agent = %name, change = ?after, "instructions changed for this agent");
            match &slot.state {
                SlotState::Running(addr) => {
                    addr.do_send(StopAgent {
                        grace: Duration::ZERO,
                    });
                    slot.after_stop = Some(after);
                }
                _ if after == AfterStop::Restart => {
                    slot.state = SlotState::Waiting;
                    slot.restarts.clear();
                }
                _ => slot.after_stop = Some(AfterStop::Remove),
            }
        }
        self.agents.retain(|_, slot| {
            slot.after_stop != Some(AfterStop::Remove)
                || matches!(slot.state, SlotState::Running(_))
        });
        for (name, config) in new {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.agents.entry(name) {
                tracing::info!(agent = %entry.key(), goal = %config.goal, "agent added by an instructions change");
                entry.insert(AgentSlot::new(config));
            }
        }
        self.config.project = project;
        let new_goals: Vec<String> = self
            .config
            .project
            .goals()
            .into_iter()
            .filter(|g| !old_goals.contains(g))
            .collect();
        if let Some(reaper) = &self.reaper {
            for goal in &new_goals {
                reaper.do_send(GoalAdded { goal: goal.clone() });
            }
        }
        self.plan_goals(new_goals, ctx);
        if let Some(watcher) = &self.watcher {
            watcher.do_send(WatchHeartbeats {
                files: self.heartbeat_files(),
            });
        }
        self.fill_slots(ctx);
    }
}

impl Handler<AgentExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AgentExited, ctx: &mut Self::Context) {
        let policy = self.config.settings.restart;
        let shutting_down = self.shutting_down;
        let Some(slot) = self.agents.get_mut(&msg.name) else {
            return;
        };
        let name = msg.name.clone();
        if shutting_down || !msg.exit.is_failure() {
            tracing::info!(agent = %name, exit = ?msg.exit, "agent ended");
            slot.state = SlotState::Ended(msg.exit);
        } else {
            match policy.on_crash(&mut slot.restarts, Instant::now()) {
                RestartDecision::GiveUp { restarts } => {
                    let window = policy.window;
                    let reason = match &msg.exit {
                        AgentExit::Failed(m) | AgentExit::Panicked(m) => m.clone(),
                        other => format!("{other:?}"),
                    };
                    tracing::error!(agent = %name, restarts, ?window, %reason, "agent failed too often; not restarting it");
                    let record = AgentRecord {
                        name: name.clone(),
                        goal: slot.config.goal.clone(),
                        role: slot.config.role.clone(),
                        process: self
                            .deps
                            .as_ref()
                            .map(|d| d.settings.process.clone())
                            .unwrap_or_default(),
                        state: AgentState::Failed(format!(
                            "{reason} ({restarts} restarts within {window:?})"
                        )),
                    };
                    slot.state = SlotState::Ended(msg.exit);
                    let store = self.config.store.clone();
                    ctx.spawn(
                        async move {
                            let _ = store.register_agent(&record).await;
                        }
                        .into_actor(self),
                    );
                }
                RestartDecision::RestartAfter(delay) => {
                    tracing::warn!(agent = %name, exit = ?msg.exit, restart_in = ?delay, "agent crashed; restarting");
                    self.config.settings.metrics.agent_restarted(&name);
                    slot.state = SlotState::Restarting;
                    ctx.run_later(delay, move |supervisor, ctx| {
                        if supervisor.shutting_down {
                            return;
                        }
                        if let Some(slot) = supervisor.agents.get_mut(&name) {
                            slot.state = SlotState::Waiting;
                        }
                        supervisor.fill_slots(ctx);
                    });
                }
            }
        }
        self.exit_if_idle();
        self.fill_slots(ctx);
        self.check_goals(ctx);
    }
}
