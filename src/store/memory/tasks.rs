//! [`TaskStore`] in memory: the lease rules of the task scripts, on [`GoalData`].

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{GoalData, MemoryStore, NewTask, now_ms, ready_slot};
use crate::domain::merge::capped_diffstat;
use crate::domain::{TaskKind, TaskState, TaskStatus, recovery_id};
use crate::store::tasks::rank_of_ready_score;
use crate::store::{
    ClaimOutcome, ClaimScope, CompleteOutcome, EventKind, FailOutcome, GoalBackoff, GoalState,
    Lease, ReapOutcome, Recovery, StoreError, TaskResult, TaskStore, new_token,
};

/// A result's commit and its capped diffstat, when it has a commit.
fn merged(result: &TaskResult) -> (Option<String>, Option<String>) {
    match result.commit.as_deref() {
        Some(commit) if !commit.is_empty() => (
            Some(commit.to_string()),
            Some(capped_diffstat(result.diffstat.as_deref().unwrap_or("")))
                .filter(|d| !d.is_empty()),
        ),
        _ => (None, None),
    }
}

impl GoalData {
    /// Checks the lease is the live one: lock token unexpired and equal, fence equal, RUNNING.
    pub(super) fn holds(&self, lease: &Lease) -> bool {
        self.tasks.get(&lease.task).is_some_and(|t| {
            t.state.status == TaskStatus::Running
                && t.state.fence == lease.fence
                && t.lock.as_ref().is_some_and(|(token, expiry)| {
                    *token == lease.token && *expiry > Instant::now()
                })
        })
    }

    /// Claims the best READY task for `agent` (see [`TaskStore::claim`]).
    fn claim(
        &mut self,
        goal: &str,
        agent: &str,
        scope: ClaimScope<'_>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> ClaimOutcome {
        let role = scope.role;
        if self.status.state != GoalState::Active {
            return ClaimOutcome::Empty {
                retry_in: None,
                goal_state: self.status.state,
            };
        }
        let now = Instant::now();
        if let Some(until) = self.backoff_until.filter(|until| *until > now) {
            return ClaimOutcome::Empty {
                retry_in: Some(until - now),
                goal_state: GoalState::Active,
            };
        }
        while let Some((due, id)) = self.delayed.first().cloned() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            self.task_mut(&id).state.retry_at_ms = None;
            self.index_ready(&id);
        }
        let roleless = Some("").filter(|_| scope.roleless);
        let indexes = [roleless, role].into_iter().flatten();
        let chosen = preferred.and_then(|id| {
            let (index, entry) = ready_slot(&self.tasks.get(id)?.state);
            let allowed = (index.is_empty() && scope.roleless) || Some(index) == role;
            (allowed && self.ready.get(index)?.contains(&entry)).then_some((index, entry))
        });
        let best = chosen.or_else(|| {
            indexes
                .filter_map(|r| Some((r, self.ready.get(r)?.first()?.clone())))
                .min_by(|a, b| a.1.cmp(&b.1))
        });
        let Some((index, entry)) = best else {
            let retry_in = self
                .delayed
                .first()
                .map(|(due, _)| due.saturating_duration_since(now));
            return ClaimOutcome::Empty {
                retry_in,
                goal_state: GoalState::Active,
            };
        };
        let index = index.to_string();
        self.ready
            .get_mut(&index)
            .expect("index exists")
            .remove(&entry);
        let id = entry.1;
        self.set_status(&id, TaskStatus::Running);
        let token = new_token();
        let task = self.task_mut(&id);
        task.state.attempt += 1;
        task.state.fence += 1;
        task.state.owner = Some(agent.to_string());
        task.state.started_ms = Some(now_ms());
        task.state.lease_expires_ms = Some(now_ms() + ttl.as_millis() as u64);
        task.lock = Some((token.clone(), now + ttl));
        ClaimOutcome::Claimed(Lease {
            goal: goal.to_string(),
            task: id,
            agent: agent.to_string(),
            token,
            fence: task.state.fence,
            attempt: task.state.attempt,
            rank_ms: task.state.rank_ms,
        })
    }

    /// Gives a task whose lease was checked back to READY, attempt not counted.
    fn release(&mut self, id: &str) {
        self.set_status(id, TaskStatus::Ready);
        let task = self.task_mut(id);
        task.lock = None;
        task.state.attempt -= 1;
        task.state.lease_expires_ms = None;
        self.index_ready(id);
    }

    /// Completes a task whose lease was checked (see [`TaskStore::complete`]):
    /// DONE, or AWAITING_APPROVAL when it needs a person's approval. A merge
    /// task settles the task waiting for it (as complete_lib.lua).
    pub(super) fn complete(&mut self, lease: &Lease, result: &TaskResult) -> CompleteOutcome {
        let id = &lease.task;
        let hold = self.tasks[id].state.needs_approval;
        let (commit, diffstat) = merged(result);
        let task = self.task_mut(id);
        task.lock = None;
        task.state.progress = result.progress.clone();
        task.state.artifacts = result.artifacts.clone();
        task.state.lease_expires_ms = None;
        if commit.is_some() {
            task.state.commit = commit.clone();
            task.state.diffstat = diffstat.clone();
        }
        if hold {
            self.set_status(id, TaskStatus::AwaitingApproval);
            return CompleteOutcome {
                awaiting_approval: true,
                ..CompleteOutcome::default()
            };
        }
        let settles = self.waiting_for_merge(id);
        let mut outcome = self.finish_done(id);
        let Some(subject) = settles else {
            return outcome;
        };
        let entry = self.task_mut(&subject);
        entry.state.pending_deps = 0;
        if commit.is_some() {
            entry.state.commit = commit;
            entry.state.diffstat = diffstat;
        }
        if entry.state.needs_approval {
            self.set_status(&subject, TaskStatus::AwaitingApproval);
            return outcome;
        }
        let mut settled = self.finish_done(&subject);
        settled.promoted.append(&mut outcome.promoted);
        settled.promoted.sort();
        settled
    }

    /// Makes a task DONE and moves on its dependents whose dependencies are now
    /// all DONE (READY, or back to AWAITING_APPROVAL for a rejected task); the
    /// goal completes with its last task.
    pub(super) fn finish_done(&mut self, id: &str) -> CompleteOutcome {
        self.set_status(id, TaskStatus::Done);
        self.task_mut(id).state.finished_ms = Some(now_ms());
        let mut promoted = Vec::new();
        for dependent in self.dependents.get(id).cloned().unwrap_or_default() {
            let task = self.task_mut(&dependent);
            task.state.pending_deps = task.state.pending_deps.saturating_sub(1);
            if task.state.pending_deps > 0 || task.state.status != TaskStatus::Blocked {
                continue;
            }
            if std::mem::take(&mut task.return_to_approval) {
                self.set_status(&dependent, TaskStatus::AwaitingApproval);
            } else {
                self.set_status(&dependent, TaskStatus::Ready);
                self.index_ready(&dependent);
                promoted.push(dependent);
            }
        }
        promoted.sort();
        let goal_complete =
            self.status.count(TaskStatus::Done) + self.status.superseded == self.status.total;
        if goal_complete {
            self.status.state = GoalState::Complete;
            self.status.finished_ms = Some(now_ms());
        }
        CompleteOutcome {
            promoted,
            goal_complete,
            awaiting_approval: false,
        }
    }

    /// Fails a held task for good, or hands its work to a recovery task (see
    /// [`TaskStore::fail`]); returns the recovery's id if it did.
    fn fail_or_recover(&mut self, id: &str, error: &str, recovery: Recovery<'_>) -> Option<String> {
        let task = &self.tasks[id].state;
        let recovery_id = recovery_id(id);
        let role = match recovery {
            Recovery::Never => None,
            Recovery::SameRole => Some(task.role.clone()),
            Recovery::Role(role) => Some(Some(role.to_string())),
        };
        let recoverable = task.kind.is_work() && !self.tasks.contains_key(&recovery_id);
        let Some(role) = role.filter(|_| recoverable) else {
            // A failed recovery says what the task it recovered failed with.
            let error = match task.of.as_ref().filter(|_| task.kind == TaskKind::Recover) {
                Some(of) => format!(
                    "{error} (recovering {of}, which had failed with: {})",
                    self.tasks[of]
                        .state
                        .last_error
                        .as_deref()
                        .unwrap_or("no error recorded")
                ),
                None => error.to_string(),
            };
            self.fail_for_good(id, error);
            return None;
        };
        let spec = NewTask {
            title: format!("Recover: {}", task.title),
            kind: TaskKind::Recover,
            of: id.to_string(),
            notes: error.to_string(),
            role,
            priority: task.priority,
            cycle: 0,
            approval: task.needs_approval,
        };
        self.supersede(id, &recovery_id, error.to_string());
        self.add_task(&recovery_id, spec, id, false);
        // Whatever waited for the failed task waits for its recovery instead.
        let dependents = self.dependents.remove(id).unwrap_or_default();
        for edge in self.dag.edges.iter_mut().filter(|e| e.source == id) {
            edge.source = recovery_id.clone();
        }
        self.dag.edges.sort();
        // A review of the failed task reviews its recovery.
        for dependent in &dependents {
            let task = &mut self.task_mut(dependent).state;
            if task.kind == TaskKind::Review && task.of.as_deref() == Some(id) {
                task.of = Some(recovery_id.clone());
                if let Some(node) = self.dag.nodes.iter_mut().find(|n| n.id == *dependent) {
                    node.of = Some(recovery_id.clone());
                }
            }
        }
        self.dependents.insert(recovery_id.clone(), dependents);
        Some(recovery_id)
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        scope: ClaimScope<'_>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        Ok(state
            .goal_mut(goal)?
            .claim(goal, agent, scope, ttl, preferred))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let mut state = self.lock();
        let task = state.held(lease)?.task_mut(&lease.task);
        task.lock = Some((lease.token.clone(), Instant::now() + ttl));
        task.state.lease_expires_ms = Some(now_ms() + ttl.as_millis() as u64);
        Ok(())
    }

    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError> {
        let mut state = self.lock();
        let outcome = state.held(lease)?.complete(lease, result);
        drop(state);
        self.emit_completion(&lease.goal, &outcome);
        Ok(outcome)
    }

    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        scope: ClaimScope<'_>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError> {
        let mut state = self.lock();
        let data = state.held(lease)?;
        let completed = data.complete(lease, result);
        let claimed = data.claim(&lease.goal, &lease.agent, scope, ttl, None);
        drop(state);
        self.emit_completion(&lease.goal, &completed);
        Ok((completed, claimed))
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
        recovery: Recovery<'_>,
    ) -> Result<FailOutcome, StoreError> {
        let mut state = self.lock();
        let data = state.held(lease)?;
        let attempt = data.tasks[&lease.task].state.attempt;
        if retryable && attempt < data.status.max_attempts {
            data.set_status(&lease.task, TaskStatus::Ready);
            let task = data.task_mut(&lease.task);
            task.lock = None;
            task.state.last_error = Some(error.to_string());
            task.state.lease_expires_ms = None;
            task.state.retry_at_ms = Some(now_ms() + backoff.as_millis() as u64);
            data.delayed
                .insert((Instant::now() + backoff, lease.task.clone()));
            drop(state);
            self.emit(&lease.goal, EventKind::Retry);
            return Ok(FailOutcome::Retrying { after: backoff });
        }
        let recovered = data.fail_or_recover(&lease.task, error, recovery);
        drop(state);
        match recovered {
            Some(task) => {
                self.emit(&lease.goal, EventKind::Ready);
                Ok(FailOutcome::Recovering { task })
            }
            None => {
                self.emit_failed(&lease.goal);
                Ok(FailOutcome::Failed)
            }
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lock().held(lease)?.release(&lease.task);
        self.emit(&lease.goal, EventKind::Ready);
        Ok(())
    }

    async fn back_off(
        &self,
        lease: &Lease,
        wait: Duration,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.held(lease)?;
        data.release(&lease.task);
        // The clock of the wait is tokio's (paused in tests); the reported end is wall time.
        let until = Instant::now() + wait;
        if data.backoff_until.is_none_or(|current| current < until) {
            data.backoff_until = Some(until);
            data.status.backoff = Some(GoalBackoff {
                until_ms: now_ms() + wait.as_millis() as u64,
                reason: reason.to_string(),
            });
        }
        Ok(())
    }

    async fn held_by(&self, goal: &str, agent: &str) -> Result<Option<Lease>, StoreError> {
        let state = self.lock();
        let Some(data) = state.goals.get(goal) else {
            return Ok(None);
        };
        let now = Instant::now();
        Ok(data.tasks.values().find_map(|t| {
            let (token, expiry) = t.lock.as_ref()?;
            (t.state.status == TaskStatus::Running
                && t.state.owner.as_deref() == Some(agent)
                && *expiry > now)
                .then(|| Lease {
                    goal: goal.to_string(),
                    task: t.state.id.clone(),
                    agent: agent.to_string(),
                    token: token.clone(),
                    fence: t.state.fence,
                    attempt: t.state.attempt,
                    rank_ms: None,
                })
        }))
    }

    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError> {
        let mut state = self.lock();
        let Some(data) = state.goals.get_mut(goal) else {
            return Ok(ReapOutcome::default());
        };
        let now = Instant::now();
        let expired: Vec<String> = data
            .tasks
            .values()
            .filter(|t| {
                t.state.status == TaskStatus::Running
                    && t.lock.as_ref().is_none_or(|(_, expiry)| *expiry <= now)
            })
            .map(|t| t.state.id.clone())
            .collect();
        let mut outcome = ReapOutcome::default();
        for id in expired {
            let attempt = data.tasks[&id].state.attempt;
            if attempt >= data.status.max_attempts {
                data.fail_for_good(
                    &id,
                    format!("lease expired on attempt {attempt} (max attempts reached)"),
                );
                outcome.failed.push(id);
            } else {
                data.set_status(&id, TaskStatus::Ready);
                let task = data.task_mut(&id);
                task.lock = None;
                task.state.last_error = Some(format!("lease expired on attempt {attempt}"));
                task.state.lease_expires_ms = None;
                data.index_ready(&id);
                outcome.requeued.push(id);
            }
        }
        drop(state);
        if !outcome.requeued.is_empty() {
            self.emit(goal, EventKind::Ready);
        }
        if !outcome.failed.is_empty() {
            self.emit_failed(goal);
        }
        Ok(outcome)
    }

    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        Ok(self
            .lock()
            .goals
            .get(goal)
            .and_then(|g| g.tasks.get(task))
            .map(|t| t.state.clone()))
    }

    async fn best_ready(
        &self,
        goal: &str,
        scope: ClaimScope<'_>,
    ) -> Result<Option<u64>, StoreError> {
        let state = self.lock();
        let Some(data) = state.goals.get(goal) else {
            return Ok(None);
        };
        let roleless = Some("").filter(|_| scope.roleless);
        let role = scope.role.filter(|r| !r.is_empty());
        Ok([roleless, role]
            .into_iter()
            .flatten()
            .filter_map(|index| data.ready.get(index)?.first().map(|(score, _)| *score))
            .min()
            .map(rank_of_ready_score))
    }

    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError> {
        Ok(self
            .lock()
            .goals
            .get(goal)
            .map(|g| g.tasks.values().map(|t| t.state.clone()).collect())
            .unwrap_or_default())
    }
}
