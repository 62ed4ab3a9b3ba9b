//! The LeaseReaper: returns tasks whose lease was lost (the lock key expired) to
//! READY, or FAILED at max attempts, for the goals this process runs. Under
//! worktree isolation it removes the worktree of a task it FAILED, if this
//! machine has it: nobody runs that task again. A task back to READY keeps its
//! worktree until its next attempt replaces it, because another process may
//! claim it at once and make its own there.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::agent::GitContext;
use crate::store::prelude::*;
use crate::workspace::Workspaces;

/// The reaper actor.
pub struct LeaseReaper {
    store: Arc<dyn Store>,
    goals: Vec<String>,
    interval: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    git: Option<(Arc<GitContext>, Workspaces)>,
}

impl LeaseReaper {
    /// A reaper for `goals`, passing every quarter of the lease TTL (at least every
    /// 100 ms): a lost lease is noticed well within one TTL of its expiry.
    pub fn new(store: Arc<dyn Store>, goals: Vec<String>, lease_ttl: Duration) -> Self {
        Self {
            store,
            goals,
            interval: (lease_ttl / 4).max(Duration::from_millis(100)),
            metrics: Arc::default(),
            git: None,
        }
    }

    /// The same reaper, removing the worktrees of the tasks it fails from the
    /// goals' repositories in `workspaces`.
    pub fn with_git(self, git: Option<Arc<GitContext>>, workspaces: Workspaces) -> Self {
        Self {
            git: git.map(|git| (git, workspaces)),
            ..self
        }
    }

    /// The same reaper, counting what it reaps in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics, ..self }
    }
}

impl Actor for LeaseReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |reaper, ctx| {
            let store = reaper.store.clone();
            let goals = reaper.goals.clone();
            let metrics = reaper.metrics.clone();
            let git = reaper.git.clone();
            // Wait for one pass to end before the next starts.
            ctx.wait(
                async move {
                    for goal in goals {
                        match store.reap(&goal).await {
                            Ok(outcome) => {
                                metrics.leases_reaped(&goal, &outcome);
                                for task in &outcome.requeued {
                                    tracing::info!(goal = %goal, task = %task, "lease lost; task back to READY");
                                }
                                for task in &outcome.failed {
                                    tracing::warn!(goal = %goal, task = %task, "lease lost at max attempts; task FAILED");
                                    if let Some((git, workspaces)) = &git {
                                        let dir = workspaces.for_goal(&goal).dir;
                                        if let Err(e) = git.remove_worktree(&goal, &dir, task).await {
                                            tracing::warn!(goal = %goal, task = %task, error = %e, "could not remove the failed task's worktree; porki gc will");
                                        }
                                    }
                                }
                            }
                            Err(e) => tracing::warn!(goal = %goal, error = %e, "reap pass failed; retrying next pass"),
                        }
                    }
                }
                .into_actor(reaper),
            );
        });
    }
}

/// Adds a goal to reap (a goal declared after start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GoalAdded {
    /// Goal id.
    pub goal: String,
}

impl Handler<GoalAdded> for LeaseReaper {
    type Result = ();

    fn handle(&mut self, msg: GoalAdded, _: &mut Self::Context) {
        if !self.goals.contains(&msg.goal) {
            self.goals.push(msg.goal);
        }
    }
}
