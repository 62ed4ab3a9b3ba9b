//! Executing one claimed task: the prompt and its context, the LLM call raced
//! against lease loss, stop and heartbeat directives, then the verdict on the
//! answer (`verdict.rs`) and its record in the store. Also the optional LLM steps around it:
//! picking the next task (`--llm-select`) and summarizing a result
//! (`--llm-summarize`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::domain::TaskStatus;
use crate::llm::answer::{SelectAnswer, TaskAnswer, parse_answer};
use crate::llm::prompt::{
    SelectContext, TaskContext, execute_prompt, select_prompt, summarize_prompt,
};
use crate::llm::{LlmRequest, LlmResponse, Phase};
use crate::llm_gate::CallError;
use crate::store::{
    AgentField, ClaimOutcome, EventKind, FailOutcome, Lease, StoreError, StoreEvent, TaskResult,
    retry_backoff,
};

use super::control::PauseMode;
use super::lease::renew_until_lost;
use super::verdict::{Verdict, judge, looks_like_a_path};
use super::worker::Worker;

/// Most READY tasks offered to the LLM to choose from.
const MAX_SELECT_CANDIDATES: usize = 20;

/// Most recent actions kept as the agent's memory.
pub(super) const MEMORY_LEN: usize = 20;

/// How executing one task ended.
enum Execution {
    /// The LLM call returned.
    Answered(Result<LlmResponse, CallError>),
    /// The lease was lost (expired and reclaimed, or revoked): the call was stopped.
    LeaseLost,
    /// The operator dropped the task (DROP-TASK): it is FAILED already.
    Dropped,
    /// Stop or pause: the task is given back.
    Released,
}

impl Worker {
    /// Runs a claimed task to its end; returns the next task when its completion
    /// claimed one in the same round trip.
    #[tracing::instrument(skip_all, fields(goal = %lease.goal, task = %lease.task, agent = %lease.agent, attempt = lease.attempt))]
    pub(super) async fn execute(
        &mut self,
        lease: Lease,
        events: &mut broadcast::Receiver<StoreEvent>,
    ) -> Option<Lease> {
        self.held.set(Some(lease.clone()));
        tracing::info!("task claimed");
        let started = std::time::Instant::now();
        self.deps.settings.metrics.task_claimed(&lease.goal);
        // Chaos testing (FAILPOINTS=agent-execute=10%panic): an agent crash mid-task.
        fail::fail_point!("agent-execute");
        let store = self.deps.store.clone();
        let request = match self.task_context(&lease).await {
            Ok(context) => LlmRequest::new(
                Phase::Execute,
                execute_prompt(&context),
                self.deps.settings.llm_timeout,
            )
            .in_workspace(self.workspace(&lease.goal)),
            Err(e) => {
                // The store is unreachable: give the task back untouched.
                tracing::warn!(error = %e, "cannot read the task's context; releasing it");
                let _ = store.release(&lease).await;
                self.held.set(None);
                return None;
            }
        };
        let execution = self.run_call(&lease, request, events).await;
        let mut next = None;
        match execution {
            Execution::Answered(answer) => {
                let verdict = judge(answer, SystemTime::now());
                let verdict = self.check_outputs(&lease, verdict).await;
                next = self.finish(&lease, verdict).await;
            }
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
        self.deps
            .settings
            .metrics
            .task_ended(&lease.goal, started.elapsed());
        // The next task (claimed with the completion) is held from here on.
        self.held.set(next.clone());
        next
    }

    /// Makes the execute call while renewing the lease, and stops it when the lease
    /// is lost, the task is dropped, or the agent is paused or stopped.
    async fn run_call(
        &mut self,
        lease: &Lease,
        request: LlmRequest,
        events: &mut broadcast::Receiver<StoreEvent>,
    ) -> Execution {
        let store = self.deps.store.clone();
        let caller = self.deps.caller.clone();
        let goal = lease.goal.clone();
        let call = async move { caller.call(&goal, &request).await };
        let renew = renew_until_lost(store.clone(), lease.clone(), self.deps.settings.lease_ttl);
        tokio::pin!(call, renew);
        let heartbeat = self.heartbeat.clone();
        let mut stop = self.stop.clone();
        let mut grace_ends: Option<tokio::time::Instant> = None;
        loop {
            let grace = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answer = &mut call => return Execution::Answered(answer),
                () = &mut renew => return Execution::LeaseLost,
                () = grace => return Execution::Released,
                requested = stop.wait_for(Option::is_some), if grace_ends.is_none() => {
                    let grace = requested.map(|g| g.unwrap_or_default()).unwrap_or_default();
                    grace_ends = Some(tokio::time::Instant::now() + grace);
                }
                _ = heartbeat.notified() => {
                    if self.apply_heartbeat(Some(lease)).await {
                        return Execution::Dropped;
                    }
                    if self.stop_directive || self.paused == Some(PauseMode::Release) {
                        return Execution::Released;
                    }
                }
                event = events.recv() => {
                    // Another process may have dropped this task: check the lease now
                    // rather than at the next renewal.
                    if let Ok(StoreEvent { kind: EventKind::Failed, goal }) = event
                        && goal == lease.goal
                        && let Err(StoreError::LeaseLost { .. }) = store.renew(lease, self.deps.settings.lease_ttl).await
                    {
                        return Execution::LeaseLost;
                    }
                }
            }
        }
    }

    /// Records the verdict: DONE (claiming the next task in the same round trip
    /// when the agent keeps working) or a failure. Returns the next task, if claimed.
    async fn finish(&mut self, lease: &Lease, verdict: Verdict) -> Option<Lease> {
        let store = self.deps.store.clone();
        let (retryable, error) = match verdict {
            Verdict::Done(answer) => {
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
                let completed = if self.keeps_working() {
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
                        self.deps.settings.metrics.task_completed(&lease.goal);
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
                        self.deps
                            .settings
                            .metrics
                            .stale_result_rejected(&lease.goal);
                        return None;
                    }
                    Err(e) => (true, format!("could not record completion: {e}")),
                }
            }
            Verdict::Failed { retryable, error } => (retryable, error),
            Verdict::BackOff { wait, reason } => {
                match store.back_off(lease, wait, &reason).await {
                    Ok(()) => tracing::warn!(
                        wait = ?wait,
                        %reason,
                        "rate or usage limit: the task is given back and the goal waits"
                    ),
                    Err(StoreError::LeaseLost { .. }) => {
                        tracing::warn!("rate limited, and the lease was already lost")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not record the goal's backoff; the reaper will return the task")
                    }
                }
                return None;
            }
        };
        match store
            .fail(lease, &error, retryable, retry_backoff(lease.attempt))
            .await
        {
            Ok(FailOutcome::Retrying { after }) => {
                tracing::warn!(%error, retry_in = ?after, "task failed; will retry");
                self.deps.settings.metrics.task_failed(&lease.goal, true);
            }
            Ok(FailOutcome::Failed) => {
                tracing::error!(%error, "task FAILED");
                self.deps.settings.metrics.task_failed(&lease.goal, false);
            }
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!("stale failure rejected: the lease was already lost");
                self.deps
                    .settings
                    .metrics
                    .stale_result_rejected(&lease.goal);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not record the failure; the reaper will return the task")
            }
        }
        self.remember(format!("failed {}: {error}", lease.task))
            .await;
        None
    }

    /// A DONE verdict stands only if every file the answer lists is in the workspace
    /// (for providers that write files themselves).
    async fn check_outputs(&self, lease: &Lease, verdict: Verdict) -> Verdict {
        let Verdict::Done(answer) = verdict else {
            return verdict;
        };
        if !self.deps.caller.provider.writes_files() {
            return Verdict::Done(answer);
        }
        let workspace = self.workspace(&lease.goal);
        let mut missing = Vec::new();
        for output in answer.outputs.iter().filter(|o| looks_like_a_path(o)) {
            if !tokio::fs::try_exists(workspace.resolve(output))
                .await
                .unwrap_or(false)
            {
                missing.push(output.as_str());
            }
        }
        if missing.is_empty() {
            return Verdict::Done(answer);
        }
        Verdict::Failed {
            retryable: true,
            error: format!(
                "the answer lists files that are not in the workspace {}: {}",
                workspace.dir.display(),
                missing.join(", ")
            ),
        }
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
            agent: self.config.brief(),
            memory: self.memory.iter().cloned().collect(),
            task,
            dependency_outputs,
            artifact_dir: self.workspace(&lease.goal).artifacts_in_prompt(),
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
        let request = LlmRequest::new(
            Phase::Summarize,
            summarize_prompt(&context),
            self.deps.settings.llm_timeout,
        )
        .in_workspace(self.workspace(&lease.goal));
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

    /// With `--llm-select`, asks the LLM which of the READY tasks to take; `None`
    /// (priority order) when there is no choice to make, the call fails, or the
    /// pick is not a READY task of this agent.
    pub(super) async fn pick(&mut self) -> Option<String> {
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
            .filter(|t| t.status == TaskStatus::Ready && t.retry_at_ms.is_none())
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
            agent: self.config.brief(),
            candidates,
        });
        let request = LlmRequest::new(Phase::Select, prompt, self.deps.settings.llm_timeout)
            .in_workspace(self.workspace(&goal));
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
}
