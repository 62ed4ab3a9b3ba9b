//! What the agent tells the LLM about a task, and the optional LLM steps around
//! executing it: picking the next task (`--llm-select`) and summarizing a result
//! for its dependents (`--llm-summarize`). Every text carried from one task into
//! another prompt is capped, so one huge answer does not grow every later prompt.

use std::collections::BTreeMap;

use crate::domain::{TaskKind, TaskState, TaskStatus, takes};
use crate::llm::answer::{SelectAnswer, TaskAnswer, parse_answer};
use crate::llm::prompt::{
    SelectContext, Subject, TaskContext, TeamContext, select_prompt, summarize_prompt,
};
use crate::llm::{LlmRequest, Phase};
use crate::llm_gate::{LlmCaller, Urgency};
use crate::store::{Lease, Store, StoreError};
use crate::workspace::GoalWorkspace;

use super::worker::Worker;

/// Most READY tasks offered to the LLM to choose from.
const MAX_SELECT_CANDIDATES: usize = 20;

/// Most DONE dependency results an agent keeps read.
const DONE_OUTPUTS_KEPT: usize = 256;

/// Longest dependency result given to a later prompt, in bytes.
pub(super) const DEPENDENCY_CAP: usize = 4 * 1024;

/// `text` cut to at most `limit` bytes (on a character boundary), saying how much
/// was left out.
pub(super) fn capped(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes; the whole result is in the task's artifacts)",
        &text[..end],
        text.len() - end
    )
}

/// What a task porki added is about: its kind, cycle and notes, and the task it
/// is about with that task's result (capped).
async fn team_context(
    store: &dyn Store,
    goal: &str,
    task: &TaskState,
) -> Result<TeamContext, StoreError> {
    let subject = match &task.of {
        Some(of) => store.task(goal, of).await?.map(|s| Subject {
            id: s.id,
            title: s.title,
            result: capped(
                if s.progress.is_empty() {
                    s.last_error.as_deref().unwrap_or("")
                } else {
                    &s.progress
                },
                DEPENDENCY_CAP,
            ),
            files: s.artifacts,
        }),
        None => None,
    };
    Ok(TeamContext {
        kind: task.kind,
        cycle: task.cycle,
        notes: task.notes.as_deref().map(|n| capped(n, DEPENDENCY_CAP)),
        subject,
        diff: None,
    })
}

impl Worker {
    /// What execute and summarize prompts say about a task: it, its dependencies'
    /// results (capped), the agent and its memory.
    pub(super) async fn task_context(&mut self, lease: &Lease) -> Result<TaskContext, StoreError> {
        let store = self.deps.store.clone();
        let known = self
            .plan
            .as_ref()
            .is_some_and(|p| p.nodes.iter().any(|n| n.id == lease.task));
        if !known {
            self.reload_plan(&lease.goal).await?;
        }
        let (mut dependency_outputs, all_done) = self.dependency_outputs(lease).await?;
        if !all_done && known {
            // A dependency of a claimed task that is not DONE: the plan changed
            // since it was read (a recovery took a failed task's place).
            self.reload_plan(&lease.goal).await?;
            dependency_outputs = self.dependency_outputs(lease).await?.0;
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
        // A task porki added needs its state (what it is about); planned work
        // does not, and the rank came with the claim (the lease).
        let team = match task.kind {
            TaskKind::Work => None,
            _ => {
                let state = store
                    .task(&lease.goal, &lease.task)
                    .await?
                    .ok_or_else(|| StoreError::unknown_task(&lease.goal, &lease.task))?;
                Some(team_context(&*store, &lease.goal, &state).await?)
            }
        };
        Ok(TaskContext {
            goal_id: lease.goal.clone(),
            agent: self.config.brief(),
            memory: self.memory.iter().cloned().collect(),
            task,
            dependency_outputs,
            artifact_dir: self.workspace(&lease.goal).artifacts_in_prompt(),
            team,
            rank_ms: lease.rank_ms,
        })
    }

    /// Reads the goal's plan again; the results kept stay if every node kept
    /// its content (the plan only grew), else they go (it was replaced).
    async fn reload_plan(&mut self, goal: &str) -> Result<(), StoreError> {
        let plan = self.deps.store.dag(goal).await?;
        let grew = match (&self.plan, &plan) {
            (Some(old), Some(new)) => old.nodes.iter().all(|n| new.nodes.contains(n)),
            _ => false,
        };
        if !grew {
            self.done_outputs.clear();
        }
        self.plan = plan;
        Ok(())
    }

    /// The results (capped) of the claimed task's dependencies in the plan as
    /// read, and whether they are all DONE (if not, that plan is out of date).
    async fn dependency_outputs(
        &mut self,
        lease: &Lease,
    ) -> Result<(BTreeMap<String, String>, bool), StoreError> {
        let deps: Vec<String> = self
            .plan
            .iter()
            .flat_map(|plan| &plan.edges)
            .filter(|e| e.target == lease.task)
            .map(|e| e.source.clone())
            .collect();
        let mut outputs = BTreeMap::new();
        let mut all_done = true;
        for dep in deps {
            // A DONE task's result does not change: read once, kept (a fan-in
            // or fan-out plan reads the same dependencies again and again).
            if let Some(output) = self.done_outputs.get(&dep) {
                outputs.insert(dep, output.clone());
                continue;
            }
            let Some(task) = self.deps.store.task(&lease.goal, &dep).await? else {
                all_done = false;
                continue;
            };
            let output = capped(&task.progress, DEPENDENCY_CAP);
            if task.status == TaskStatus::Done {
                if self.done_outputs.len() >= DONE_OUTPUTS_KEPT {
                    self.done_outputs.clear();
                }
                self.done_outputs.insert(dep.clone(), output.clone());
            } else {
                all_done = false;
            }
            outputs.insert(dep, output);
        }
        Ok((outputs, all_done))
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
        let (kind, role) = (self.config.kind, self.config.role.as_deref());
        let mut ready: Vec<_> = store
            .tasks(&goal)
            .await
            .ok()?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Ready && t.retry_at_ms.is_none())
            .filter(|t| takes(kind, role, t.role.as_deref().unwrap_or("")))
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
        // The pick unblocks the most urgent of the candidates at best.
        let urgency = Urgency::task(ready.iter().filter_map(|t| t.rank_ms).max());
        let answer = self.deps.caller.call(&goal, urgency, &request).await.ok()?;
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

/// With `--llm-summarize`, condenses what the task produced (and what its
/// dependencies did) into the note its dependents are given; `None` keeps the
/// execute note (no summary wanted, or none could be had).
pub(super) async fn summarize(
    caller: &LlmCaller,
    workspace: GoalWorkspace,
    timeout: std::time::Duration,
    mut context: TaskContext,
    executed: &TaskAnswer,
) -> Option<String> {
    let produced = format!("{}\n{}", executed.notes, executed.outputs.join("\n"));
    context.dependency_outputs.insert(
        format!("{} (this task)", context.task.id),
        capped(&produced, DEPENDENCY_CAP),
    );
    let request = LlmRequest::new(Phase::Summarize, summarize_prompt(&context), timeout)
        .in_workspace(workspace);
    let urgency = Urgency::task(context.rank_ms);
    let answer = caller.call(&context.goal_id, urgency, &request).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_capped_on_a_character_boundary_saying_how_much_is_left() {
        assert_eq!(capped("short", 10), "short");
        let text = "é".repeat(10); // 20 bytes
        let cut = capped(&text, 5);
        assert!(cut.starts_with("éé…"), "{cut}");
        assert!(cut.contains("16 more bytes"), "{cut}");
    }
}
