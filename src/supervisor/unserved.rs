//! READY tasks no live agent can take: logged when that changes (such a goal
//! never ends on its own), and, when the plan marked a task soft
//! (`"assignment": "soft"`), handed to a live builder of the goal instead.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;

use super::Supervisor;
use crate::domain::{AgentKind, TaskStatus};
use crate::report::AgentReport;
use crate::store::Store;

/// How often the Supervisor looks for READY tasks no live agent can take.
pub(super) const UNSERVED_CHECK: Duration = Duration::from_secs(10);

/// A soft task handed to another builder: (goal, task, its planned role, the new one).
type Reassigned = (String, String, String, Option<String>);

impl Supervisor {
    /// Hands soft tasks whose role has no live agent to a live builder, then logs,
    /// when it changes, which READY tasks of each goal no live agent (of any
    /// process) can take.
    pub(super) fn check_unserved(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let store = self.config.store.clone();
        let project = self.config.project.clone();
        ctx.spawn(
            async move {
                let mut agents = Vec::new();
                for record in store.agents().await.ok()? {
                    let alive = store.agent_alive(&record.name).await.ok()?;
                    agents.push(AgentReport {
                        record,
                        last_error: None,
                        alive,
                    });
                }
                let mut found = BTreeMap::new();
                let mut reassigned = Vec::new();
                for goal in project.goals() {
                    let Some(status) = store.goal_status(&goal).await.ok()? else {
                        continue;
                    };
                    if status.state.is_terminal() {
                        continue;
                    }
                    let mut unserved = crate::report::unserved(&status, &agents);
                    if unserved.iter().any(|(role, _)| !role.is_empty()) {
                        let builders = live_builders(&project, &goal, &agents);
                        let moved = reassign_soft(&*store, &goal, &unserved, &builders).await;
                        if !moved.is_empty() {
                            let status = store.goal_status(&goal).await.ok()??;
                            unserved = crate::report::unserved(&status, &agents);
                        }
                        reassigned.extend(moved);
                    }
                    found.insert(goal, unserved);
                }
                Some((found, reassigned))
            }
            .into_actor(self)
            .map(|found, supervisor, _| {
                let (found, reassigned) = found.unwrap_or_default();
                for (goal, task, from, to) in reassigned {
                    tracing::warn!(
                        goal = %goal,
                        task = %task,
                        "no live agent has role {from}: the soft task goes to {}",
                        to.map_or("any builder".to_string(), |r| format!("role {r}"))
                    );
                }
                for (goal, unserved) in found {
                    let before = supervisor.unserved.get(&goal);
                    if before == Some(&unserved) || (before.is_none() && unserved.is_empty()) {
                        continue;
                    }
                    if unserved.is_empty() {
                        tracing::info!(goal = %goal, "every READY task has a live agent again");
                    } else {
                        tracing::warn!(
                            goal = %goal,
                            "no live agent can take {}: declare or start an agent of that role (porki status shows the goal's agents)",
                            crate::report::unserved_text(&unserved)
                        );
                    }
                    supervisor.unserved.insert(goal, unserved);
                }
            }),
        );
    }
}

/// The claim roles of the goal's declared builders that are alive now (`None`:
/// a builder without a role), first declared first.
fn live_builders(
    project: &crate::project::Project,
    goal: &str,
    agents: &[AgentReport],
) -> Vec<Option<String>> {
    project
        .agents_of(goal)
        .filter(|a| a.kind == AgentKind::Builder)
        .filter(|a| agents.iter().any(|r| r.alive && r.record.name == a.name))
        .map(|a| a.role.clone())
        .collect()
}

/// Hands each READY soft task of an unserved role to the first live builder.
async fn reassign_soft(
    store: &dyn Store,
    goal: &str,
    unserved: &[(String, u64)],
    builders: &[Option<String>],
) -> Vec<Reassigned> {
    let Some(to) = builders.first() else {
        return Vec::new();
    };
    let Ok(tasks) = store.tasks(goal).await else {
        return Vec::new();
    };
    let mut reassigned = Vec::new();
    for task in tasks {
        let Some(role) = task.role.clone() else {
            continue;
        };
        let stranded = task.soft
            && task.status == TaskStatus::Ready
            && unserved.iter().any(|(r, _)| *r == role);
        if !stranded {
            continue;
        }
        match store.reassign(goal, &task.id, to.as_deref()).await {
            Ok(()) => reassigned.push((goal.to_string(), task.id, role, to.clone())),
            Err(e) => {
                tracing::warn!(goal = %goal, task = %task.id, error = %e, "cannot hand the soft task to another builder")
            }
        }
    }
    reassigned
}
