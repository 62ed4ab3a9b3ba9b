//! The embedded backend (`memory://`): the Redis semantics in one process, nothing persisted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{
    AgentField, AgentRecord, ClaimOutcome, CompleteOutcome, EventKind, FailOutcome, GoalState,
    GoalStatus, Lease, ReapOutcome, Store, StoreError, StoreEvent, TaskResult, WriteDagOptions,
    WriteDagOutcome,
};
use crate::domain::{Dag, Edge, TaskState, TaskStatus, ValidatedDag, check_id};

/// The in-process store: one mutex over all state, so every method is atomic.
pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<StoreEvent>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(super::EVENT_CHANNEL_CAPACITY).0,
        }
    }
}

#[derive(Default)]
struct State {
    goals: BTreeMap<String, GoalData>,
    agents: BTreeMap<String, AgentRecord>,
    heartbeats: HashMap<String, Instant>,
    guards: HashMap<String, (String, Instant)>,
    /// Goals without a plan yet: spending tokens on planning (draft), or failed to plan.
    unplanned: BTreeMap<String, GoalStatus>,
    /// Per-agent values.
    agent_values: HashMap<(String, AgentField), String>,
    /// Per-agent problems, newest first.
    agent_errors: HashMap<String, std::collections::VecDeque<String>>,
    /// LLM call slots: token → expiry.
    gate: HashMap<String, Instant>,
}

struct GoalData {
    status: GoalStatus,
    dag: Dag,
    tasks: BTreeMap<String, TaskEntry>,
    dependents: HashMap<String, Vec<String>>,
    /// READY index per role ("" for roleless): (−priority, id), smallest first.
    ready: HashMap<String, BTreeSet<(i64, String)>>,
    /// Tasks backing off before a retry: (due, id).
    delayed: BTreeSet<(Instant, String)>,
}

struct TaskEntry {
    state: TaskState,
    /// Lease token and when Redis would expire it.
    lock: Option<(String, Instant)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces a change; nobody listening is fine.
    fn emit(&self, goal: &str, kind: EventKind) {
        let _ = self.events.send(StoreEvent {
            goal: goal.to_string(),
            kind,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change
        // (mutations do not panic midway), so the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A goal that has no plan (yet): draft, nothing counted.
fn unplanned_status(goal: &str) -> GoalStatus {
    GoalStatus {
        goal: goal.to_string(),
        state: GoalState::Draft,
        title: String::new(),
        fingerprint: String::new(),
        source: String::new(),
        max_attempts: 0,
        counts: TaskStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
        total: 0,
        created_ms: now_ms(),
        finished_ms: None,
        last_error: None,
        tokens: 0,
        cost_usd: 0.0,
    }
}

/// The plan as the Redis backend reads it back: nodes by id, edges from the
/// per-task dependency lists.
fn stored_form(dag: &ValidatedDag) -> Dag {
    let mut nodes = dag.dag().nodes.clone();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut edges: Vec<Edge> = nodes
        .iter()
        .flat_map(|n| {
            dag.deps_of(&n.id).iter().map(|d| Edge {
                source: d.clone(),
                target: n.id.clone(),
            })
        })
        .collect();
    edges.sort();
    Dag {
        goal_id: dag.goal_id().to_string(),
        nodes,
        edges,
    }
}

impl MemoryStore {
    /// Announces what a completion changed for idle agents, as the Redis scripts do.
    fn emit_completion(&self, goal: &str, outcome: &CompleteOutcome) {
        if !outcome.promoted.is_empty() {
            self.emit(goal, EventKind::Ready);
        }
        if outcome.goal_complete {
            self.emit(goal, EventKind::GoalComplete);
        }
    }

    /// A task failed for good, and with it the goal.
    fn emit_failed(&self, goal: &str) {
        self.emit(goal, EventKind::Failed);
        self.emit(goal, EventKind::GoalFailed);
    }
}

impl GoalData {
    fn set_status(&mut self, id: &str, to: TaskStatus) {
        let task = &mut self.tasks.get_mut(id).expect("task exists").state;
        let from = task.status;
        task.status = to;
        task.updated_ms = now_ms();
        *self.status.counts.entry(from).or_default() -= 1;
        *self.status.counts.entry(to).or_default() += 1;
    }

    fn index_ready(&mut self, id: &str) {
        let task = &self.tasks[id].state;
        let entry = (-(task.priority as i64), id.to_string());
        let role = task.role.clone().unwrap_or_default();
        self.ready.entry(role).or_default().insert(entry);
    }

    fn unindex_ready(&mut self, id: &str) {
        let task = &self.tasks[id].state;
        let entry = (-(task.priority as i64), id.to_string());
        if let Some(index) = self.ready.get_mut(task.role.as_deref().unwrap_or("")) {
            index.remove(&entry);
        }
        self.delayed.retain(|(_, d)| d != id);
    }

    /// Checks the lease is the live one: lock token unexpired and equal, fence equal, RUNNING.
    fn holds(&self, lease: &Lease) -> bool {
        self.tasks.get(&lease.task).is_some_and(|t| {
            t.state.status == TaskStatus::Running
                && t.state.fence == lease.fence
                && t.lock.as_ref().is_some_and(|(token, expiry)| {
                    *token == lease.token && *expiry > Instant::now()
                })
        })
    }

    fn fail_for_good(&mut self, id: &str, reason: String) {
        self.set_status(id, TaskStatus::Failed);
        let task = &mut self.tasks.get_mut(id).expect("task exists");
        task.lock = None;
        task.state.last_error = Some(reason);
        task.state.finished_ms = Some(now_ms());
        task.state.lease_expires_ms = None;
        task.state.retry_at_ms = None;
        if self.status.state != GoalState::Failed {
            self.status.state = GoalState::Failed;
            self.status.finished_ms = Some(now_ms());
        }
    }

    /// Claims the best READY task for `agent` (see [`Store::claim`]).
    fn claim(
        &mut self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> ClaimOutcome {
        if self.status.state != GoalState::Active {
            return ClaimOutcome::Empty { retry_in: None };
        }
        let now = Instant::now();
        while let Some((due, id)) = self.delayed.first().cloned() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            self.task_mut(&id).state.retry_at_ms = None;
            self.index_ready(&id);
        }
        let indexes = [Some(""), role].into_iter().flatten();
        let chosen = preferred.and_then(|id| {
            let task = self.tasks.get(id)?;
            let entry = (-(task.state.priority as i64), id.to_string());
            let index = task.state.role.as_deref().unwrap_or("");
            let allowed = index.is_empty() || Some(index) == role;
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
            return ClaimOutcome::Empty { retry_in };
        };
        let index = index.to_string();
        self.ready
            .get_mut(&index)
            .expect("index exists")
            .remove(&entry);
        let id = entry.1;
        self.set_status(&id, TaskStatus::Running);
        let token = super::new_token();
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
        })
    }

    /// Completes a task whose lease was checked (see [`Store::complete`]).
    fn complete(&mut self, lease: &Lease, result: &TaskResult) -> CompleteOutcome {
        self.set_status(&lease.task, TaskStatus::Done);
        let task = self.task_mut(&lease.task);
        task.lock = None;
        task.state.progress = result.progress.clone();
        task.state.artifacts = result.artifacts.clone();
        task.state.finished_ms = Some(now_ms());
        task.state.lease_expires_ms = None;
        let mut promoted = Vec::new();
        for dependent in self.dependents[&lease.task].clone() {
            let task = self.task_mut(&dependent);
            task.state.pending_deps = task.state.pending_deps.saturating_sub(1);
            if task.state.pending_deps == 0 && task.state.status == TaskStatus::Blocked {
                self.set_status(&dependent, TaskStatus::Ready);
                self.index_ready(&dependent);
                promoted.push(dependent);
            }
        }
        promoted.sort();
        let goal_complete = self.status.count(TaskStatus::Done) == self.status.total;
        if goal_complete {
            self.status.state = GoalState::Complete;
            self.status.finished_ms = Some(now_ms());
        }
        CompleteOutcome {
            promoted,
            goal_complete,
        }
    }

    fn task_mut(&mut self, id: &str) -> &mut TaskEntry {
        self.tasks.get_mut(id).expect("task exists")
    }
}

impl State {
    fn goal_mut(&mut self, goal: &str) -> Result<&mut GoalData, StoreError> {
        self.goals
            .get_mut(goal)
            .ok_or_else(|| StoreError::UnknownGoal {
                goal: goal.to_string(),
            })
    }

    /// The goal of a held lease, or `LeaseLost` if the lease is stale.
    fn held(&mut self, lease: &Lease) -> Result<&mut GoalData, StoreError> {
        match self.goals.get_mut(&lease.goal) {
            Some(goal) if goal.holds(lease) => Ok(goal),
            _ => Err(StoreError::LeaseLost {
                goal: lease.goal.clone(),
                task: lease.task.clone(),
                fence: lease.fence,
            }),
        }
    }

    /// The goal of an existing task, or `UnknownTask`.
    fn goal_with_task(&mut self, goal: &str, task: &str) -> Result<&mut GoalData, StoreError> {
        match self.goals.get_mut(goal) {
            Some(data) if data.tasks.contains_key(task) => Ok(data),
            _ => Err(StoreError::UnknownTask {
                goal: goal.to_string(),
                task: task.to_string(),
            }),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError> {
        let mut state = self.lock();
        let goal = dag.goal_id().to_string();
        let outcome = match state.goals.get(&goal) {
            None => WriteDagOutcome::Created,
            Some(existing) if existing.status.fingerprint == dag.fingerprint() => {
                return Ok(WriteDagOutcome::Unchanged);
            }
            Some(_) if options.replace => WriteDagOutcome::Replaced,
            Some(existing) => {
                return Err(StoreError::PlanConflict {
                    goal,
                    existing: existing.status.fingerprint.clone(),
                });
            }
        };
        let now = now_ms();
        let mut data = GoalData {
            status: GoalStatus {
                goal: goal.clone(),
                state: GoalState::Active,
                title: options.title.clone(),
                fingerprint: dag.fingerprint().to_string(),
                source: options.source.clone(),
                max_attempts: options.max_attempts.max(1),
                counts: TaskStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
                total: dag.dag().nodes.len() as u64,
                created_ms: now,
                finished_ms: None,
                last_error: None,
                tokens: 0,
                cost_usd: 0.0,
            },
            dag: stored_form(dag),
            tasks: BTreeMap::new(),
            dependents: HashMap::new(),
            ready: HashMap::new(),
            delayed: BTreeSet::new(),
        };
        for node in &dag.dag().nodes {
            let pending = dag.deps_of(&node.id).len() as u32;
            let status = if pending == 0 {
                TaskStatus::Ready
            } else {
                TaskStatus::Blocked
            };
            *data.status.counts.entry(status).or_default() += 1;
            let state = TaskState {
                goal: goal.clone(),
                id: node.id.clone(),
                title: node.title.clone(),
                role: node.effective_role().map(str::to_string),
                priority: node.priority,
                status,
                owner: None,
                attempt: 0,
                fence: 0,
                lease_expires_ms: None,
                progress: String::new(),
                artifacts: Vec::new(),
                last_error: None,
                pending_deps: pending,
                retry_at_ms: None,
                created_ms: now,
                updated_ms: now,
                started_ms: None,
                finished_ms: None,
            };
            data.tasks
                .insert(node.id.clone(), TaskEntry { state, lock: None });
            data.dependents
                .insert(node.id.clone(), dag.dependents_of(&node.id).to_vec());
            if status == TaskStatus::Ready {
                data.index_ready(&node.id);
            }
        }
        // Tokens spent planning a goal before it had a plan stay on the goal.
        if let Some(prior) = state.unplanned.remove(&goal) {
            data.status.tokens = prior.tokens;
            data.status.cost_usd = prior.cost_usd;
        }
        state.goals.insert(goal.clone(), data);
        self.emit(&goal, EventKind::Ready);
        Ok(outcome)
    }

    async fn claim(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        Ok(state.goal_mut(goal)?.claim(goal, agent, role, ttl, None))
    }

    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
        task: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        Ok(state
            .goal_mut(goal)?
            .claim(goal, agent, role, ttl, Some(task)))
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
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError> {
        let mut state = self.lock();
        let data = state.held(lease)?;
        let completed = data.complete(lease, result);
        let claimed = data.claim(&lease.goal, &lease.agent, role, ttl, None);
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
        data.fail_for_good(&lease.task, error.to_string());
        drop(state);
        self.emit_failed(&lease.goal);
        Ok(FailOutcome::Failed)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.held(lease)?;
        data.set_status(&lease.task, TaskStatus::Ready);
        let task = data.task_mut(&lease.task);
        task.lock = None;
        task.state.attempt -= 1;
        task.state.lease_expires_ms = None;
        data.index_ready(&lease.task);
        drop(state);
        self.emit(&lease.goal, EventKind::Ready);
        Ok(())
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

    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        match data.tasks[task].state.status {
            TaskStatus::Done => Err(StoreError::WrongState {
                goal: goal.to_string(),
                task: task.to_string(),
                status: TaskStatus::Done,
                action: "dropping",
                needed: "not DONE",
            }),
            TaskStatus::Failed => Ok(()),
            _ => {
                data.unindex_ready(task);
                data.task_mut(task).state.fence += 1;
                data.fail_for_good(task, reason.to_string());
                drop(state);
                self.emit_failed(goal);
                Ok(())
            }
        }
    }

    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        let current = data.tasks[task].state.status;
        if current != TaskStatus::Failed {
            return Err(StoreError::WrongState {
                goal: goal.to_string(),
                task: task.to_string(),
                status: current,
                action: "retrying",
                needed: "FAILED",
            });
        }
        let to = if data.tasks[task].state.pending_deps > 0 {
            TaskStatus::Blocked
        } else {
            TaskStatus::Ready
        };
        data.set_status(task, to);
        let entry = data.task_mut(task);
        entry.state.attempt = 0;
        entry.state.finished_ms = None;
        entry.state.retry_at_ms = None;
        entry.state.owner = None;
        if to == TaskStatus::Ready {
            data.index_ready(task);
        }
        if data.status.count(TaskStatus::Failed) == 0 {
            data.status.state = GoalState::Active;
            data.status.finished_ms = None;
        }
        drop(state);
        self.emit(goal, EventKind::Ready);
        Ok(to)
    }

    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        let entry = &data.tasks[task].state;
        let old = (-(entry.priority as i64), task.to_string());
        let in_index = data
            .ready
            .get_mut(entry.role.as_deref().unwrap_or(""))
            .is_some_and(|index| index.remove(&old));
        let entry = data.task_mut(task);
        entry.state.priority = priority;
        entry.state.updated_ms = now_ms();
        if in_index {
            data.index_ready(task);
        }
        Ok(())
    }

    async fn add_usage(&self, goal: &str, tokens: u64, cost_usd: f64) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let status = match state.goals.get_mut(goal) {
            Some(data) => &mut data.status,
            None => state
                .unplanned
                .entry(goal.to_string())
                .or_insert_with(|| unplanned_status(goal)),
        };
        status.tokens += tokens;
        status.cost_usd += cost_usd;
        Ok(status.tokens)
    }

    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.goals.contains_key(goal) {
            return Ok(());
        }
        let status = state
            .unplanned
            .entry(goal.to_string())
            .or_insert_with(|| unplanned_status(goal));
        status.state = GoalState::Failed;
        status.finished_ms = Some(now_ms());
        status.last_error = Some(reason.to_string());
        drop(state);
        self.emit(goal, EventKind::GoalFailed);
        Ok(())
    }

    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError> {
        let state = self.lock();
        if let Some(failed) = state.unplanned.get(goal)
            && !state.goals.contains_key(goal)
        {
            return Ok(Some(failed.clone()));
        }
        Ok(state.goals.get(goal).map(|g| g.status.clone()))
    }

    async fn goals(&self) -> Result<Vec<String>, StoreError> {
        let state = self.lock();
        let goals: BTreeSet<&String> = state
            .goals
            .keys()
            .chain(
                state
                    .unplanned
                    .iter()
                    .filter(|(_, s)| s.state == GoalState::Failed)
                    .map(|(g, _)| g),
            )
            .collect();
        Ok(goals.into_iter().cloned().collect())
    }

    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        Ok(self
            .lock()
            .goals
            .get(goal)
            .and_then(|g| g.tasks.get(task))
            .map(|t| t.state.clone()))
    }

    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError> {
        Ok(self
            .lock()
            .goals
            .get(goal)
            .map(|g| g.tasks.values().map(|t| t.state.clone()).collect())
            .unwrap_or_default())
    }

    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError> {
        Ok(self.lock().goals.get(goal).map(|g| g.dag.clone()))
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        state.gate.retain(|_, expiry| *expiry > now);
        let granted = cap == 0 || state.gate.contains_key(token) || state.gate.len() < cap as usize;
        if granted {
            state.gate.insert(token.to_string(), now + ttl);
        }
        Ok(granted)
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.gate.get_mut(token) {
            Some(expiry) if *expiry > now => {
                *expiry = now + ttl;
                Ok(true)
            }
            _ => {
                state.gate.remove(token);
                Ok(false)
            }
        }
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        self.lock().gate.remove(token);
        Ok(())
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        let now = Instant::now();
        Ok(self.lock().gate.values().filter(|e| **e > now).count() as u64)
    }

    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        check_id("agent name", &record.name)?;
        self.lock()
            .agents
            .insert(record.name.clone(), record.clone());
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(self.lock().agents.values().cloned().collect())
    }

    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .agent_values
            .get(&(name.to_string(), field))
            .cloned())
    }

    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = (name.to_string(), field);
        match value {
            Some(value) => state.agent_values.insert(key, value.to_string()),
            None => state.agent_values.remove(&key),
        };
        Ok(())
    }

    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let key = (name.to_string(), field);
        if state.agent_values.get(&key).map(String::as_str) != expected {
            return Ok(false);
        }
        state.agent_values.insert(key, value.to_string());
        Ok(true)
    }

    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let errors = state.agent_errors.entry(name.to_string()).or_default();
        errors.push_front(message.to_string());
        errors.truncate(super::AGENT_ERRORS_KEPT);
        Ok(())
    }

    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .lock()
            .agent_errors
            .get(name)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn agent_heartbeat(&self, name: &str, ttl: Duration) -> Result<(), StoreError> {
        self.lock()
            .heartbeats
            .insert(name.to_string(), Instant::now() + ttl);
        Ok(())
    }

    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .heartbeats
            .get(name)
            .is_some_and(|expiry| *expiry > Instant::now()))
    }

    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let free = state
            .guards
            .get(name)
            .is_none_or(|(holder, expiry)| holder == token || *expiry <= now);
        if free {
            state
                .guards
                .insert(name.to_string(), (token.to_string(), now + ttl));
        }
        Ok(free)
    }

    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.guards.get_mut(name) {
            Some((holder, expiry)) if holder == token && *expiry > now => {
                *expiry = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .guards
            .get(name)
            .is_some_and(|(holder, _)| holder == token)
        {
            state.guards.remove(name);
        }
        Ok(())
    }
}
