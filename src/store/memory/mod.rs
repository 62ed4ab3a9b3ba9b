//! The embedded backend (`memory://`): the Redis semantics in one process, nothing persisted.
//!
//! The state and the helpers every concern shares live here; each concern's trait
//! is implemented in its own file (`tasks.rs`, `control.rs`, `team.rs`, `goals.rs`,
//! `gate.rs`, `agents.rs`, `gc.rs`), as in the Redis backend.

mod agents;
mod control;
mod gate;
mod gc;
mod goals;
mod merge;
mod tasks;
mod team;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{
    AgentField, AgentRecord, CompleteOutcome, EVENT_CHANNEL_CAPACITY, EventKind, GoalState,
    GoalStatus, Lease, StoreError, StoreEvent,
};
use crate::domain::rank::{EstimateSource, MAX_RANK_MS, TYPICAL_TASK_MS};
use crate::domain::{Dag, Edge, Node, TaskKind, TaskState, TaskStatus, fix_id};

/// The in-process store: one mutex over all state, so every method is atomic.
pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<StoreEvent>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
        }
    }
}

#[derive(Default)]
struct State {
    goals: BTreeMap<String, GoalData>,
    agents: BTreeMap<String, AgentRecord>,
    guards: HashMap<String, (String, Instant)>,
    /// Goals without a plan yet: spending tokens on planning (draft), or failed to plan.
    unplanned: BTreeMap<String, GoalStatus>,
    /// When an LLM call of a draft last reserved or settled tokens (ms since the
    /// epoch): what gc ages a draft by.
    draft_used: HashMap<String, u64>,
    /// Per-agent values.
    agent_values: HashMap<(String, AgentField), String>,
    /// Per-agent problems, newest first.
    agent_errors: HashMap<String, VecDeque<String>>,
    /// LLM call slots and the callers waiting for one.
    gate: gate::Gate,
    /// Budget reservations of LLM calls in flight, by goal: id → (tokens, USD, expiry).
    reservations: HashMap<String, HashMap<String, (u64, f64, Instant)>>,
    /// What calls under a money budget told of their cost, by goal (outlives
    /// replans, as the goal hash's fields on Redis).
    money: HashMap<String, crate::store::GoalSpending>,
    /// When each agent's registration was last written (ms since the epoch).
    agent_changed: HashMap<String, u64>,
    /// When a sweep first found a `running` agent without a heartbeat.
    agent_dead_since: HashMap<String, u64>,
    /// Merge locks by goal.
    merge_locks: HashMap<String, merge::MergeLockEntry>,
}

struct GoalData {
    status: GoalStatus,
    dag: Dag,
    tasks: BTreeMap<String, TaskEntry>,
    dependents: HashMap<String, Vec<String>>,
    /// READY index per role ("" for roleless): (score, id), smallest first.
    ready: HashMap<String, BTreeSet<(i64, String)>>,
    /// Tasks backing off before a retry: (due, id).
    delayed: BTreeSet<(Instant, String)>,
    /// Until when the whole goal waits for a rate or usage limit.
    backoff_until: Option<Instant>,
    /// The goal's typical task, ms, once the ranker measured it.
    typical_ms: Option<u64>,
}

struct TaskEntry {
    state: TaskState,
    /// Lease token and when Redis would expire it.
    lock: Option<(String, Instant)>,
    /// Fixes added for this task so far (the next is `fix-<fixes + 1>`).
    fixes: u32,
    /// A rejected task waiting for its fix: it awaits approval again after it.
    return_to_approval: bool,
    /// Merge tasks added for this task's work so far.
    merges: u32,
    /// Merge tasks named after this (planned) task so far.
    merge_names: u32,
    /// The merge task this task waits for, while BLOCKED on one.
    merging: Option<String>,
    /// The lease (token, fence) whose conflict was recorded, and the answer it got.
    conflicted: Option<(String, u64, crate::store::ConflictOutcome)>,
}

impl TaskEntry {
    fn new(state: TaskState) -> Self {
        Self {
            state,
            lock: None,
            fixes: 0,
            return_to_approval: false,
            merges: 0,
            merge_names: 0,
            merging: None,
            conflicted: None,
        }
    }
}

/// A task added to a running plan (see [`GoalData::add_task`]).
struct NewTask {
    title: String,
    kind: TaskKind,
    of: String,
    notes: String,
    role: Option<String>,
    priority: i32,
    cycle: u32,
    approval: bool,
}

/// Wall-clock time in ms since the Unix epoch, as the scripts' `TIME`.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A task's place in the READY indexes: the index (its role, "" for none) and
/// its entry there, (score, id), as lib.lua's `ready_score`: the explicit
/// priority first, then the rank.
fn ready_slot(task: &TaskState) -> (&str, (i64, String)) {
    const PRIORITY_CAP: i64 = (1 << 21) - 1;
    let priority = i64::from(task.priority).clamp(-PRIORITY_CAP, PRIORITY_CAP);
    let rank = task.rank_ms.unwrap_or(0).min(MAX_RANK_MS) as i64;
    let entry = (-((priority << 31) + rank), task.id.clone());
    (task.role.as_deref().unwrap_or(""), entry)
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change
        // (mutations do not panic midway), so the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            _ => Err(StoreError::lease_lost(lease)),
        }
    }

    /// The goal of an existing task, or `UnknownTask`.
    fn goal_with_task(&mut self, goal: &str, task: &str) -> Result<&mut GoalData, StoreError> {
        match self.goals.get_mut(goal) {
            Some(data) if data.tasks.contains_key(task) => Ok(data),
            _ => Err(StoreError::unknown_task(goal, task)),
        }
    }
}

impl GoalData {
    fn set_status(&mut self, id: &str, to: TaskStatus) {
        let task = &mut self.task_mut(id).state;
        let from = task.status;
        task.status = to;
        task.updated_ms = now_ms();
        *self.status.counts.entry(from).or_default() -= 1;
        *self.status.counts.entry(to).or_default() += 1;
    }

    fn index_ready(&mut self, id: &str) {
        let (index, entry) = ready_slot(&self.tasks[id].state);
        self.ready
            .entry(index.to_string())
            .or_default()
            .insert(entry);
    }

    /// Takes a task out of its READY index; true if it was there.
    fn remove_ready(&mut self, id: &str) -> bool {
        let (index, entry) = ready_slot(&self.tasks[id].state);
        self.ready
            .get_mut(index)
            .is_some_and(|ready| ready.remove(&entry))
    }

    /// Takes a task out of its READY index and out of the delayed set.
    fn unindex_ready(&mut self, id: &str) {
        self.remove_ready(id);
        self.delayed.retain(|(_, d)| d != id);
    }

    /// A task that failed for good: FAILED, and the goal with it. A merge task
    /// the task it merges waits for hands its failure to that task, which is
    /// then what fails (as fail_lib.lua).
    fn fail_for_good(&mut self, id: &str, reason: String) {
        if let Some(subject) = self.waiting_for_merge(id) {
            self.supersede(id, &subject, reason.clone());
            self.task_mut(&subject).state.pending_deps = 0;
            return self.fail_for_good(&subject, format!("its merge task {id} failed: {reason}"));
        }
        self.set_status(id, TaskStatus::Failed);
        let task = self.task_mut(id);
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

    /// A task whose work `by` takes over: FAILED, not counted against the goal
    /// (superseded); `by` is what to retry instead.
    fn supersede(&mut self, id: &str, by: &str, reason: String) {
        self.set_status(id, TaskStatus::Failed);
        self.status.superseded += 1;
        let task = self.task_mut(id);
        task.lock = None;
        task.state.last_error = Some(reason);
        task.state.finished_ms = Some(now_ms());
        task.state.lease_expires_ms = None;
        task.state.retry_at_ms = None;
        task.state.recovered_by = Some(by.to_string());
    }

    /// The task that waits (BLOCKED) for merge task `id`, if `id` is one.
    fn waiting_for_merge(&self, id: &str) -> Option<String> {
        let task = &self.tasks[id].state;
        let subject = task.of.as_ref().filter(|_| task.kind == TaskKind::Merge)?;
        let entry = self.tasks.get(subject)?;
        (entry.state.status == TaskStatus::Blocked && entry.merging.as_deref() == Some(id))
            .then(|| subject.clone())
    }

    /// Adds a task to the running plan (as team_lib.lua's add_task): READY,
    /// counted, its node in the plan, ranked in front of `before`, which runs
    /// again after it or not (`reruns`).
    fn add_task(&mut self, id: &str, spec: NewTask, before: &str, reruns: bool) {
        let status = TaskStatus::Ready;
        let typical = self.typical_ms.unwrap_or(TYPICAL_TASK_MS);
        let waiter = &self.tasks[before].state;
        let mut behind = waiter.rank_ms.unwrap_or(0);
        if !reruns {
            behind = behind.saturating_sub(waiter.estimate_ms.unwrap_or(0));
        }
        let mut node = Node::new(id, spec.title.clone());
        node.priority = spec.priority;
        node.role = spec.role.clone();
        node.kind = spec.kind;
        node.of = Some(spec.of.clone());
        node.approval = spec.approval;
        self.dag.nodes.push(node);
        self.dag.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let state = TaskState {
            role: spec.role,
            priority: spec.priority,
            estimate_ms: Some(typical).filter(|_| self.status.ranked),
            estimate_source: Some(EstimateSource::Default).filter(|_| self.status.ranked),
            rank_ms: Some(typical + behind).filter(|_| self.status.ranked),
            kind: spec.kind,
            of: Some(spec.of),
            cycle: spec.cycle,
            notes: Some(spec.notes).filter(|n| !n.is_empty()),
            needs_approval: spec.approval,
            ..TaskState::new(&self.status.goal, id, &spec.title, status, now_ms())
        };
        self.tasks.insert(id.to_string(), TaskEntry::new(state));
        self.status.total += 1;
        *self.status.counts.entry(status).or_default() += 1;
        self.index_ready(id);
    }

    /// Makes `id` wait for `on` as well; `promote` also lists it as a dependent
    /// of `on`, so that finishing `on` moves it on (an escalation settles its
    /// review itself instead).
    fn wait_for(&mut self, id: &str, on: &str, promote: bool) {
        self.task_mut(id).state.pending_deps += 1;
        self.dag.edges.push(Edge {
            source: on.to_string(),
            target: id.to_string(),
        });
        self.dag.edges.sort();
        if promote {
            self.dependents.insert(on.to_string(), vec![id.to_string()]);
        }
    }

    /// The planned task whose id names the tasks added about task `id`: the
    /// task itself, or for a recovery the task it recovers (as team_lib.lua's
    /// planned_of), so that no added id nests suffixes.
    fn planned_of(&self, id: &str) -> String {
        let task = &self.tasks[id].state;
        match (&task.kind, &task.of) {
            (TaskKind::Recover, Some(of)) => of.clone(),
            _ => id.to_string(),
        }
    }

    /// Adds the next fix of `subject` for its role, carrying `notes`, named and
    /// numbered after its planned task; `waiter` waits for it. Returns the fix's id.
    fn add_fix(&mut self, subject: &str, notes: &str, waiter: &str) -> String {
        let planned = self.planned_of(subject);
        let entry = self.task_mut(&planned);
        entry.fixes += 1;
        let n = entry.fixes;
        let subject_state = &self.tasks[subject].state;
        let spec = NewTask {
            title: format!("Fix {n} of: {}", subject_state.title),
            kind: TaskKind::Fix,
            of: subject.to_string(),
            notes: notes.to_string(),
            role: subject_state.role.clone(),
            priority: subject_state.priority,
            cycle: n,
            approval: false,
        };
        let fix = fix_id(&planned, n);
        self.add_task(&fix, spec, waiter, true);
        self.wait_for(waiter, &fix, true);
        fix
    }

    fn task_mut(&mut self, id: &str) -> &mut TaskEntry {
        self.tasks.get_mut(id).expect("task exists")
    }
}
