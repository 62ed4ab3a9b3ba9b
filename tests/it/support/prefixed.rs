//! A store that gives one test its own goals and agents on a store it shares with
//! other tests (the shared Redis Cluster, where a test cannot have a database of
//! its own): every goal id and agent name is prefixed on the way in and the prefix
//! removed on the way out, and lists and events show only the test's own.
//!
//! It only renames: every call goes to the real store, and the names that reach
//! Redis (`goal:{c7-g}`…) land in other slots than another test's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use porki::domain::{Dag, MergeConflict, TaskState, TaskStatus, TeamLimits, ValidatedDag};
use porki::store::prelude::*;
use porki::store::{
    Admission, AgentDetails, AgentField, AgentRecord, BudgetAsk, CallCost, ClaimOutcome,
    ClaimScope, CompleteOutcome, ConflictOutcome, FailOutcome, GoalBranch, GoalSpending,
    GoalStatus, Lease, MergeLock, MergeLockOutcome, ReapOutcome, Recovery, Rejected, ReviewOutcome,
    ReviewVerdict, SlotAsk, StoreError, StoreEvent, Sweep, TaskResult, WriteDagOptions,
    WriteDagOutcome,
};
use tokio::sync::broadcast;

/// `inner` with this test's names.
pub struct Prefixed {
    inner: Arc<dyn Store>,
    prefix: String,
    events: broadcast::Sender<StoreEvent>,
}

impl Prefixed {
    /// A prefix no other test of this process uses.
    pub fn fresh_prefix() -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!("c{}-", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// A view of `inner` with a prefix no other `Prefixed` of this process uses.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Self::with_prefix(inner, Self::fresh_prefix())
    }

    /// A view of `inner` with `prefix` (shared by the "processes" of one test).
    pub fn with_prefix(inner: Arc<dyn Store>, prefix: String) -> Arc<Self> {
        let (events, _) = broadcast::channel(porki::store::EVENT_CHANNEL_CAPACITY);
        let store = Arc::new(Self {
            inner,
            prefix,
            events,
        });
        // Forward the test's own events (and resyncs), renamed.
        let mut feed = store.inner.events();
        let (sender, prefix) = (store.events.clone(), store.prefix.clone());
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(mut event) => {
                        if let Some(goal) = event.goal.strip_prefix(&prefix) {
                            event.goal = goal.to_string();
                        } else if !event.goal.is_empty()
                            && event.kind != porki::store::EventKind::Resync
                        {
                            continue;
                        }
                        let _ = sender.send(event);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        store
    }

    /// The name a goal or agent of this test has in the real store.
    pub fn real(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn strip(&self, name: &str) -> String {
        name.strip_prefix(&self.prefix).unwrap_or(name).to_string()
    }

    fn lease_in(&self, lease: &Lease) -> Lease {
        Lease {
            goal: self.real(&lease.goal),
            ..lease.clone()
        }
    }

    fn lease_out(&self, lease: Lease) -> Lease {
        Lease {
            goal: self.strip(&lease.goal),
            ..lease
        }
    }

    fn claim_out(&self, outcome: ClaimOutcome) -> ClaimOutcome {
        match outcome {
            ClaimOutcome::Claimed(lease) => ClaimOutcome::Claimed(self.lease_out(lease)),
            empty => empty,
        }
    }

    fn task_out(&self, task: TaskState) -> TaskState {
        TaskState {
            goal: self.strip(&task.goal),
            ..task
        }
    }

    /// An error as the test would see it from a store of its own.
    fn err(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::UnknownGoal { goal } => StoreError::UnknownGoal {
                goal: self.strip(&goal),
            },
            StoreError::UnknownTask { goal, task } => StoreError::UnknownTask {
                goal: self.strip(&goal),
                task,
            },
            StoreError::PlanConflict { goal, existing } => StoreError::PlanConflict {
                goal: self.strip(&goal),
                existing,
            },
            StoreError::LeaseLost { goal, task, fence } => StoreError::LeaseLost {
                goal: self.strip(&goal),
                task,
                fence,
            },
            StoreError::WrongState {
                goal,
                task,
                status,
                action,
                needed,
            } => StoreError::WrongState {
                goal: self.strip(&goal),
                task,
                status,
                action,
                needed,
            },
            StoreError::Superseded { goal, task, by } => StoreError::Superseded {
                goal: self.strip(&goal),
                task,
                by,
            },
            StoreError::NotAReview { goal, task, kind } => StoreError::NotAReview {
                goal: self.strip(&goal),
                task,
                kind,
            },
            StoreError::KeptChanging { goal, rounds } => StoreError::KeptChanging {
                goal: self.strip(&goal),
                rounds,
            },
            other => other,
        }
    }
}

#[async_trait]
impl TaskStore for Prefixed {
    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        scope: ClaimScope<'_>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> Result<ClaimOutcome, StoreError> {
        self.inner
            .claim_preferred(&self.real(goal), agent, scope, ttl, preferred)
            .await
            .map(|o| self.claim_out(o))
            .map_err(|e| self.err(e))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let lease = self.lease_in(lease);
        self.inner.renew(&lease, ttl).await.map_err(|e| self.err(e))
    }

    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .complete(&lease, result)
            .await
            .map_err(|e| self.err(e))
    }

    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        scope: ClaimScope<'_>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .complete_and_claim(&lease, result, scope, ttl)
            .await
            .map(|(done, next)| (done, self.claim_out(next)))
            .map_err(|e| self.err(e))
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
        recovery: Recovery<'_>,
    ) -> Result<FailOutcome, StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .fail(&lease, error, retryable, backoff, recovery)
            .await
            .map_err(|e| self.err(e))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = self.lease_in(lease);
        self.inner.release(&lease).await.map_err(|e| self.err(e))
    }

    async fn back_off(
        &self,
        lease: &Lease,
        wait: Duration,
        reason: &str,
    ) -> Result<(), StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .back_off(&lease, wait, reason)
            .await
            .map_err(|e| self.err(e))
    }

    async fn held_by(&self, goal: &str, agent: &str) -> Result<Option<Lease>, StoreError> {
        self.inner
            .held_by(&self.real(goal), agent)
            .await
            .map(|found| {
                found.map(|mut lease| {
                    lease.goal = goal.to_string();
                    lease
                })
            })
            .map_err(|e| self.err(e))
    }

    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError> {
        self.inner
            .reap(&self.real(goal))
            .await
            .map_err(|e| self.err(e))
    }

    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        self.inner
            .task(&self.real(goal), task)
            .await
            .map(|t| t.map(|t| self.task_out(t)))
            .map_err(|e| self.err(e))
    }

    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError> {
        self.inner
            .tasks(&self.real(goal))
            .await
            .map(|ts| ts.into_iter().map(|t| self.task_out(t)).collect())
            .map_err(|e| self.err(e))
    }

    async fn best_ready(
        &self,
        goal: &str,
        scope: ClaimScope<'_>,
    ) -> Result<Option<u64>, StoreError> {
        self.inner
            .best_ready(&self.real(goal), scope)
            .await
            .map_err(|e| self.err(e))
    }
}

#[async_trait]
impl ControlStore for Prefixed {
    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError> {
        self.inner
            .drop_task(&self.real(goal), task, reason)
            .await
            .map_err(|e| self.err(e))
    }

    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError> {
        self.inner
            .retry_task(&self.real(goal), task)
            .await
            .map_err(|e| self.err(e))
    }

    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError> {
        self.inner
            .elevate(&self.real(goal), task, priority)
            .await
            .map_err(|e| self.err(e))
    }
}

#[async_trait]
impl TeamStore for Prefixed {
    async fn settle_review(
        &self,
        lease: &Lease,
        result: &TaskResult,
        verdict: &ReviewVerdict,
        limits: &TeamLimits,
    ) -> Result<ReviewOutcome, StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .settle_review(&lease, result, verdict, limits)
            .await
            .map_err(|e| self.err(e))
    }

    async fn approve(&self, goal: &str, task: &str) -> Result<CompleteOutcome, StoreError> {
        self.inner
            .approve(&self.real(goal), task)
            .await
            .map_err(|e| self.err(e))
    }

    async fn reject(&self, goal: &str, task: &str, reason: &str) -> Result<Rejected, StoreError> {
        self.inner
            .reject(&self.real(goal), task, reason)
            .await
            .map_err(|e| self.err(e))
    }

    async fn reassign(&self, goal: &str, task: &str, role: Option<&str>) -> Result<(), StoreError> {
        self.inner
            .reassign(&self.real(goal), task, role)
            .await
            .map_err(|e| self.err(e))
    }
}

#[async_trait]
impl GoalStore for Prefixed {
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError> {
        let renamed = Dag {
            goal_id: self.real(dag.goal_id()),
            ..dag.dag().clone()
        }
        .validate_with_cap(usize::MAX)
        .expect("a valid plan stays valid under a prefix");
        self.inner
            .write_dag(&renamed, options)
            .await
            .map_err(|e| self.err(e))
    }

    async fn rerank(
        &self,
        goal: &str,
        fingerprint: &str,
        typical_ms: u64,
        ranks: &std::collections::BTreeMap<String, porki::domain::rank::StoredRank>,
    ) -> Result<usize, StoreError> {
        self.inner
            .rerank(&self.real(goal), fingerprint, typical_ms, ranks)
            .await
            .map_err(|e| self.err(e))
    }

    async fn reserve_budget(
        &self,
        goal: &str,
        reservation: &str,
        ask: &BudgetAsk,
    ) -> Result<Admission, StoreError> {
        self.inner
            .reserve_budget(&self.real(goal), reservation, ask)
            .await
            .map_err(|e| self.err(e))
    }

    async fn settle_budget(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost: CallCost,
    ) -> Result<u64, StoreError> {
        self.inner
            .settle_budget(&self.real(goal), reservation, tokens, cost)
            .await
            .map_err(|e| self.err(e))
    }

    async fn goal_spending(&self, goal: &str) -> Result<GoalSpending, StoreError> {
        self.inner
            .goal_spending(&self.real(goal))
            .await
            .map_err(|e| self.err(e))
    }

    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError> {
        self.inner
            .fail_unplanned_goal(&self.real(goal), reason)
            .await
            .map_err(|e| self.err(e))
    }

    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError> {
        self.inner
            .goal_status(&self.real(goal))
            .await
            .map(|s| {
                s.map(|s| GoalStatus {
                    goal: self.strip(&s.goal),
                    ..s
                })
            })
            .map_err(|e| self.err(e))
    }

    async fn goals(&self) -> Result<Vec<String>, StoreError> {
        let goals = self.inner.goals().await.map_err(|e| self.err(e))?;
        Ok(goals
            .iter()
            .filter(|g| g.starts_with(&self.prefix))
            .map(|g| self.strip(g))
            .collect())
    }

    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError> {
        self.inner
            .dag(&self.real(goal))
            .await
            .map(|d| {
                d.map(|d| Dag {
                    goal_id: self.strip(&d.goal_id),
                    ..d
                })
            })
            .map_err(|e| self.err(e))
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}

#[async_trait]
impl MergeStore for Prefixed {
    async fn set_goal_branch(
        &self,
        goal: &str,
        branch: &GoalBranch,
    ) -> Result<GoalBranch, StoreError> {
        self.inner
            .set_goal_branch(&self.real(goal), branch)
            .await
            .map_err(|e| self.err(e))
    }

    async fn acquire_merge_lock(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<MergeLockOutcome, StoreError> {
        let lease = self.lease_in(lease);
        match self.inner.acquire_merge_lock(&lease, ttl).await {
            Ok(MergeLockOutcome::Acquired(lock)) => Ok(MergeLockOutcome::Acquired(MergeLock {
                goal: self.strip(&lock.goal),
                ..lock
            })),
            other => other.map_err(|e| self.err(e)),
        }
    }

    async fn renew_merge_lock(&self, lock: &MergeLock, ttl: Duration) -> Result<bool, StoreError> {
        let lock = MergeLock {
            goal: self.real(&lock.goal),
            ..lock.clone()
        };
        self.inner
            .renew_merge_lock(&lock, ttl)
            .await
            .map_err(|e| self.err(e))
    }

    async fn release_merge_lock(&self, lock: &MergeLock) -> Result<bool, StoreError> {
        let lock = MergeLock {
            goal: self.real(&lock.goal),
            ..lock.clone()
        };
        self.inner
            .release_merge_lock(&lock)
            .await
            .map_err(|e| self.err(e))
    }

    async fn merge_conflict(
        &self,
        lease: &Lease,
        result: &TaskResult,
        conflict: &MergeConflict,
    ) -> Result<ConflictOutcome, StoreError> {
        let lease = self.lease_in(lease);
        self.inner
            .merge_conflict(&lease, result, conflict)
            .await
            .map_err(|e| self.err(e))
    }
}

#[async_trait]
impl GcStore for Prefixed {
    async fn sweep_goal(
        &self,
        goal: &str,
        retain: Duration,
        dry_run: bool,
    ) -> Result<Sweep, StoreError> {
        self.inner
            .sweep_goal(&self.real(goal), retain, dry_run)
            .await
            .map_err(|e| self.err(e))
    }

    async fn agent_names(&self) -> Result<Vec<String>, StoreError> {
        let names = self.inner.agent_names().await?;
        Ok(names
            .into_iter()
            .filter(|name| name.starts_with(&self.prefix))
            .map(|name| self.strip(&name))
            .collect())
    }

    async fn sweep_agent(
        &self,
        name: &str,
        retain: Duration,
        dry_run: bool,
        keep_cursor: bool,
    ) -> Result<Sweep, StoreError> {
        self.inner
            .sweep_agent(&self.real(name), retain, dry_run, keep_cursor)
            .await
    }
}

#[async_trait]
impl GateStore for Prefixed {
    async fn gate_acquire(&self, token: &str, ask: SlotAsk) -> Result<bool, StoreError> {
        self.inner.gate_acquire(token, ask).await
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.gate_renew(token, ttl).await
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        self.inner.gate_release(token).await
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        self.inner.gate_in_flight().await
    }
}

#[async_trait]
impl AgentStore for Prefixed {
    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        let record = AgentRecord {
            name: self.real(&record.name),
            goal: self.real(&record.goal),
            ..record.clone()
        };
        self.inner.register_agent(&record).await
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let agents = self.inner.agents().await?;
        Ok(agents
            .into_iter()
            .filter(|a| a.name.starts_with(&self.prefix))
            .map(|a| AgentRecord {
                name: self.strip(&a.name),
                goal: self.strip(&a.goal),
                ..a
            })
            .collect())
    }

    async fn agent_details(&self, errors: usize) -> Result<Vec<AgentDetails>, StoreError> {
        let agents = self.inner.agent_details(errors).await?;
        Ok(agents
            .into_iter()
            .filter(|a| a.record.name.starts_with(&self.prefix))
            .map(|a| AgentDetails {
                record: AgentRecord {
                    name: self.strip(&a.record.name),
                    goal: self.strip(&a.record.goal),
                    ..a.record
                },
                ..a
            })
            .collect())
    }

    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError> {
        self.inner.agent_value(&self.real(name), field).await
    }

    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner
            .set_agent_value(&self.real(name), field, value)
            .await
    }

    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.inner
            .swap_agent_value(&self.real(name), field, expected, value)
            .await
    }

    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError> {
        self.inner.push_agent_error(&self.real(name), message).await
    }

    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError> {
        self.inner.agent_errors(&self.real(name)).await
    }

    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.agent_alive(&self.real(name)).await
    }

    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner
            .acquire_agent_guard(&self.real(name), token, ttl)
            .await
    }

    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner
            .renew_agent_guard(&self.real(name), token, ttl)
            .await
    }

    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError> {
        self.inner
            .release_agent_guard(&self.real(name), token)
            .await
    }
}
