//! The DagPlanner: turns a goal into a validated plan through the LLM and writes
//! it, or resumes the plan already stored for the goal.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::dag::DEFAULT_NODE_CAP;
use crate::llm::answer::{PlanAnswer, parse_answer};
use crate::llm::prompt::{PlanContext, plan_prompt};
use crate::llm::{LlmRequest, Phase};
use crate::llm_gate::LlmCaller;
use crate::store::prelude::*;
use crate::store::{PlanError, StoreError, WriteDagOptions, WriteDagOutcome, write_plan};
use crate::workspace::Workspaces;

/// How many times a plan is asked for before the goal fails (the first ask and two re-asks).
pub const PLAN_ATTEMPTS: usize = 3;

/// Settings of the planner.
#[derive(Debug, Clone)]
pub struct PlannerSettings {
    /// Timeout of one LLM call.
    pub llm_timeout: Duration,
    /// Attempts per task written into the goal.
    pub max_attempts: u32,
    /// Largest plan accepted.
    pub node_cap: usize,
    /// Plan again (replacing the stored plan) when the instructions changed.
    pub replan: bool,
    /// Each goal's workspace, where plan calls run.
    pub workspaces: Workspaces,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            llm_timeout: crate::llm::DEFAULT_TIMEOUT,
            max_attempts: crate::store::DEFAULT_MAX_ATTEMPTS,
            node_cap: DEFAULT_NODE_CAP,
            replan: false,
            workspaces: Workspaces::default(),
        }
    }
}

/// The planner actor.
pub struct DagPlanner {
    store: Arc<dyn Store>,
    caller: LlmCaller,
    settings: PlannerSettings,
}

impl DagPlanner {
    /// A planner asking the LLM through `caller` and writing to `store`.
    pub fn new(store: Arc<dyn Store>, caller: LlmCaller, settings: PlannerSettings) -> Self {
        Self {
            store,
            caller,
            settings,
        }
    }
}

impl Actor for DagPlanner {
    type Context = Context<Self>;
}

/// Plan a goal (or resume its stored plan).
#[derive(Message)]
#[rtype(result = "Result<PlanOutcome, PlannerError>")]
pub struct PlanGoal {
    /// What the plan is made from: goal, instructions context, agents.
    pub context: PlanContext,
}

/// What planning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanOutcome {
    /// The stored plan was made from the same instructions: resumed without an LLM call.
    Resumed,
    /// The instructions changed since the stored plan was made; it was kept (no `--replan`).
    KeptStale,
    /// A new plan was written.
    Planned,
    /// The stored plan was replaced by a new one (`--replan`).
    Replanned,
}

/// Why a goal could not be planned.
#[derive(Debug, Error)]
pub enum PlannerError {
    /// Every attempt gave an unusable plan; the goal is marked failed.
    #[error("goal {goal}: no usable plan after {PLAN_ATTEMPTS} attempts: {message}")]
    GaveUp {
        /// Goal id.
        goal: String,
        /// The last problem.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Fingerprint of what a plan is made from: the plan prompt itself.
pub fn source_fingerprint(context: &PlanContext) -> String {
    let prompt = plan_prompt(&PlanContext {
        previous_error: None,
        ..context.clone()
    });
    hex::encode(Sha256::digest(prompt.as_bytes()))
}

impl Handler<PlanGoal> for DagPlanner {
    type Result = ResponseFuture<Result<PlanOutcome, PlannerError>>;

    fn handle(&mut self, msg: PlanGoal, _: &mut Self::Context) -> Self::Result {
        let (store, caller) = (self.store.clone(), self.caller.clone());
        let settings = self.settings.clone();
        Box::pin(async move { plan_goal(&*store, &caller, &settings, msg.context).await })
    }
}

#[tracing::instrument(skip_all, fields(goal = %context.goal_id))]
async fn plan_goal(
    store: &dyn Store,
    caller: &LlmCaller,
    settings: &PlannerSettings,
    mut context: PlanContext,
) -> Result<PlanOutcome, PlannerError> {
    let goal = context.goal_id.clone();
    let source = source_fingerprint(&context);
    let mut replace = false;
    if let Some(status) = store.goal_status(&goal).await?
        && !status.fingerprint.is_empty()
    {
        if status.source == source {
            tracing::info!("goal already planned from these instructions; resuming");
            return Ok(PlanOutcome::Resumed);
        }
        if !settings.replan {
            tracing::warn!(
                "goal {goal} was planned from different instructions; resuming its stored plan \
                 (run with --replan to plan it again)"
            );
            return Ok(PlanOutcome::KeptStale);
        }
        replace = true;
    }
    let options = WriteDagOptions {
        title: goal.clone(),
        max_attempts: settings.max_attempts,
        replace,
        source,
    };
    let mut problem = String::new();
    for attempt in 1..=PLAN_ATTEMPTS {
        let request = LlmRequest::new(Phase::Plan, plan_prompt(&context), settings.llm_timeout)
            .in_workspace(settings.workspaces.for_goal(&goal));
        let answer = match caller.call(&goal, &request).await {
            Ok(response) => response.text,
            Err(e) if !e.is_retryable() => {
                problem = e.to_string();
                break;
            }
            Err(e) => {
                problem = e.to_string();
                tracing::warn!(attempt, error = %problem, "plan call failed");
                continue;
            }
        };
        let dag = match parse_answer::<PlanAnswer>(&answer) {
            Ok(plan) => plan.into_dag(&goal),
            Err(e) => {
                problem = format!("the answer is not a plan: {e}");
                tracing::warn!(attempt, error = %problem, "plan answer rejected; asking again");
                context.previous_error = Some(problem.clone());
                continue;
            }
        };
        match write_plan(store, dag, &options, settings.node_cap).await {
            Ok((outcome, dag)) => {
                let tasks = dag.dag().nodes.len();
                tracing::info!(tasks, ?outcome, "plan written");
                return Ok(match (outcome, replace) {
                    (WriteDagOutcome::Unchanged, _) => PlanOutcome::Resumed,
                    (_, true) => PlanOutcome::Replanned,
                    (_, false) => PlanOutcome::Planned,
                });
            }
            Err(PlanError::Invalid(e)) => {
                problem = e.to_string();
                tracing::warn!(attempt, error = %problem, "plan failed validation; asking again");
                context.previous_error = Some(problem.clone());
            }
            Err(PlanError::Store(StoreError::PlanConflict { .. })) => {
                // Another process planned the goal meanwhile from its own LLM answer.
                tracing::info!("another process planned this goal first; resuming its plan");
                return Ok(PlanOutcome::Resumed);
            }
            Err(PlanError::Store(e)) => return Err(e.into()),
        }
    }
    store.fail_unplanned_goal(&goal, &problem).await?;
    Err(PlannerError::GaveUp {
        goal,
        message: problem,
    })
}
