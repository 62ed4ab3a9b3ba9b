//! The Supervisor: the root of the actor tree. It owns the DagPlanner,
//! HeartbeatWatcher, LeaseReaper and LlmGate, and one AgentActor per declared
//! agent.
//!
//! ```text
//! Supervisor ─┬─ DagPlanner        plans each goal once (or resumes its stored plan)   not restarted
//!             ├─ HeartbeatWatcher  heartbeat and instructions files → messages          not restarted
//!             ├─ LeaseReaper       lost leases → READY / FAILED                         not restarted
//!             ├─ LlmGate           shared cap on LLM calls                              not restarted
//!             └─ AgentActor × N    claim → execute → complete; at most `spawn_limit`    restarted on error or panic
//! ```
//!
//! The four service actors hold no state that a crash could lose and do not
//! panic on bad input, so only agents are supervised. Restart strategy
//! (one-for-one, [`RestartPolicy`]): an agent that errors or panics is restarted
//! after a jittered, doubling backoff (100 ms up to 30 s); more than
//! `max_restarts` restarts within the window mark it failed in the store and it
//! stays down. A retired (goal complete) or stopped agent frees its slot for a
//! waiting one. Shutdown comes from outside as a [`Shutdown`] message (the CLI
//! sends it on SIGTERM/SIGINT).

mod config;
mod restart;

pub use self::config::{RunSettings, SpawnMode, SupervisorConfig};
pub use self::restart::{RestartDecision, RestartHistory, RestartPolicy};

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use crate::agent::{AgentActor, AgentDeps, AgentExit, AgentExited, StopAgent};
use crate::llm::prompt::PlanContext;
use crate::llm_gate::{LlmCaller, LlmGate};
use crate::planner::{DagPlanner, PlanGoal};
use crate::project::{AgentConfig, Project};
use crate::reaper::{GoalAdded, LeaseReaper};
use crate::store::{AgentRecord, AgentState, GoalState};
use crate::watcher::{HeartbeatChanged, HeartbeatWatcher, InstructionsChanged, WatchHeartbeats};

/// Where one agent is in its life.
#[derive(Debug)]
enum SlotState {
    /// Waiting for a free slot (or a restart backoff).
    Waiting,
    /// Running.
    Running(Addr<AgentActor>),
    /// Scheduled to restart.
    Restarting,
    /// Done for good: retired, stopped, or failed past the restart limit.
    Ended(AgentExit),
}

struct AgentSlot {
    config: AgentConfig,
    state: SlotState,
    restarts: RestartHistory,
    /// What to do once the running actor has stopped (after an instructions change).
    after_stop: Option<AfterStop>,
}

/// Why a running agent was asked to stop by the Supervisor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    /// It was removed from the instructions.
    Remove,
    /// Its declaration changed: start it again with the new one.
    Restart,
}

impl AgentSlot {
    fn new(config: AgentConfig) -> Self {
        Self {
            config,
            state: SlotState::Waiting,
            restarts: RestartHistory::default(),
            after_stop: None,
        }
    }
}

/// The supervisor actor.
pub struct Supervisor {
    config: SupervisorConfig,
    deps: Option<AgentDeps>,
    planner: Option<Addr<DagPlanner>>,
    reaper: Option<Addr<LeaseReaper>>,
    watcher: Option<Addr<HeartbeatWatcher>>,
    agents: BTreeMap<String, AgentSlot>,
    shutting_down: bool,
    exit_code: i32,
}

impl Supervisor {
    /// A supervisor for the project in `config`.
    pub fn new(config: SupervisorConfig) -> Self {
        let agents = config
            .project
            .agents
            .iter()
            .map(|a| (a.name.clone(), AgentSlot::new(a.clone())))
            .collect();
        Self {
            config,
            deps: None,
            planner: None,
            reaper: None,
            watcher: None,
            agents,
            shutting_down: false,
            exit_code: 0,
        }
    }

    fn running(&self) -> usize {
        self.agents
            .values()
            .filter(|a| matches!(a.state, SlotState::Running(_)))
            .count()
    }

    /// Starts waiting agents while slots are free.
    fn fill_slots(&mut self, ctx: &mut Context<Self>) {
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

    /// With `--until-done`: exits with the right code once every goal is terminal,
    /// or with 1 once no agent is left to finish an open goal.
    fn check_goals(&mut self, ctx: &mut Context<Self>) {
        // Only --until-done acts on goal states; a service keeps running regardless.
        if self.shutting_down || !self.config.settings.until_done {
            return;
        }
        let store = self.config.store.clone();
        let goals = self.config.project.goals();
        let open_without_agents: Vec<String> = goals
            .iter()
            .filter(|g| {
                self.agents
                    .values()
                    .filter(|a| &a.config.goal == *g)
                    .all(|a| matches!(a.state, SlotState::Ended(ref e) if *e != AgentExit::Retired))
            })
            .cloned()
            .collect();
        ctx.spawn(
            async move {
                let mut states = Vec::new();
                for goal in &goals {
                    match store.goal_status(goal).await {
                        Ok(status) => states.push((goal.clone(), status.map(|s| s.state))),
                        Err(_) => return None,
                    }
                }
                Some(states)
            }
            .into_actor(self)
            .map(move |states, supervisor, ctx| {
                let Some(states) = states else { return };
                if supervisor.shutting_down {
                    return;
                }
                let terminal = states.iter().all(|(_, s)| s.is_some_and(GoalState::is_terminal));
                let failed = states.iter().any(|(_, s)| *s == Some(GoalState::Failed));
                if terminal {
                    let code = i32::from(failed);
                    for (goal, state) in &states {
                        tracing::info!(goal = %goal, state = ?state.unwrap(), "goal finished");
                    }
                    supervisor.shut_down(code, ctx);
                    return;
                }
                let stranded: Vec<&String> = states
                    .iter()
                    .filter(|(g, s)| !s.is_some_and(GoalState::is_terminal) && open_without_agents.contains(g))
                    .map(|(g, _)| g)
                    .collect();
                if !stranded.is_empty() {
                    tracing::error!(goals = ?stranded, "no agent is left to finish these goals (all failed or stopped)");
                    supervisor.shut_down(1, ctx);
                }
            }),
        );
    }

    /// Stops every agent (held tasks finish within the grace, else are released) and exits.
    fn shut_down(&mut self, code: i32, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.exit_code = code;
        let grace = self.config.settings.grace;
        for slot in self.agents.values() {
            if let SlotState::Running(addr) = &slot.state {
                addr.do_send(StopAgent { grace });
            }
        }
        // Agents report as they stop; past the grace (and a margin for releasing
        // leases) the process exits regardless.
        ctx.run_later(grace + Duration::from_secs(5), |supervisor, _| {
            tracing::warn!("agents did not stop in time; exiting");
            System::current().stop_with_code(supervisor.exit_code);
        });
        self.exit_if_idle();
    }

    fn exit_if_idle(&self) {
        if self.shutting_down && self.running() == 0 {
            System::current().stop_with_code(self.exit_code);
        }
    }

    /// Agent name → heartbeat file, for the watcher.
    fn heartbeat_files(&self) -> BTreeMap<String, std::path::PathBuf> {
        self.config
            .project
            .agents
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.heartbeat.clone()?)))
            .collect()
    }

    /// Applies a changed instructions file: starts added agents, stops removed
    /// ones (their tasks given back) and restarts changed ones.
    fn reload(&mut self, project: Project, ctx: &mut Context<Self>) {
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

    fn plan_goals(&mut self, goals: Vec<String>, ctx: &mut Context<Self>) {
        let Some(planner) = self.planner.clone() else {
            return;
        };
        let project = &self.config.project;
        for goal in goals {
            let context = PlanContext {
                goal_id: goal.clone(),
                context: project.instructions.context.clone(),
                agents: project.agents_of(&goal).map(AgentConfig::brief).collect(),
                previous_error: None,
            };
            let planner = planner.clone();
            ctx.spawn(
                async move { planner.send(PlanGoal { context }).await }
                    .into_actor(self)
                    .map(move |result, supervisor, ctx| {
                        match result {
                            Ok(Ok(outcome)) => tracing::info!(goal = %goal, ?outcome, "goal planned"),
                            Ok(Err(e)) => tracing::error!(goal = %goal, error = %e, "goal could not be planned"),
                            Err(e) => tracing::error!(goal = %goal, error = %e, "planner unavailable"),
                        }
                        supervisor.check_goals(ctx);
                    }),
            );
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let config = &self.config;
        let settings = &config.settings;
        let gate = LlmGate::new(
            config.store.clone(),
            settings.llm_max_concurrency,
            settings.llm_wait,
        )
        .start();
        self.reaper = Some(
            LeaseReaper::new(
                config.store.clone(),
                config.project.goals(),
                settings.lease_ttl,
            )
            .start(),
        );
        let caller = LlmCaller {
            gate,
            provider: config.provider.clone(),
            store: config.store.clone(),
            goal_token_budget: settings.goal_token_budget,
        };
        self.planner =
            Some(DagPlanner::new(config.store.clone(), caller.clone(), settings.planner()).start());
        self.deps = Some(AgentDeps {
            store: config.store.clone(),
            caller,
            settings: settings.agent(),
        });
        tracing::info!(
            agents = self.agents.len(),
            goals = ?config.project.goals(),
            spawn_mode = ?settings.spawn_mode,
            spawn_limit = settings.spawn_limit,
            "orchestrator started"
        );
        self.watcher = Some(
            HeartbeatWatcher::new(
                self.config.project.path.clone(),
                self.heartbeat_files(),
                ctx.address().recipient(),
                ctx.address().recipient(),
            )
            .start(),
        );
        self.plan_goals(self.config.project.goals(), ctx);
        self.fill_slots(ctx);
        ctx.run_interval(Duration::from_millis(500), |supervisor, ctx| {
            supervisor.check_goals(ctx)
        });
    }
}

/// Stop everything and exit 0.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.shut_down(0, ctx);
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

impl Handler<HeartbeatChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: HeartbeatChanged, _: &mut Self::Context) {
        if let Some(AgentSlot {
            state: SlotState::Running(addr),
            ..
        }) = self.agents.get(&msg.agent)
        {
            addr.do_send(msg);
        }
    }
}

impl Handler<InstructionsChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: InstructionsChanged, ctx: &mut Self::Context) {
        match msg.project {
            Err(e) => tracing::error!(
                "the instructions file is invalid; the running agents are left as they were:\n{e}"
            ),
            Ok(_) if self.config.settings.spawn_mode == SpawnMode::Static => tracing::warn!(
                "the instructions file changed, but spawn mode is static: restart porki (or use --spawn-mode dynamic) to apply it"
            ),
            Ok(project) if self.shutting_down => drop(project),
            Ok(project) => self.reload(project, ctx),
        }
    }
}
