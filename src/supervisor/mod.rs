//! The Supervisor: the root of the actor tree. It owns the DagPlanner,
//! HeartbeatWatcher, LeaseReaper, Ranker and LlmGate, and one AgentActor per declared
//! agent.
//!
//! ```text
//! Supervisor ─┬─ DagPlanner        plans each goal once (or resumes its stored plan)   not restarted
//!             ├─ HeartbeatWatcher  heartbeat and instructions files → messages          not restarted
//!             ├─ LeaseReaper       lost leases → READY / FAILED                         not restarted
//!             ├─ Ranker            refreshes tasks' ranks as they finish (issue 21)      not restarted
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
//! waiting one. Once at start and then every `cleanup_every` it removes the
//! goals finished and agents dead past the retention, but its own
//! (`store::gc`), and runs `git worktree prune` in its worktree goals'
//! repositories. Shutdown comes from outside as a [`Shutdown`] message (the CLI
//! sends it on SIGTERM/SIGINT).
//!
//! `config.rs` holds the run's settings, `restart.rs` the restart policy,
//! `slots.rs` the agent slots (spawn limit, crash restarts, instruction reloads),
//! `unserved.rs` the READY tasks no live agent can take (reported, and handed to
//! another builder when the plan marked them soft).

mod config;
mod restart;
mod slots;
mod unserved;

use self::slots::{AgentSlot, SlotState};

pub use self::config::{RunSettings, SpawnMode, SupervisorConfig};
pub use self::restart::{RestartDecision, RestartHistory, RestartPolicy};

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;

use crate::agent::{AgentDeps, AgentExit, HeldLeases, StopAgent};
use crate::llm_gate::{LlmCaller, LlmGate};
use crate::planner::{DagPlanner, PlanGoal, plan_context};
use crate::ranker::Ranker;
use crate::reaper::LeaseReaper;
use crate::store::GoalState;
use crate::usage::UsageTally;
use crate::watcher::{HeartbeatChanged, HeartbeatWatcher, InstructionsChanged};

/// The supervisor actor.
pub struct Supervisor {
    config: SupervisorConfig,
    deps: Option<AgentDeps>,
    planner: Option<Addr<DagPlanner>>,
    reaper: Option<Addr<LeaseReaper>>,
    ranker: Option<Addr<Ranker>>,
    watcher: Option<Addr<HeartbeatWatcher>>,
    agents: BTreeMap<String, AgentSlot>,
    shutting_down: bool,
    exit_code: i32,
    /// The leases this process's agents hold, given back if they cannot stop in time.
    held: HeldLeases,
    /// The System is being stopped (after the last usage is written).
    exiting: bool,
    /// READY tasks no live agent could take, by goal, as last logged.
    unserved: BTreeMap<String, Vec<(String, u64)>>,
}

/// How long past the grace the Supervisor waits for agents to stop.
const STOP_MARGIN: Duration = Duration::from_secs(5);
/// How long it then waits for the store to take back the leases still held.
const RELEASE_LIMIT: Duration = Duration::from_secs(2);

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
            ranker: None,
            watcher: None,
            agents,
            shutting_down: false,
            exit_code: 0,
            held: HeldLeases::default(),
            unserved: BTreeMap::new(),
            exiting: false,
        }
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
        ctx.run_later(grace + STOP_MARGIN, |supervisor, ctx| {
            tracing::warn!("agents did not stop in time; giving back what they hold and exiting");
            let held = supervisor.held.take_all();
            let store = supervisor.config.store.clone();
            let code = supervisor.exit_code;
            ctx.spawn(
                async move {
                    let releases =
                        futures::future::join_all(held.iter().map(|lease| store.release(lease)));
                    if tokio::time::timeout(RELEASE_LIMIT, releases).await.is_err() {
                        tracing::warn!("the store did not take every lease back; the reaper will");
                    }
                }
                .into_actor(supervisor)
                .map(move |(), supervisor, ctx| supervisor.exit(code, ctx)),
            );
        });
        self.exit_if_idle(ctx);
    }

    fn exit_if_idle(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down && self.running() == 0 {
            self.exit(self.exit_code, ctx);
        }
    }

    /// Writes the LLM usage not yet in the store, then stops the System with `code`.
    fn exit(&mut self, code: i32, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.exiting, true) {
            return;
        }
        let usage = self.deps.as_ref().map(|deps| deps.caller.usage.clone());
        ctx.spawn(
            async move {
                if let Some(usage) = usage
                    && tokio::time::timeout(RELEASE_LIMIT, usage.flush())
                        .await
                        .is_err()
                {
                    tracing::warn!("could not add the last LLM usage to the goals' totals");
                }
                System::current().stop_with_code(code);
            }
            .into_actor(self),
        );
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

    /// Removes the goals finished and the agents dead for longer than the
    /// retention, except this process's own (`store::gc`), and logs what went.
    fn clean_up(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let store = self.config.store.clone();
        let project = &self.config.project;
        let options = crate::store::gc::GcOptions {
            keep_goals: project.goals().into_iter().collect(),
            keep_agents: project.agents.iter().map(|a| a.name.clone()).collect(),
            ..crate::store::gc::GcOptions::new(self.config.settings.retain_finished)
        };
        // Under worktree isolation, git forgets worktrees whose folders are gone.
        let prune = self.config.settings.git.clone().map(|git| {
            let settings = &self.config.settings;
            let workspaces = settings.workspaces();
            let goals: Vec<_> = settings
                .worktree_goals(project)
                .into_iter()
                .map(|g| (workspaces.for_goal(&g).dir, g))
                .collect();
            (git, goals)
        });
        ctx.spawn(
            async move {
                crate::store::gc::collect_and_log(&*store, &options).await;
                if let Some((git, goals)) = prune {
                    for (dir, goal) in goals {
                        if let Err(e) = git.prune_worktrees(&goal, &dir).await {
                            tracing::warn!(goal = %goal, error = %e, "cleanup: git worktree prune failed; trying again later");
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }

    fn plan_goals(&mut self, goals: Vec<String>, ctx: &mut Context<Self>) {
        let Some(planner) = self.planner.clone() else {
            return;
        };
        for goal in goals {
            let context = plan_context(&self.config.project, &goal);
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
        let gate = LlmGate::spawn(
            config.store.clone(),
            settings.llm_max_concurrency,
            settings.llm_wait,
        );
        self.reaper = Some(
            LeaseReaper::new(
                config.store.clone(),
                config.project.goals(),
                settings.lease_ttl,
            )
            .with_metrics(settings.metrics.clone())
            .with_git(settings.git.clone(), settings.workspaces())
            .start(),
        );
        self.ranker = Some(Ranker::new(config.store.clone(), config.project.goals()).start());
        let caller = LlmCaller {
            gate,
            provider: config.provider.clone(),
            store: config.store.clone(),
            goal_token_budget: settings.goal_token_budget,
            goal_budget_usd: settings.goal_budget_usd,
            metrics: settings.metrics.clone(),
            usage: UsageTally::start(config.store.clone()),
        };
        self.planner =
            Some(DagPlanner::new(config.store.clone(), caller.clone(), settings.planner()).start());
        self.deps = Some(AgentDeps {
            store: config.store.clone(),
            caller,
            settings: settings.agent(),
            held: self.held.clone(),
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
        ctx.run_interval(unserved::UNSERVED_CHECK, |supervisor, ctx| {
            supervisor.check_unserved(ctx)
        });
        self.clean_up(ctx);
        ctx.run_interval(self.config.settings.cleanup_every, |supervisor, ctx| {
            supervisor.clean_up(ctx)
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
