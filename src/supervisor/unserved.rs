//! READY tasks no live agent can take: logged when that changes (such a goal
//! never ends on its own), and, when the plan marked a task soft
//! (`"assignment": "soft"`), handed to a live builder of the goal instead.
//! When every slot of the spawn limit is taken and an agent of this process
//! that could take them waits for one, an idle agent gives it its slot.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;

use super::Supervisor;
use super::slots::{AfterStop, SlotState};
use crate::agent::StopAgent;
use crate::domain::{AgentKind, TaskStatus, takes};
use crate::project::{AgentConfig, Project};
use crate::report::AgentReport;
use crate::store::Store;

/// How often the Supervisor looks for READY tasks no live agent can take.
pub(super) const UNSERVED_CHECK: Duration = Duration::from_secs(10);

/// A soft task handed to another builder: (goal, task, its planned role, the new one).
type Reassigned = (String, String, String, Option<String>);

/// Per goal: READY tasks by role (`""`: no role).
type ReadyByRole = BTreeMap<String, BTreeMap<String, u64>>;

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
                let mut open = Vec::new();
                for goal in project.goals() {
                    match store.goal_status(&goal).await.ok()? {
                        Some(status) if !status.state.is_terminal() => open.push((goal, status)),
                        _ => {}
                    }
                }
                // Nothing READY anywhere (the usual idle case): no agent to look at.
                let agents = if open.iter().any(|(_, s)| !s.ready_by_role.is_empty()) {
                    goal_agents(&*store, &project).await?
                } else {
                    Vec::new()
                };
                let mut found = BTreeMap::new();
                let mut ready = ReadyByRole::new();
                let mut reassigned = Vec::new();
                for (goal, status) in open {
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
                    found.insert(goal.clone(), unserved);
                    ready.insert(goal, status.ready_by_role);
                }
                Some((found, reassigned, ready))
            }
            .into_actor(self)
            .map(|found, supervisor, _| {
                let (found, reassigned, ready) = found.unwrap_or_default();
                supervisor.make_room(&found, &ready);
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

impl Supervisor {
    /// With every slot taken, stops an idle agent (no task held, nothing READY
    /// it takes) for each waiting agent that takes READY tasks no live agent
    /// takes; the waiting one starts in the freed slot, the idle one waits for
    /// a slot behind it. Without this, idle agents keep the slots forever.
    fn make_room(&mut self, unserved: &BTreeMap<String, Vec<(String, u64)>>, ready: &ReadyByRole) {
        let limit = self.config.settings.spawn_limit.max(1);
        let stopping = self
            .agents
            .values()
            .filter(|slot| slot.after_stop == Some(AfterStop::Yield))
            .count();
        if self.shutting_down || self.running() < limit {
            return;
        }
        let wanted = self
            .agents
            .values()
            .filter(|slot| matches!(slot.state, SlotState::Waiting))
            .filter(|slot| {
                let unserved = unserved.get(&slot.config.goal).into_iter().flatten();
                takes_any(&slot.config, unserved.map(|(role, n)| (role, n)))
            })
            .count()
            .saturating_sub(stopping);
        let idle: Vec<String> = self
            .agents
            .iter()
            .filter(|(name, slot)| {
                matches!(slot.state, SlotState::Running(_))
                    && slot.after_stop.is_none()
                    && !self.held.holds(name)
                    && !takes_any(
                        &slot.config,
                        ready.get(&slot.config.goal).into_iter().flatten(),
                    )
            })
            .map(|(name, _)| name.clone())
            .take(wanted)
            .collect();
        for name in idle {
            let Some(slot) = self.agents.get_mut(&name) else {
                continue;
            };
            if let SlotState::Running(agent) = &slot.state {
                tracing::info!(agent = %name, limit, "agent is idle and gives its slot to a waiting agent with READY tasks no live agent takes");
                agent.do_send(StopAgent {
                    grace: Duration::ZERO,
                });
                slot.after_stop = Some(AfterStop::Yield);
            }
        }
    }
}

/// Whether `agent` takes READY tasks of any of `roles` (role, READY count).
fn takes_any<'a>(
    agent: &AgentConfig,
    roles: impl IntoIterator<Item = (&'a String, &'a u64)>,
) -> bool {
    roles
        .into_iter()
        .any(|(role, n)| *n > 0 && takes(agent.kind, agent.role.as_deref(), role))
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

/// The registered agents of this project's goals (agents of other projects on
/// the store change nothing here), in one read.
async fn goal_agents(store: &dyn Store, project: &Project) -> Option<Vec<AgentReport>> {
    let goals = project.goals();
    let agents = store.agent_details(0).await.ok()?;
    Some(
        agents
            .into_iter()
            .filter(|a| goals.contains(&a.record.goal))
            .map(|a| AgentReport {
                record: a.record,
                last_error: None,
                alive: a.alive,
            })
            .collect(),
    )
}
