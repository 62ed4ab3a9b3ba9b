//! [`GcStore`] in memory: the same rules as `gc_goal.lua` and `gc_agent.lua`,
//! under the one lock, on the wall clock the scripts' `TIME` stands for.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{MemoryStore, State, now_ms};
use crate::store::{AgentField, AgentState, GcStore, GoalState, GoalStatus, StoreError, Sweep};

/// How a finished goal's summary stands against the retention: `None` to keep it.
fn expired(status: &GoalStatus, retain: Duration, now: u64) -> Option<Duration> {
    if !status.state.is_terminal() {
        return None;
    }
    let age = now.checked_sub(status.finished_ms?)?;
    (age >= retain.as_millis() as u64).then(|| Duration::from_millis(age))
}

/// How a draft (a goal without a plan that LLM calls spent on) stands against the
/// retention, as gc_goal.lua: `None` to keep it (a call of it is in flight, or
/// one used tokens within the retention).
fn draft_age(state: &State, goal: &str, retain: Duration, now: u64) -> Option<Duration> {
    let instant = Instant::now();
    let in_flight = state
        .reservations
        .get(goal)
        .is_some_and(|held| held.values().any(|(_, _, expires)| *expires > instant));
    let age = now.checked_sub(*state.draft_used.get(goal)?)?;
    (!in_flight && age >= retain.as_millis() as u64).then(|| Duration::from_millis(age))
}

impl State {
    /// Removes everything kept about agent `name` (but its heartbeat cursor, if
    /// `keep_cursor`).
    fn forget_agent(&mut self, name: &str, keep_cursor: bool) {
        self.agents.remove(name);
        self.guards.remove(name);
        self.agent_values.retain(|(agent, field), _| {
            agent != name || (keep_cursor && *field == AgentField::HeartbeatCursor)
        });
        self.agent_errors.remove(name);
        self.agent_changed.remove(name);
        self.agent_dead_since.remove(name);
    }
}

#[async_trait]
impl GcStore for MemoryStore {
    async fn sweep_goal(
        &self,
        goal: &str,
        retain: Duration,
        dry_run: bool,
    ) -> Result<Sweep, StoreError> {
        let mut state = self.lock();
        let now = now_ms();
        let (status, tasks, leased) = match (state.goals.get(goal), state.unplanned.get(goal)) {
            (Some(data), _) => {
                let leased = data
                    .tasks
                    .values()
                    .any(|t| t.lock.as_ref().is_some_and(|(_, e)| *e > Instant::now()));
                (&data.status, data.tasks.len() as u64, leased)
            }
            (None, Some(status)) => (status, 0, false),
            (None, None) => return Ok(Sweep::Gone),
        };
        let age = match status.state {
            GoalState::Draft => draft_age(&state, goal, retain, now),
            _ => expired(status, retain, now).filter(|_| !leased),
        };
        let Some(age) = age else {
            return Ok(Sweep::Kept);
        };
        let removed = Sweep::Removed {
            state: status.state.as_str().to_string(),
            age,
            tasks,
        };
        if !dry_run {
            state.goals.remove(goal);
            state.unplanned.remove(goal);
            state.reservations.remove(goal);
            state.money.remove(goal);
            state.draft_used.remove(goal);
        }
        Ok(removed)
    }

    async fn agent_names(&self) -> Result<Vec<String>, StoreError> {
        // As the `agents` set on Redis: registered, or kept for a heartbeat cursor.
        let state = self.lock();
        let cursors = state
            .agent_values
            .keys()
            .filter(|(_, field)| *field == AgentField::HeartbeatCursor)
            .map(|(name, _)| name);
        let names: BTreeSet<&String> = state.agents.keys().chain(cursors).collect();
        Ok(names.into_iter().cloned().collect())
    }

    async fn sweep_agent(
        &self,
        name: &str,
        retain: Duration,
        dry_run: bool,
        keep_cursor: bool,
    ) -> Result<Sweep, StoreError> {
        let mut state = self.lock();
        let Some(record) = state.agents.get(name) else {
            let cursor = (name.to_string(), AgentField::HeartbeatCursor);
            if keep_cursor && state.agent_values.contains_key(&cursor) {
                return Ok(Sweep::Kept);
            }
            if !dry_run {
                state.forget_agent(name, false);
            }
            return Ok(Sweep::Gone);
        };
        let instant = Instant::now();
        let running = record.state == AgentState::Running;
        if state.guards.get(name).is_some_and(|(_, e)| *e > instant) {
            state.agent_dead_since.remove(name);
            return Ok(Sweep::Kept);
        }
        let agent_state = record.state.to_string();
        let now = now_ms();
        let times = if running {
            &mut state.agent_dead_since
        } else {
            &mut state.agent_changed
        };
        let since = match times.get(name) {
            Some(&since) => since,
            None if dry_run => now,
            None => *times.entry(name.to_string()).or_insert(now),
        };
        let age = now.saturating_sub(since);
        if age < retain.as_millis() as u64 {
            return Ok(Sweep::Kept);
        }
        if !dry_run {
            state.forget_agent(name, keep_cursor);
        }
        Ok(Sweep::Removed {
            state: agent_state,
            age: Duration::from_millis(age),
            tasks: 0,
        })
    }
}
