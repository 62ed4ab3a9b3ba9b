//! [`GoalStore`] in memory: plans, goal summaries, usage, and the event channel.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{GoalData, MemoryStore, State, TaskEntry, now_ms};
use crate::domain::rank::{StoredRank, plan_ranks};
use crate::domain::{Assignment, Dag, Edge, TaskState, TaskStatus, ValidatedDag};
use crate::store::{
    Admission, BudgetAsk, CallCost, EventKind, GoalSpending, GoalState, GoalStatus, GoalStore,
    StoreError, StoreEvent, WriteDagOptions, WriteDagOutcome,
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
        ranked: true,
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
                ranked: options.ranked,
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
        let rank = |id: &str| Some(ranks[id]).filter(|_| options.ranked);
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
                rank_ms: rank(&node.id).map(|r| r.rank_ms),
                estimate_ms: rank(&node.id).map(|r| r.estimate_ms),
                estimate_source: rank(&node.id).map(|r| r.source),
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

    async fn reserve_budget(
        &self,
        goal: &str,
        reservation: &str,
        ask: &BudgetAsk,
    ) -> Result<Admission, StoreError> {
        let mut state = self.lock();
        let (spent, usd_spent) = state
            .spending(goal)
            .map_or((0, 0.0), |s| (s.tokens, s.cost_usd));
        let usd = state
            .money
            .get(goal)
            .filter(|m| m.priced_calls > 0)
            .map(|m| m.priced_usd / m.priced_calls as f64);
        let now = Instant::now();
        let held = state.reservations.entry(goal.to_string()).or_default();
        held.retain(|_, (_, _, expires)| *expires > now);
        let reserved: u64 = held.values().map(|(tokens, _, _)| tokens).sum();
        let usd_reserved: f64 = held.values().map(|(_, usd, _)| usd).sum();
        // As budget_reserve.lua: the mean of priced calls, else the default (the
        // budget if smaller); a nanodollar of float rounding is forgiven.
        let usd = match ask.usd_budget {
            None => 0.0,
            Some(budget) => usd.unwrap_or(ask.usd_default.min(budget)),
        };
        if ask.token_budget.is_some_and(|b| spent + reserved >= b) {
            return Ok(Admission::Tokens { spent, reserved });
        }
        if ask
            .usd_budget
            .is_some_and(|b| usd_spent + usd_reserved + usd > b + 1e-9)
        {
            return Ok(Admission::Money {
                spent: usd_spent,
                reserved: usd_reserved,
                estimate: usd,
            });
        }
        held.insert(reservation.to_string(), (ask.tokens, usd, now + ask.ttl));
        state.used(goal);
        Ok(Admission::Reserved)
    }

    async fn settle_budget(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost: CallCost,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        if let Some(held) = state.reservations.get_mut(goal) {
            held.remove(reservation);
            if held.is_empty() {
                state.reservations.remove(goal);
            }
        }
        let (cost_usd, tracked) = match cost {
            CallCost::Untracked(usd) => (usd, false),
            CallCost::Priced(usd) => (usd, true),
            CallCost::Unknown => (0.0, true),
        };
        let cost_usd = if cost_usd.is_finite() {
            cost_usd.max(0.0)
        } else {
            0.0
        };
        if tokens == 0 && cost_usd <= 0.0 && !tracked {
            return Ok(state.spending(goal).map_or(0, |s| s.tokens));
        }
        state.used(goal);
        let status = match state.goals.get_mut(goal) {
            Some(data) => &mut data.status,
            None => state.unplanned_mut(goal),
        };
        status.tokens += tokens;
        status.cost_usd += cost_usd;
        let total = status.tokens;
        match cost {
            CallCost::Untracked(_) => {}
            CallCost::Priced(_) => {
                let money = state.money.entry(goal.to_string()).or_default();
                money.priced_calls += 1;
                money.priced_usd += cost_usd;
            }
            CallCost::Unknown => {
                state
                    .money
                    .entry(goal.to_string())
                    .or_default()
                    .cost_unknown += 1
            }
        }
        Ok(total)
    }

    async fn goal_spending(&self, goal: &str) -> Result<GoalSpending, StoreError> {
        Ok(self.lock().money.get(goal).copied().unwrap_or_default())
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
