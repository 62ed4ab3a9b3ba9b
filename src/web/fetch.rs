//! Reading what a page shows from the store (the only I/O of the pages): the
//! views here are plain data that `pages/` renders.

use crate::domain::{Dag, Node, TaskState, TaskStatus};
use crate::metrics::{Metrics, StoreSnapshot};
use crate::report::GoalReport;
use crate::store::prelude::*;
use crate::store::{AgentRecord, StoreError};

/// Most recent problems shown per agent.
const ERRORS_SHOWN: usize = 3;

/// One agent as the pages show it.
#[derive(Debug, Clone)]
pub(super) struct AgentView {
    /// The registration record (name, goal, role, process, state).
    pub record: AgentRecord,
    /// `drain` or `release` while a PAUSE is in effect.
    pub paused: Option<String>,
    /// Newest problems first.
    pub errors: Vec<String>,
    /// Tasks it holds now (RUNNING with it as owner).
    pub holding: Vec<String>,
    /// Restarts in this process, when this process runs agents.
    pub restarts: Option<u64>,
    /// Whether its single-active guard is held (it runs in some process now).
    pub alive: bool,
}

/// The front page: every goal and every agent.
#[derive(Debug, Clone)]
pub(super) struct Overview {
    /// Goals with a plan, sorted by id.
    pub goals: Vec<GoalReport>,
    /// Registered agents, by name.
    pub agents: Vec<AgentView>,
}

/// A goal's page.
#[derive(Debug, Clone)]
pub(super) struct GoalView {
    /// Summary and tasks.
    pub report: GoalReport,
    /// The plan (for the drawing and dependencies).
    pub dag: Dag,
    /// The goal's agents.
    pub agents: Vec<AgentView>,
}

/// A task's page.
#[derive(Debug, Clone)]
pub(super) struct TaskView {
    /// Goal id.
    pub goal: String,
    /// The task's state.
    pub task: TaskState,
    /// Its plan node, as the prompt shows it.
    pub node: Option<Node>,
    /// Its dependencies with their states (their results are in the prompt).
    pub deps: Vec<(String, Option<TaskState>)>,
    /// Tasks that wait for it.
    pub dependents: Vec<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    /// No such goal (it has no plan in the store).
    #[error("goal {goal:?} is not in the store ({known}): check the name on the front page")]
    UnknownGoal {
        /// The goal asked for.
        goal: String,
        /// What the store has instead.
        known: String,
    },
    /// No such task in the goal.
    #[error("goal {goal:?} has no task {task:?}: pick one from the goal's page")]
    UnknownTask {
        /// Goal id.
        goal: String,
        /// The task asked for.
        task: String,
    },
    /// The store has not answered since the server started.
    #[error(
        "the store at {0} is not reachable yet; the dashboard keeps trying (check that Redis runs, and --redis-url)"
    )]
    NotOpen(String),
    /// The store failed.
    #[error("cannot read the store: {0} (the page keeps trying; check that Redis runs)")]
    Store(#[from] StoreError),
}

/// The front page's data; with `with_edges`, each goal's plan edges too (the
/// status JSON says what tasks wait for; the front page needs no plan).
pub(super) async fn overview(
    store: &dyn Store,
    metrics: Option<&Metrics>,
    with_edges: bool,
) -> Result<Overview, FetchError> {
    let mut goals = Vec::new();
    for id in store.goals().await? {
        if let Some(status) = store.goal_status(&id).await? {
            let tasks = store.tasks(&id).await?;
            let edges = if with_edges {
                store.dag(&id).await?.map(|d| d.edges).unwrap_or_default()
            } else {
                Vec::new()
            };
            goals.push(GoalReport {
                status,
                tasks,
                edges,
            });
        }
    }
    let agents = agents(store, None, &goals, metrics).await?;
    Ok(Overview { goals, agents })
}

/// A goal page's data.
pub(super) async fn goal(
    store: &dyn Store,
    goal: &str,
    metrics: Option<&Metrics>,
) -> Result<GoalView, FetchError> {
    let (Some(status), Some(dag)) = (store.goal_status(goal).await?, store.dag(goal).await?) else {
        return Err(unknown_goal(store, goal).await);
    };
    let report = GoalReport {
        status,
        tasks: store.tasks(goal).await?,
        edges: dag.edges.clone(),
    };
    let agents = agents(store, Some(goal), std::slice::from_ref(&report), metrics).await?;
    Ok(GoalView {
        report,
        dag,
        agents,
    })
}

/// A task page's data.
pub(super) async fn task(store: &dyn Store, goal: &str, id: &str) -> Result<TaskView, FetchError> {
    let Some(dag) = store.dag(goal).await? else {
        return Err(unknown_goal(store, goal).await);
    };
    let Some(task) = store.task(goal, id).await? else {
        return Err(FetchError::UnknownTask {
            goal: goal.to_string(),
            task: id.to_string(),
        });
    };
    let mut deps = Vec::new();
    for edge in dag.edges.iter().filter(|e| e.target == id) {
        deps.push((edge.source.clone(), store.task(goal, &edge.source).await?));
    }
    deps.sort_by(|a, b| a.0.cmp(&b.0));
    let mut dependents: Vec<String> = dag
        .edges
        .iter()
        .filter(|e| e.source == id)
        .map(|e| e.target.clone())
        .collect();
    dependents.sort();
    let node = dag.nodes.into_iter().find(|n| n.id == id);
    Ok(TaskView {
        goal: goal.to_string(),
        task,
        node,
        deps,
        dependents,
    })
}

/// Registered agents (of `goal`, or all) with their pause, problems and held tasks.
async fn agents(
    store: &dyn Store,
    goal: Option<&str>,
    goals: &[GoalReport],
    metrics: Option<&Metrics>,
) -> Result<Vec<AgentView>, FetchError> {
    let mut views = Vec::new();
    for agent in store.agent_details(ERRORS_SHOWN).await? {
        let record = agent.record;
        if goal.is_some_and(|g| g != record.goal) {
            continue;
        }
        let holding = goals
            .iter()
            .filter(|g| g.status.goal == record.goal)
            .flat_map(|g| &g.tasks)
            .filter(|t| t.status == TaskStatus::Running && t.owner.as_deref() == Some(&record.name))
            .map(|t| t.id.clone())
            .collect();
        let restarts = metrics.map(|m| m.agent_restarts(&record.name));
        views.push(AgentView {
            record,
            paused: agent.paused,
            errors: agent.errors,
            holding,
            restarts,
            alive: agent.alive,
        });
    }
    Ok(views)
}

async fn unknown_goal(store: &dyn Store, goal: &str) -> FetchError {
    let known = match store.goals().await {
        Ok(goals) if goals.is_empty() => "it has no goals yet".to_string(),
        Ok(goals) => format!("it has {}", goals.join(", ")),
        Err(_) => "its goals could not be listed".to_string(),
    };
    FetchError::UnknownGoal {
        goal: goal.to_string(),
        known,
    }
}

/// What `/metrics` reads from the store; a failing store gives `up: false`.
pub(super) async fn snapshot(store: Option<&dyn Store>, now_ms: u64) -> StoreSnapshot {
    let mut snapshot = StoreSnapshot {
        now_ms,
        ..StoreSnapshot::default()
    };
    let Some(store) = store else {
        return snapshot;
    };
    let read = async {
        let mut goals = Vec::new();
        for id in store.goals().await? {
            if let Some(status) = store.goal_status(&id).await? {
                goals.push(status);
            }
        }
        let gate = store.gate_in_flight().await?;
        Ok::<_, StoreError>((goals, gate))
    };
    if let Ok((goals, gate)) = read.await {
        snapshot.up = true;
        snapshot.goals = goals;
        snapshot.gate_in_flight = Some(gate);
    }
    snapshot
}
