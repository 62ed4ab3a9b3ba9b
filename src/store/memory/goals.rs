//! [`GoalStore`] in memory: plans, goal summaries, usage, and the event channel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{GoalData, MemoryStore, State, TaskEntry, now_ms};
use crate::domain::rank::{StoredRank, plan_ranks};
use crate::domain::{Assignment, Dag, Edge, TaskState, TaskStatus, ValidatedDag};
use crate::store::{
    EventKind, GoalState, GoalStatus, GoalStore, Reservation, StoreError, StoreEvent,
    WriteDagOptions, WriteDagOutcome,
};

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
        superseded: 0,
        created_ms: now_ms(),
        finished_ms: None,
        last_error: None,
        tokens: 0,
        cost_usd: 0.0,
        backoff: None,
        ready_by_role: BTreeMap::new(),
        branch: None,
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

impl GoalData {
    /// A freshly written plan: every task BLOCKED, or READY and indexed if it has no deps.
    fn new(dag: &ValidatedDag, options: &WriteDagOptions) -> Self {
        let goal = dag.goal_id();
        let now = now_ms();
        let mut data = GoalData {
            status: GoalStatus {
                state: GoalState::Active,
                title: options.title.clone(),
                fingerprint: dag.fingerprint().to_string(),
                source: options.source.clone(),
                max_attempts: options.max_attempts.max(1),
                total: dag.dag().nodes.len() as u64,
                created_ms: now,
                ..unplanned_status(goal)
            },
            dag: stored_form(dag),
            tasks: BTreeMap::new(),
            dependents: HashMap::new(),
            ready: HashMap::new(),
            delayed: BTreeSet::new(),
            backoff_until: None,
            typical_ms: None,
        };
        let ranks = plan_ranks(dag);
        for node in &dag.dag().nodes {
            let pending = dag.deps_of(&node.id).len() as u32;
            let status = if pending == 0 {
                TaskStatus::Ready
            } else {
                TaskStatus::Blocked
            };
            *data.status.counts.entry(status).or_default() += 1;
            let state = TaskState {
                role: node.effective_role().map(str::to_string),
                priority: node.priority,
                pending_deps: pending,
                kind: node.kind,
                // What planned work says it is about is kept in the plan only,
                // as write_dag.lua does.
                of: node.of.clone().filter(|_| !node.kind.is_work()),
                needs_approval: node.approval,
                soft: node.assignment == Assignment::Soft,
                rank_ms: Some(ranks[&node.id].rank_ms),
                estimate_ms: Some(ranks[&node.id].estimate_ms),
                estimate_source: Some(ranks[&node.id].source),
                ..TaskState::new(goal, &node.id, &node.title, status, now)
            };
            data.tasks.insert(node.id.clone(), TaskEntry::new(state));
            data.dependents
                .insert(node.id.clone(), dag.dependents_of(&node.id).to_vec());
            if status == TaskStatus::Ready {
                data.index_ready(&node.id);
            }
        }
        data
    }
}

impl State {
    /// The summary holding a goal's spending: its plan's, else its draft's.
    fn spending(&self, goal: &str) -> Option<&GoalStatus> {
        match self.goals.get(goal) {
            Some(data) => Some(&data.status),
            None => self.unplanned.get(goal),
        }
    }

    /// The summary of a goal without a plan, made a draft if it is new.
    fn unplanned_mut(&mut self, goal: &str) -> &mut GoalStatus {
        self.unplanned
            .entry(goal.to_string())
            .or_insert_with(|| unplanned_status(goal))
    }

    /// An LLM call of `goal` reserved or settled tokens: a goal without a plan
    /// is a draft, listed, aged from now (as budget_reserve.lua's `used_at`).
    fn used(&mut self, goal: &str) {
        if !self.goals.contains_key(goal) {
            self.unplanned_mut(goal);
            self.draft_used.insert(goal.to_string(), now_ms());
        }
    }
}

#[async_trait]
impl GoalStore for MemoryStore {
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
            // Replaced only while the stored plan is still the one the writer read.
            Some(existing) if options.expected.as_ref() == Some(&existing.status.fingerprint) => {
                WriteDagOutcome::Replaced
            }
            Some(existing) => {
                return Err(StoreError::PlanConflict {
                    goal,
                    existing: existing.status.fingerprint.clone(),
                });
            }
        };
        let mut data = GoalData::new(dag, options);
        // Tokens spent planning a goal before it had a plan stay on the goal.
        state.draft_used.remove(&goal);
        if let Some(prior) = state.unplanned.remove(&goal) {
            data.status.tokens = prior.tokens;
            data.status.cost_usd = prior.cost_usd;
        }
        // What is about the goal, not the plan, outlives a replaced plan (the
        // reservations of calls in flight are kept apart and stay as they are).
        if let Some(old) = state.goals.remove(&goal) {
            data.status.tokens = old.status.tokens;
            data.status.cost_usd = old.status.cost_usd;
            data.status.backoff = old.status.backoff;
            data.status.branch = old.status.branch;
            data.backoff_until = old.backoff_until;
        }
        state.goals.insert(goal.clone(), data);
        self.emit(&goal, EventKind::Ready);
        Ok(outcome)
    }

    async fn rerank(
        &self,
        goal: &str,
        fingerprint: &str,
        typical_ms: u64,
        ranks: &BTreeMap<String, StoredRank>,
    ) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let Some(data) = state
            .goals
            .get_mut(goal)
            .filter(|d| d.status.fingerprint == fingerprint)
        else {
            return Ok(0);
        };
        let mut written = 0;
        for (id, rank) in ranks {
            if !data.tasks.contains_key(id) {
                continue;
            }
            let in_index = data.remove_ready(id);
            let task = &mut data.task_mut(id).state;
            task.rank_ms = Some(rank.rank_ms);
            task.estimate_ms = Some(rank.estimate_ms);
            task.estimate_source = Some(rank.source);
            if in_index {
                data.index_ready(id);
            }
            written += 1;
        }
        data.typical_ms = Some(typical_ms);
        Ok(written)
    }

    async fn reserve_tokens(
        &self,
        goal: &str,
        reservation: &str,
        estimate: u64,
        budget: u64,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let mut state = self.lock();
        let spent = state.spending(goal).map_or(0, |s| s.tokens);
        let now = Instant::now();
        let held = state.reservations.entry(goal.to_string()).or_default();
        held.retain(|_, (_, expires)| *expires > now);
        let reserved: u64 = held.values().map(|(tokens, _)| tokens).sum();
        if spent + reserved >= budget {
            return Ok(Reservation::Spent { spent, reserved });
        }
        held.insert(reservation.to_string(), (estimate, now + ttl));
        state.used(goal);
        Ok(Reservation::Reserved)
    }

    async fn settle_tokens(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost_usd: f64,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        if let Some(held) = state.reservations.get_mut(goal) {
            held.remove(reservation);
            if held.is_empty() {
                state.reservations.remove(goal);
            }
        }
        if tokens == 0 && cost_usd <= 0.0 {
            return Ok(state.spending(goal).map_or(0, |s| s.tokens));
        }
        state.used(goal);
        let status = match state.goals.get_mut(goal) {
            Some(data) => &mut data.status,
            None => state.unplanned_mut(goal),
        };
        status.tokens += tokens;
        status.cost_usd += cost_usd.max(0.0);
        Ok(status.tokens)
    }

    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.goals.contains_key(goal) {
            return Ok(());
        }
        let status = state.unplanned_mut(goal);
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
        Ok(state.goals.get(goal).map(|g| GoalStatus {
            ready_by_role: g
                .ready
                .iter()
                .filter(|(_, tasks)| !tasks.is_empty())
                .map(|(role, tasks)| (role.clone(), tasks.len() as u64))
                .collect(),
            ..g.status.clone()
        }))
    }

    async fn goals(&self) -> Result<Vec<String>, StoreError> {
        let state = self.lock();
        let goals: BTreeSet<&String> = state.goals.keys().chain(state.unplanned.keys()).collect();
        Ok(goals.into_iter().cloned().collect())
    }

    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError> {
        Ok(self.lock().goals.get(goal).map(|g| g.dag.clone()))
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}
