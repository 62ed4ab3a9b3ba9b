//! Retention: removing what finished goals and dead agents leave in the store
//! (`porki gc`, and the orchestrator's hourly cleanup).
//!
//! [`GcStore`] removes one goal or one agent, atomically and only if it is past
//! the retention at the store's clock; [`collect`] walks the `goals` and `agents`
//! lists and reports what it removed. A goal is removed once it is complete or
//! failed and finished (`finished_at`) at least the retention ago, with every
//! key it has: `goal:{G}`, `goal:{G}:*`, `dag:{G}:*` and `task:{G}:*` (its task
//! ids from `dag:{G}:nodes`, so no scan across slots is needed). A draft (a goal
//! hash holding only what LLM calls spent, without a plan) is removed once no
//! call of it is in flight and none used tokens for the retention. An agent is
//! removed once it has been dead (its guard gone) at least the retention:
//! `agent:{NAME}:*`, but for its heartbeat cursor while the heartbeat file the
//! cursor names still exists (a later agent of that name then neither replays
//! old lines nor misses new ones); the cursor goes with the file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use super::{AgentField, Store, StoreError};
use crate::heartbeat::StoredCursor;

/// Default retention of finished goals and dead agents (`--retain-finished`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the orchestrator cleans up.
pub const DEFAULT_CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// What sweeping one goal or agent found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Active, alive, or finished (dead) for less than the retention: left alone.
    Kept,
    /// Listed, but its data was already gone; taken off the list.
    Gone,
    /// Removed (in a dry run: would be removed).
    Removed {
        /// Its last state (`complete`, `failed`; an agent's `stopped`, `running`…).
        state: String,
        /// How long ago it finished (or was found dead).
        age: Duration,
        /// Tasks of a goal removed with it (0 for an agent).
        tasks: u64,
    },
}

/// Removing finished goals and dead agents, one at a time. Every method is
/// atomic with respect to every other caller, and decides by the store's clock.
#[async_trait]
pub trait GcStore: Send + Sync + 'static {
    /// Removes every key of `goal` if it is complete or failed, finished at least
    /// `retain` ago and no task of it is still leased, or if it is a draft no LLM
    /// call reserved or settled tokens of for `retain` and none is in flight;
    /// takes it off `goals`. With `dry_run`, changes nothing and answers what it
    /// would do.
    async fn sweep_goal(
        &self,
        goal: &str,
        retain: Duration,
        dry_run: bool,
    ) -> Result<Sweep, StoreError>;

    /// Every agent name listed: registered, or left listed without a
    /// registration (a crash between a removal and its unlisting, or a
    /// heartbeat cursor kept).
    async fn agent_names(&self) -> Result<Vec<String>, StoreError>;

    /// Removes every key of agent `name` if nobody holds its guard, its
    /// registration is not `running` (or its heartbeat is gone), and that has been
    /// so for at least `retain`: since the registration was written, for one that
    /// is not `running`; since a sweep first found its heartbeat gone, for one that
    /// is (a sweep that finds a dead agent without that time records it, unless
    /// `dry_run`). Takes it off `agents`. With `keep_cursor`, its heartbeat
    /// cursor stays, and the name stays listed while the cursor does. A name
    /// without a registration is [`Sweep::Gone`] (what was left of it removed),
    /// or kept for its cursor. With `dry_run`, removes nothing.
    async fn sweep_agent(
        &self,
        name: &str,
        retain: Duration,
        dry_run: bool,
        keep_cursor: bool,
    ) -> Result<Sweep, StoreError>;
}

/// What a cleanup should do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// How long finished goals and dead agents are kept.
    pub retain: Duration,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// Goals never removed (the orchestrator's own).
    pub keep_goals: BTreeSet<String>,
    /// Agents never removed (the orchestrator's own).
    pub keep_agents: BTreeSet<String>,
}

impl GcOptions {
    /// Remove everything past `retain`.
    pub fn new(retain: Duration) -> Self {
        Self {
            retain,
            dry_run: false,
            keep_goals: BTreeSet::new(),
            keep_agents: BTreeSet::new(),
        }
    }
}

/// One goal or agent removed (or that a dry run would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Goal id or agent name.
    pub name: String,
    /// Its last state.
    pub state: String,
    /// How long ago it finished (or was found dead).
    pub age: Duration,
    /// Tasks of a goal (0 for an agent).
    pub tasks: u64,
    /// The heartbeat file whose cursor was kept (an agent's, while it exists).
    pub cursor_kept: Option<PathBuf>,
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Goals removed.
    pub goals: Vec<Removed>,
    /// Agents removed.
    pub agents: Vec<Removed>,
    /// Goals left alone.
    pub kept_goals: usize,
    /// Agents left alone.
    pub kept_agents: usize,
}

impl GcReport {
    /// One line per goal and agent removed (`removed goal g (complete, finished
    /// 8d 2h ago, 5 tasks)`, or `would remove …` in a dry run).
    pub fn lines(&self) -> Vec<String> {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let goals = self.goals.iter().map(|g| {
            format!(
                "{verb} goal {} ({}, finished {} ago, {} tasks)",
                g.name,
                g.state,
                age_text(g.age),
                g.tasks
            )
        });
        let agents = self.agents.iter().map(|a| {
            let cursor = a.cursor_kept.as_ref().map_or(String::new(), |file| {
                format!(
                    "; its heartbeat cursor stays while {} exists",
                    file.display()
                )
            });
            format!(
                "{verb} agent {} ({}, dead for {}){cursor}",
                a.name,
                a.state,
                age_text(a.age)
            )
        });
        goals.chain(agents).collect()
    }

    /// Whether anything was (or would be) removed.
    pub fn is_empty(&self) -> bool {
        self.goals.is_empty() && self.agents.is_empty()
    }
}

/// A duration as its two largest units: `8d 2h`, `3h 5m`, `42s`.
pub fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |left, &(size, unit)| {
            let n = *left / size;
            *left %= size;
            Some((n, unit))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        format!("{}ms", age.as_millis())
    } else {
        parts.join(" ")
    }
}

/// Sweeps every goal and agent of the store but those `options` keeps.
pub async fn collect(store: &dyn Store, options: &GcOptions) -> Result<GcReport, StoreError> {
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    for goal in store.goals().await? {
        if options.keep_goals.contains(&goal) {
            report.kept_goals += 1;
            continue;
        }
        match store
            .sweep_goal(&goal, options.retain, options.dry_run)
            .await?
        {
            Sweep::Removed { state, age, tasks } => report.goals.push(Removed {
                name: goal,
                state,
                age,
                tasks,
                cursor_kept: None,
            }),
            Sweep::Kept => report.kept_goals += 1,
            Sweep::Gone => {}
        }
    }
    for name in store.agent_names().await? {
        if options.keep_agents.contains(&name) {
            report.kept_agents += 1;
            continue;
        }
        let cursor_file = heartbeat_file(store, &name).await?;
        match store
            .sweep_agent(
                &name,
                options.retain,
                options.dry_run,
                cursor_file.is_some(),
            )
            .await?
        {
            Sweep::Removed { state, age, .. } => report.agents.push(Removed {
                name,
                state,
                age,
                tasks: 0,
                cursor_kept: cursor_file,
            }),
            Sweep::Kept => report.kept_agents += 1,
            Sweep::Gone => {}
        }
    }
    Ok(report)
}

/// The heartbeat file of agent `name`'s stored cursor, if it still exists here.
async fn heartbeat_file(store: &dyn Store, name: &str) -> Result<Option<PathBuf>, StoreError> {
    let stored = store.agent_value(name, AgentField::HeartbeatCursor).await?;
    Ok(stored
        .as_deref()
        .and_then(StoredCursor::parse)
        .and_then(|c| c.file)
        .filter(|file| file.exists()))
}

/// Cleans up and logs what was removed (the orchestrator's hourly cleanup); a
/// store error is logged and left to the next round.
pub async fn collect_and_log(store: &dyn Store, options: &GcOptions) {
    match collect(store, options).await {
        Ok(report) => {
            for line in report.lines() {
                tracing::info!(retain = %age_text(options.retain), "cleanup: {line}");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cleanup of finished goals and dead agents failed; trying again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_their_two_largest_units() {
        let s = Duration::from_secs;
        assert_eq!(age_text(s(8 * 86_400 + 2 * 3600 + 59)), "8d 2h");
        assert_eq!(age_text(s(7 * 86_400)), "7d");
        assert_eq!(age_text(s(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(age_text(s(42)), "42s");
        assert_eq!(age_text(Duration::from_millis(250)), "250ms");
    }
}
