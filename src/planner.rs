//! The DagPlanner: turns a goal into a validated plan through the LLM and writes
//! it, or resumes the plan already stored for the goal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::dag::DEFAULT_NODE_CAP;
use crate::domain::{AgentKind, claim_role, shape_plan};
use crate::llm::answer::{PlanAnswer, parse_answer};
use crate::llm::limits::limit_wait;
use crate::llm::prompt::{PlanContext, plan_prompt};
use crate::llm::{FailureKind, LlmRequest, Phase};
use crate::llm_gate::{LlmCaller, Urgency};
use crate::store::prelude::*;
use crate::store::{PlanError, StoreError, WriteDagOptions, WriteDagOutcome, write_plan};
use crate::workspace::Workspaces;

/// How many unusable plans are accepted before the goal fails (the first ask and two re-asks).
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
    /// Rank the plan's tasks by the critical path ([`WriteDagOptions::ranked`]).
    pub ranking: bool,
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
            ranking: true,
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
    /// The plans were unusable, or no call can succeed; the goal is marked failed.
    #[error("goal {goal} could not be planned: {message}")]
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

/// What the plan of `goal` is made from: the instructions' context and the goal's agents.
pub fn plan_context(project: &crate::project::Project, goal: &str) -> PlanContext {
    PlanContext {
        goal_id: goal.to_string(),
        context: project.instructions.context.clone(),
        agents: project
            .agents_of(goal)
            .map(crate::project::AgentConfig::brief)
            .collect(),
        policy: project.policy(goal),
        previous_error: None,
    }
}

/// The role the goal's first reviewer claims, if the goal has a reviewer.
fn reviewer_role(agents: &[crate::llm::prompt::AgentBrief]) -> Option<String> {
    agents
        .iter()
        .find(|a| a.kind == AgentKind::Reviewer)
        .and_then(|a| claim_role(a.kind, a.role.as_deref()))
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

/// Checks that every task's role is one some agent of the goal has: a task of a
/// role nobody has could never be claimed, and the goal would never end.
fn check_roles(
    dag: &crate::domain::Dag,
    agents: &[crate::llm::prompt::AgentBrief],
) -> Result<(), String> {
    let roles: std::collections::BTreeSet<&str> =
        agents.iter().filter_map(|a| a.role.as_deref()).collect();
    let unserved: Vec<String> = dag
        .nodes
        .iter()
        .filter_map(|n| {
            let role = n.effective_role()?;
            (!roles.contains(role)).then(|| format!("{} (role {role})", n.id))
        })
        .collect();
    if unserved.is_empty() {
        return Ok(());
    }
    let known = if roles.is_empty() {
        "the goal's agents have no roles".to_string()
    } else {
        format!(
            "the goal's roles are {}",
            roles.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Err(format!(
        "tasks {} name a role no agent of the goal has ({known}): use one of those roles, or no role so any agent may take the task",
        unserved.join(", ")
    ))
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
    // The stored plan this one replaces (`--replan`), as read now: the write
    // replaces it only if it is still that one when the new plan is ready.
    let mut expected = None;
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
        expected = Some(status.fingerprint);
    }
    let replace = expected.is_some();
    let options = WriteDagOptions {
        title: goal.clone(),
        max_attempts: settings.max_attempts,
        expected,
        source,
        ranked: settings.ranking,
    };
    let reviewer = reviewer_role(&context.agents);
    let mut problem = String::new();
    let mut attempt = 0;
    // Passing failures in a row: the wait after each doubles, as a task's retry does.
    let mut passing = 0;
    while attempt < PLAN_ATTEMPTS {
        let request = LlmRequest::new(Phase::Plan, plan_prompt(&context), settings.llm_timeout)
            .in_workspace(settings.workspaces.for_goal(&goal));
        let answer = match caller.call(&goal, Urgency::Plan, &request).await {
            Ok(response) => response.text,
            Err(e) => match e.kind() {
                FailureKind::Fatal => {
                    problem = e.to_string();
                    break;
                }
                // Passing faults and limits do not make the plan worse: wait and ask
                // again without spending one of the goal's plan attempts.
                FailureKind::RateLimited { reset } => {
                    let wait = limit_wait(reset, SystemTime::now());
                    tracing::warn!(error = %e, ?wait, "plan call hit a rate or usage limit; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                FailureKind::Transient => {
                    passing += 1;
                    let backoff = crate::store::retry_backoff(passing);
                    tracing::warn!(error = %e, retry_in = ?backoff, "plan call failed; asking again");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                // The call itself failed (an error answer, a denied tool): that
                // counts like an unusable plan.
                FailureKind::Task => {
                    attempt += 1;
                    problem = e.to_string();
                    tracing::warn!(attempt, error = %problem, "plan call failed");
                    continue;
                }
            },
        };
        attempt += 1;
        let dag = match parse_answer::<PlanAnswer>(&answer)
            .map_err(|e| format!("the answer is not a plan: {e}"))
            .map(|plan| plan.into_dag(&goal))
            .and_then(|dag| check_roles(&dag, &context.agents).map(|()| dag))
            .and_then(|dag| shape_plan(dag, context.policy, reviewer.as_deref()))
        {
            Ok(dag) => dag,
            Err(e) => {
                problem = e;
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
                // Another process planned the goal (or replaced the plan this one
                // was to replace) meanwhile from its own LLM answer: its plan, and
                // whatever progress was made on it, stands.
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::llm::{LlmError, LlmProvider, LlmResponse, Usage};
    use crate::llm_gate::LlmGate;
    use crate::store::{GoalState, MemoryStore};

    /// Answers plan calls from a queue.
    struct Queue(Mutex<VecDeque<Result<String, LlmError>>>);

    #[async_trait]
    impl LlmProvider for Queue {
        fn name(&self) -> &str {
            "queue"
        }

        async fn call(&self, _: &LlmRequest) -> Result<LlmResponse, LlmError> {
            let next = self.0.lock().unwrap().pop_front().expect("a queued answer");
            next.map(|text| LlmResponse {
                text,
                usage: Usage::default(),
            })
        }
    }

    const PLAN: &str = r#"{"goal_id":"g","nodes":[{"id":"t1","title":"one"}],"edges":[]}"#;

    fn context() -> PlanContext {
        PlanContext {
            goal_id: "g".into(),
            context: String::new(),
            agents: Vec::new(),
            policy: Default::default(),
            previous_error: None,
        }
    }

    /// Plans goal `g` with answers from `answers`; returns the outcome, the store
    /// and how many answers were left unused.
    async fn plan_with(
        answers: Vec<Result<String, LlmError>>,
    ) -> (Result<PlanOutcome, PlannerError>, Arc<MemoryStore>, usize) {
        plan_in(context(), answers).await
    }

    /// As [`plan_with`], from `context`.
    async fn plan_in(
        context: PlanContext,
        answers: Vec<Result<String, LlmError>>,
    ) -> (Result<PlanOutcome, PlannerError>, Arc<MemoryStore>, usize) {
        let store = Arc::new(MemoryStore::new());
        let provider = Arc::new(Queue(Mutex::new(answers.into())));
        let caller = LlmCaller {
            gate: LlmGate::spawn(store.clone(), 0, Duration::from_secs(1)),
            provider: provider.clone(),
            store: store.clone(),
            goal_token_budget: None,
            goal_budget_usd: None,
            metrics: Default::default(),
            usage: crate::usage::UsageTally::start(store.clone()),
        };
        let settings = PlannerSettings {
            workspaces: crate::workspace::Workspaces::new(
                std::path::Path::new("{goal}"),
                None,
                &std::env::temp_dir().join(format!("porki-planner-{}", std::process::id())),
            ),
            ..PlannerSettings::default()
        };
        let outcome = plan_goal(&*store, &caller, &settings, context).await;
        let left = provider.0.lock().unwrap().len();
        (outcome, store, left)
    }

    fn unavailable() -> Result<String, LlmError> {
        Err(LlmError::Unavailable {
            provider: "queue".into(),
            message: "502".into(),
        })
    }

    #[actix_rt::test]
    async fn passing_failures_are_waited_out_without_spending_plan_attempts() {
        tokio::time::pause();
        let mut answers: Vec<_> = (0..5).map(|_| unavailable()).collect();
        answers.push(Err(LlmError::RateLimited {
            provider: "queue".into(),
            message: "429".into(),
            reset: None,
        }));
        answers.push(Ok(PLAN.into()));
        let (outcome, store, left) = plan_with(answers).await;
        assert_eq!(outcome.unwrap(), PlanOutcome::Planned);
        assert_eq!(left, 0);
        let status = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(status.state, GoalState::Active);
    }

    #[actix_rt::test]
    async fn refused_credentials_fail_the_goal_at_the_first_call() {
        let auth = Err(LlmError::Auth {
            provider: "queue".into(),
            message: "Invalid API key".into(),
            hint: "set ANTHROPIC_API_KEY".into(),
        });
        let (outcome, store, left) = plan_with(vec![auth, Ok(PLAN.into())]).await;
        assert!(matches!(outcome, Err(PlannerError::GaveUp { .. })));
        assert_eq!(left, 1, "no second call");
        let status = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(status.state, GoalState::Failed);
        assert!(status.last_error.unwrap().contains("ANTHROPIC_API_KEY"));
    }

    #[actix_rt::test]
    async fn a_plan_naming_a_role_no_agent_has_is_asked_again_with_the_reason() {
        let with_role =
            r#"{"goal_id":"g","nodes":[{"id":"t1","title":"one","role":"qa"}],"edges":[]}"#;
        let (outcome, store, left) = plan_with(vec![
            Ok(with_role.into()),
            Ok(with_role.into()),
            Ok(with_role.into()),
        ])
        .await;
        assert!(matches!(outcome, Err(PlannerError::GaveUp { .. })));
        assert_eq!(left, 0);
        let status = store.goal_status("g").await.unwrap().unwrap();
        let error = status.last_error.unwrap();
        assert!(
            error.contains("t1 (role qa)") && error.contains("no role"),
            "{error}"
        );
    }

    #[actix_rt::test]
    async fn a_planned_id_too_long_for_its_review_is_refused_by_the_id_the_llm_wrote() {
        // Regression: a 64-character id got a 71-character review, and the plan
        // was refused for an id the LLM never wrote.
        let long = "t".repeat(64);
        let answer = format!(r#"{{"goal_id":"g","nodes":[{{"id":"{long}","title":"one"}}]}}"#);
        let mut context = context();
        context.agents = vec![crate::llm::prompt::AgentBrief {
            name: "checker".into(),
            role: Some("qa".into()),
            kind: AgentKind::Reviewer,
            instructions: String::new(),
        }];
        let answers = (0..PLAN_ATTEMPTS).map(|_| Ok(answer.clone())).collect();
        let (outcome, store, _) = plan_in(context, answers).await;
        assert!(matches!(outcome, Err(PlannerError::GaveUp { .. })));
        let error = store.goal_status("g").await.unwrap().unwrap().last_error;
        let error = error.unwrap();
        assert!(error.contains(&format!("task id {long:?}")), "{error}");
        assert!(error.contains("use 1 to 49 characters"), "{error}");
        assert!(!error.contains(&format!("{long}.review")), "{error}");
    }

    #[test]
    fn roles_are_checked_against_the_goals_agents() {
        use crate::domain::{Dag, Node};
        use crate::llm::prompt::AgentBrief;
        let agent = |role: Option<&str>| AgentBrief {
            name: "a".into(),
            role: role.map(str::to_string),
            kind: crate::domain::AgentKind::from_role(role),
            instructions: String::new(),
        };
        let mut qa = Node::new("t", "t");
        qa.role = Some("qa".into());
        let dag = Dag::new("g", vec![qa, Node::new("free", "any agent")], &[]);
        assert!(check_roles(&dag, &[agent(Some("qa"))]).is_ok());
        let err = check_roles(&dag, &[agent(Some("dev")), agent(None)]).unwrap_err();
        assert!(
            err.contains("t (role qa)") && err.contains("roles are dev"),
            "{err}"
        );
        assert!(
            !err.contains("free"),
            "a task without a role is fine: {err}"
        );
    }

    #[actix_rt::test]
    async fn three_unusable_plans_fail_the_goal() {
        let bad = || Ok::<_, LlmError>("not a plan".to_string());
        let (outcome, store, left) = plan_with(vec![bad(), bad(), bad(), Ok(PLAN.into())]).await;
        assert!(matches!(outcome, Err(PlannerError::GaveUp { .. })));
        assert_eq!(left, 1);
        let status = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(status.state, GoalState::Failed);
    }
}
