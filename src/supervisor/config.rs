//! What the Supervisor is told: [`RunSettings`] (every knob of `porki run`, with
//! the defaults it documents, and the rules derived from them) and
//! [`SupervisorConfig`] (the settings with the project, store and provider).
//! `porki run`, `porki demo` and the tests all build their configuration here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::{AgentSettings, GitContext};
use crate::domain::Isolation;
use crate::llm::LlmProvider;
use crate::metrics::Metrics;
use crate::planner::PlannerSettings;
use crate::project::Project;
use crate::store::Store;
use crate::workspace::Workspaces;

use super::RestartPolicy;

/// How agents are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum SpawnMode {
    /// The agents of the first read are all that run.
    Static,
    /// Agents start and stop as the instructions change.
    Dynamic,
}

/// Every setting of an orchestrator run; `Default` gives `porki run`'s defaults.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Lease TTL of a claimed task (renewed every third of it).
    pub lease_ttl: Duration,
    /// TTL of an agent's single-active guard; `None`: derived from the lease TTL.
    pub guard_ttl: Option<Duration>,
    /// Timeout of one LLM call.
    pub llm_timeout: Duration,
    /// Each goal's workspace: the working directory of its CLI calls (`{goal}` in
    /// it becomes the goal id; relative to the current directory).
    pub workspace: PathBuf,
    /// Where task artifacts are written (one folder per goal below it); `None`:
    /// `artifacts/` inside each goal's workspace.
    pub artifacts_dir: Option<PathBuf>,
    /// Ask the LLM which READY task to take next.
    pub llm_select: bool,
    /// Summarize each finished task for its dependents.
    pub llm_summarize: bool,
    /// Attempts per task before it is FAILED.
    pub max_attempts: u32,
    /// Reviews that may ask for changes before a further rejection escalates.
    pub max_review_cycles: u32,
    /// Plan a goal again when its instructions changed since its plan was stored.
    pub replan: bool,
    /// Rank goals planned by this process by the critical path (`--ranking`).
    pub ranking: bool,
    /// Agents wait for an LLM slot before claiming (`--slot-before-claim`).
    pub slot_before_claim: bool,
    /// LLM calls in flight across processes (0: no cap).
    pub llm_max_concurrency: u32,
    /// Longest wait for an LLM slot.
    pub llm_wait: Duration,
    /// Tokens a goal may spend on LLM calls; `None`: no limit.
    pub goal_token_budget: Option<u64>,
    /// USD a goal may spend on LLM calls (`--goal-budget-usd`); `None`: no limit.
    pub goal_budget_usd: Option<f64>,
    /// Static or dynamic spawning.
    pub spawn_mode: SpawnMode,
    /// Most agents running at once.
    pub spawn_limit: usize,
    /// Exit when every goal is terminal (0 all complete, 1 any failed).
    pub until_done: bool,
    /// How long held tasks may finish on shutdown; zero releases them at once.
    pub grace: Duration,
    /// When crashed agents are restarted.
    pub restart: RestartPolicy,
    /// The process's metrics, counted by its actors (`/metrics` renders them).
    pub metrics: Arc<Metrics>,
    /// How long goals complete or failed, and agents dead, are kept in the store
    /// before the cleanup removes them (`--retain-finished`).
    pub retain_finished: Duration,
    /// How often the orchestrator runs that cleanup (this process's own goals
    /// and agents are never removed by it).
    pub cleanup_every: Duration,
    /// The isolation of goals whose instructions give none (`--isolation`).
    pub isolation: Isolation,
    /// git and its settings, when some goal is isolated in worktrees.
    pub git: Option<Arc<GitContext>>,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(60),
            guard_ttl: None,
            llm_timeout: crate::llm::DEFAULT_TIMEOUT,
            workspace: PathBuf::from(crate::workspace::DEFAULT_WORKSPACE),
            artifacts_dir: None,
            llm_select: false,
            llm_summarize: false,
            max_attempts: crate::store::DEFAULT_MAX_ATTEMPTS,
            max_review_cycles: crate::domain::DEFAULT_MAX_REVIEW_CYCLES,
            replan: false,
            ranking: true,
            slot_before_claim: true,
            llm_max_concurrency: crate::llm_gate::DEFAULT_MAX_CONCURRENCY,
            llm_wait: crate::llm_gate::DEFAULT_WAIT,
            goal_token_budget: None,
            goal_budget_usd: None,
            spawn_mode: SpawnMode::Dynamic,
            spawn_limit: 10,
            until_done: false,
            grace: Duration::ZERO,
            restart: RestartPolicy::default(),
            metrics: Arc::default(),
            retain_finished: crate::store::gc::DEFAULT_RETENTION,
            cleanup_every: crate::store::gc::DEFAULT_CLEANUP_EVERY,
            isolation: Isolation::Shared,
            git: None,
        }
    }
}

impl RunSettings {
    /// The guard TTL: as set, else the lease TTL within 1–15 s, so a crashed
    /// process's agent names are free again no later than its leases.
    pub fn guard_ttl(&self) -> Duration {
        self.guard_ttl.unwrap_or_else(|| {
            self.lease_ttl
                .clamp(Duration::from_secs(1), Duration::from_secs(15))
        })
    }

    /// Where each goal's work happens, with relative paths taken from the
    /// current directory.
    pub fn workspaces(&self) -> Workspaces {
        Workspaces::from_current_dir(&self.workspace, self.artifacts_dir.as_deref())
    }

    /// What every agent of this process is given.
    pub fn agent(&self) -> AgentSettings {
        AgentSettings {
            lease_ttl: self.lease_ttl,
            llm_timeout: self.llm_timeout,
            workspaces: self.workspaces(),
            guard_ttl: self.guard_ttl(),
            llm_select: self.llm_select,
            llm_summarize: self.llm_summarize,
            metrics: self.metrics.clone(),
            max_review_cycles: self.max_review_cycles,
            isolation: self.isolation,
            git: self.git.clone(),
            slot_before_claim: self.slot_before_claim,
            ..AgentSettings::default()
        }
    }

    /// The goals of `project` whose attempts run in worktrees.
    pub fn worktree_goals(&self, project: &Project) -> Vec<String> {
        let mut goals: Vec<String> = project
            .agents
            .iter()
            .filter(|a| a.isolation.unwrap_or(self.isolation) == Isolation::Worktree)
            .map(|a| a.goal.clone())
            .collect();
        goals.sort();
        goals.dedup();
        goals
    }

    /// What the planner is given.
    pub fn planner(&self) -> PlannerSettings {
        PlannerSettings {
            llm_timeout: self.llm_timeout,
            max_attempts: self.max_attempts,
            replan: self.replan,
            ranking: self.ranking,
            workspaces: self.workspaces(),
            ..PlannerSettings::default()
        }
    }
}

/// Everything the Supervisor needs.
#[derive(Clone)]
pub struct SupervisorConfig {
    /// The loaded instructions.
    pub project: Project,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The LLM provider.
    pub provider: Arc<dyn LlmProvider>,
    /// The run's settings.
    pub settings: RunSettings,
}

impl SupervisorConfig {
    /// A configuration for `project` on `store` through `provider`.
    pub fn new(
        project: Project,
        store: Arc<dyn Store>,
        provider: Arc<dyn LlmProvider>,
        settings: RunSettings,
    ) -> Self {
        Self {
            project,
            store,
            provider,
            settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_ttl_follows_the_lease_within_one_to_fifteen_seconds() {
        let with_lease = |ms| RunSettings {
            lease_ttl: Duration::from_millis(ms),
            ..RunSettings::default()
        };
        assert_eq!(with_lease(60_000).guard_ttl(), Duration::from_secs(15));
        assert_eq!(with_lease(5_000).guard_ttl(), Duration::from_secs(5));
        assert_eq!(with_lease(300).guard_ttl(), Duration::from_secs(1));
        let set = RunSettings {
            guard_ttl: Some(Duration::from_secs(3)),
            ..with_lease(300)
        };
        assert_eq!(set.agent().guard_ttl, Duration::from_secs(3));
    }

    #[test]
    fn agent_and_planner_settings_carry_the_run_settings() {
        let settings = RunSettings {
            lease_ttl: Duration::from_secs(7),
            llm_timeout: Duration::from_secs(9),
            artifacts_dir: Some(PathBuf::from("/out")),
            llm_select: true,
            llm_summarize: true,
            max_attempts: 4,
            max_review_cycles: 5,
            replan: true,
            ..RunSettings::default()
        };
        let agent = settings.agent();
        assert_eq!(agent.lease_ttl, Duration::from_secs(7));
        assert_eq!(agent.llm_timeout, Duration::from_secs(9));
        assert_eq!(
            agent.workspaces.for_goal("g").artifacts,
            PathBuf::from("/out/g")
        );
        assert!(agent.llm_select && agent.llm_summarize);
        assert_eq!(agent.max_review_cycles, 5);
        let planner = settings.planner();
        assert_eq!(planner.llm_timeout, Duration::from_secs(9));
        assert_eq!(planner.max_attempts, 4);
        assert!(planner.replan);
        assert_eq!(planner.workspaces, agent.workspaces);
    }
}
