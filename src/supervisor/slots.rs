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
use crate::workspace::InReachError;

/// Where one agent is in its life.
#[derive(Debug)]
pub(super) enum SlotState {
    /// Waiting for a free slot.
    Waiting,
    /// Running, as the slot's `runs`-th start.
    Running(Addr<AgentActor>),
    /// Crashed as run `crashed`; a timer starts it again after the backoff.
    Restarting {
        /// The run that crashed: the timer acts only if nothing started since.
        crashed: u64,
    },
    /// Done for good: retired, stopped, or failed past the restart limit.
    Ended(AgentExit),
}

/// One declared agent and what became of it.
pub(super) struct AgentSlot {
    pub(super) config: AgentConfig,
    pub(super) state: SlotState,
    pub(super) restarts: RestartHistory,
    /// How many times the agent was started; an exit report names its run, so a
    /// late report (or timer) of an earlier run changes nothing.
    pub(super) runs: u64,
    /// What to do once the running actor has stopped (after an instructions
    /// change, or to give its slot to an agent with work).
    pub(super) after_stop: Option<AfterStop>,
    /// It gave its slot up while idle: it waits behind the agents that did not.
    pub(super) yielded: bool,
}

/// Why a running agent was asked to stop by the Supervisor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    /// It was removed from the instructions.
    Remove,
    /// Its declaration changed (or it was removed and declared again): start it
    /// again with the current one.
    Restart,
    /// It was idle while a waiting agent had READY tasks no live agent takes:
    /// it waits for a slot again.
    Yield,
}

impl AgentSlot {
    pub(super) fn new(config: AgentConfig) -> Self {
        Self {
            config,
            state: SlotState::Waiting,
            restarts: RestartHistory::default(),
            runs: 0,
            after_stop: None,
            yielded: false,
        }
    }

    /// Ready to start again from scratch (a new or changed declaration).
    fn start_over(&mut self) {
        self.state = SlotState::Waiting;
        self.restarts.clear();
        self.after_stop = None;
        self.yielded = false;
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
        // Name order, those that gave their slot up last.
        let mut waiting: Vec<(bool, String)> = self
            .agents
            .iter()
            .filter(|(_, a)| matches!(a.state, SlotState::Waiting))
            .map(|(n, a)| (a.yielded, n.clone()))
            .collect();
        waiting.sort();
        let waiting = waiting.into_iter().map(|(_, n)| n);
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
        slot.runs += 1;
        slot.yielded = false;
        let actor = AgentActor::new(
            slot.config.clone(),
            deps,
            ctx.address().recipient(),
            slot.runs,
        );
        tracing::info!(agent = %name, goal = %slot.config.goal, role = ?slot.config.role, "agent started");
        slot.state = SlotState::Running(actor.start());
    }

    /// Applies a changed instructions file: starts added agents, stops removed
    /// ones (their tasks given back) and restarts changed ones once stopped.
    /// An edit that puts a file porki reads to steer the run within an agent's
    /// reach is refused, as `porki run` refuses it at start.
    pub(super) fn reload(&mut self, project: Project, ctx: &mut Context<Self>) {
        if let Err(e) = self.keep_out_of_reach(&project) {
            tracing::error!(
                "the instructions edit is refused, the running agents are left as they were: {e}; or edit the instructions so that no goal's workspace holds such a file"
            );
            return;
        }
        let old_goals = self.config.project.goals();
        let new: BTreeMap<String, AgentConfig> = project
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.clone()))
            .collect();
        let mut removed = Vec::new();
        for (name, slot) in self.agents.iter_mut() {
            let after = match new.get(name) {
                None if slot.after_stop == Some(AfterStop::Remove) => continue,
                None => AfterStop::Remove,
                Some(config) if *config != slot.config => {
                    slot.config = config.clone();
                    AfterStop::Restart
                }
                // Removed earlier and declared again before it had stopped.
                Some(_) if slot.after_stop == Some(AfterStop::Remove) => AfterStop::Restart,
                Some(_) => continue,
            };
            tracing::info!(agent = %name, change = ?after, "instructions changed for this agent");
            match (&slot.state, after) {
                (SlotState::Running(addr), _) => {
                    addr.do_send(StopAgent {
                        grace: Duration::ZERO,
                    });
                    slot.after_stop = Some(after);
                }
                // (A reload never asks a slot to yield.)
                (_, AfterStop::Restart | AfterStop::Yield) => slot.start_over(),
                (_, AfterStop::Remove) => removed.push(name.clone()),
            }
        }
        for name in removed {
            self.agents.remove(&name);
        }
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
        for goal in &new_goals {
            if let Some(reaper) = &self.reaper {
                reaper.do_send(GoalAdded { goal: goal.clone() });
            }
            if let Some(ranker) = &self.ranker {
                ranker.do_send(GoalAdded { goal: goal.clone() });
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

    /// `project`'s control files out of its goals' folders, for a provider that
    /// writes files (a CLI agent may write anywhere in them).
    fn keep_out_of_reach(&self, project: &Project) -> Result<(), InReachError> {
        if !self.config.provider.writes_files() {
            return Ok(());
        }
        self.config
            .settings
            .workspaces()
            .keep_out_of_reach(&project.goals(), &project.control_files())
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
        if slot.runs != msg.run {
            tracing::debug!(agent = %name, run = msg.run, "a report of an earlier run of the agent; ignored");
            return;
        }
        if let Some(after) = slot.after_stop.take()
            && !shutting_down
        {
            // The Supervisor stopped it for an instructions change.
            match after {
                AfterStop::Remove => {
                    tracing::info!(agent = %name, "agent removed by an instructions change");
                    self.agents.remove(&name);
                }
                AfterStop::Restart => {
                    tracing::info!(agent = %name, "agent restarts with its new declaration");
                    slot.start_over();
                }
                AfterStop::Yield => {
                    tracing::info!(agent = %name, "agent gave its slot up; it waits for one again");
                    slot.state = SlotState::Waiting;
                    slot.yielded = true;
                }
            }
        } else if shutting_down || !msg.exit.is_failure() {
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
                        kind: slot.config.kind,
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
                    let crashed = msg.run;
                    slot.state = SlotState::Restarting { crashed };
                    ctx.run_later(delay, move |supervisor, ctx| {
                        if supervisor.shutting_down {
                            return;
                        }
                        // Only if nothing (an instructions reload) started it meanwhile.
                        if let Some(slot) = supervisor.agents.get_mut(&name)
                            && matches!(slot.state, SlotState::Restarting { crashed: c } if c == crashed)
                        {
                            slot.state = SlotState::Waiting;
                        }
                        supervisor.fill_slots(ctx);
                    });
                }
            }
        }
        self.exit_if_idle(ctx);
        self.fill_slots(ctx);
        self.check_goals(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::agent::AgentExited;
    use crate::llm::OfflineProvider;
    use crate::store::MemoryStore;
    use crate::supervisor::{RunSettings, SupervisorConfig};
    use crate::watcher::InstructionsChanged;

    /// How many times the slot of `name` was started, and whether it runs now.
    #[derive(Message)]
    #[rtype(result = "Option<(u64, bool)>")]
    struct SlotRuns(&'static str);

    impl Handler<SlotRuns> for Supervisor {
        type Result = Option<(u64, bool)>;

        fn handle(&mut self, msg: SlotRuns, _: &mut Self::Context) -> Self::Result {
            let slot = self.agents.get(msg.0)?;
            Some((slot.runs, matches!(slot.state, SlotState::Running(_))))
        }
    }

    fn project(dir: &std::path::Path, cadence: &str) -> Project {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("INSTRUCTIONS.md");
        std::fs::write(
            &path,
            format!("## Agents\n\n### w\n- Goal: g\n- Cadence: {cadence}\n"),
        )
        .unwrap();
        Project::load(&path).unwrap()
    }

    async fn supervisor(dir: &std::path::Path) -> Addr<Supervisor> {
        let settings = RunSettings {
            workspace: dir.join("ws/{goal}"),
            ..RunSettings::default()
        };
        let config = SupervisorConfig::new(
            project(dir, "2s"),
            Arc::new(MemoryStore::new()),
            // Slow answers: the agent stays busy for the whole test.
            Arc::new(OfflineProvider::with_delay(Duration::from_secs(60))),
            settings,
        );
        Supervisor::new(config).start()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("porki-slots-{name}-{}", std::process::id()))
    }

    #[actix_rt::test]
    async fn a_crash_restart_timer_does_not_start_an_agent_a_reload_already_started() {
        let dir = temp("timer");
        let addr = supervisor(&dir).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((1, true)));
        // Run 1 crashes: a restart is scheduled after a backoff of about 100 ms...
        addr.send(AgentExited {
            name: "w".into(),
            run: 1,
            exit: AgentExit::Panicked("boom".into()),
        })
        .await
        .unwrap();
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((1, false)));
        // ...but a changed declaration starts it first.
        addr.send(InstructionsChanged {
            project: Ok(project(&dir, "3s")),
        })
        .await
        .unwrap();
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((2, true)));
        // Once the timer has fired, it is still run 2: no second actor.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((2, true)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn no_agents(dir: &std::path::Path) -> Project {
        let path = dir.join("EMPTY.md");
        std::fs::write(&path, "## Agents\n\n### other\n- Goal: h\n").unwrap();
        Project::load(&path).unwrap()
    }

    #[actix_rt::test]
    async fn an_agent_declared_again_before_its_removal_took_effect_runs_again() {
        let dir = temp("readded");
        let addr = supervisor(&dir).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Removed, and declared again before the stopping actor has reported.
        addr.do_send(InstructionsChanged {
            project: Ok(no_agents(&dir)),
        });
        addr.do_send(InstructionsChanged {
            project: Ok(project(&dir, "2s")),
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((2, true)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[actix_rt::test]
    async fn a_late_exit_report_of_an_earlier_run_changes_nothing() {
        let dir = temp("late");
        let addr = supervisor(&dir).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        addr.send(AgentExited {
            name: "w".into(),
            run: 7,
            exit: AgentExit::Panicked("not this run".into()),
        })
        .await
        .unwrap();
        assert_eq!(addr.send(SlotRuns("w")).await.unwrap(), Some((1, true)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
