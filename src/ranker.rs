//! The Ranker: keeps the ranks of the running goals' tasks up to date (issue 21,
//! `domain::rank`). A plan is ranked when it is written, and a task added at
//! run time gets a cheap rank in the script that adds it; this actor refreshes
//! the whole goal's ranks when its tasks finish (their durations teach the
//! estimates) or the plan grows, so claims, which read only the stored ranks,
//! follow what was learnt. Every process runs one; their refreshes compute the
//! same ranks from the same store, so which one writes does not matter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::domain::rank::{TYPICAL_TASK_MS, goal_ranks};
use crate::reaper::GoalAdded;
use crate::store::GoalState;
use crate::store::prelude::*;

/// How often the ranker looks for goals whose ranks are out of date.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The least time between two refreshes of one goal, per task of the goal: a
/// refresh reads every task, so a large goal is refreshed less often.
const PER_TASK: Duration = Duration::from_millis(5);

/// What a goal's ranks were last computed from: its plan, how many tasks it
/// has and how many of them are DONE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedFrom {
    fingerprint: String,
    total: u64,
    done: u64,
}

/// The ranker actor.
pub struct Ranker {
    store: Arc<dyn Store>,
    goals: Vec<String>,
    /// Per goal: what its ranks were last computed from, when, and the
    /// typical task written then.
    last: HashMap<String, (RankedFrom, Instant, u64)>,
}

impl Ranker {
    /// A ranker for `goals`.
    pub fn new(store: Arc<dyn Store>, goals: Vec<String>) -> Self {
        Self {
            store,
            goals,
            last: HashMap::new(),
        }
    }
}

/// Refreshes `goal`'s ranks if they are out of date: writes the ranks that
/// changed and the goal's typical task. Returns what they were computed from
/// and the typical task, or `None` when nothing was due.
pub async fn refresh(
    store: &dyn Store,
    goal: &str,
    last: Option<&(RankedFrom, Instant, u64)>,
) -> Result<Option<(RankedFrom, u64)>, crate::store::StoreError> {
    let Some(status) = store.goal_status(goal).await? else {
        return Ok(None);
    };
    if status.state != GoalState::Active {
        return Ok(None);
    }
    let from = RankedFrom {
        fingerprint: status.fingerprint.clone(),
        total: status.total,
        done: status.count(crate::domain::TaskStatus::Done),
    };
    match last {
        // A plan is ranked as it is written: with nothing finished there is
        // nothing new to learn (a fan-out that finishes within a second costs
        // no refresh at all).
        None if from.done == 0 => return Ok(Some((from, TYPICAL_TASK_MS))),
        None => {}
        Some((seen, at, _)) => {
            let pause = LOOK_EVERY + PER_TASK * status.total.min(100_000) as u32;
            if *seen == from || at.elapsed() < pause {
                return Ok(None);
            }
        }
    }
    let (Some(dag), tasks) = (store.dag(goal).await?, store.tasks(goal).await?) else {
        return Ok(None);
    };
    let (mut ranks, typical) = goal_ranks(&dag, &tasks);
    // Only what changed is written: most refreshes move a few ranks.
    for task in &tasks {
        if let Some(rank) = ranks.get(&task.id)
            && task.rank_ms == Some(rank.rank_ms)
            && task.estimate_ms == Some(rank.estimate_ms)
            && task.estimate_source == Some(rank.source)
        {
            ranks.remove(&task.id);
        }
    }
    if !ranks.is_empty() || last.is_none_or(|(_, _, written)| *written != typical) {
        let written = store
            .rerank(goal, &status.fingerprint, typical, &ranks)
            .await?;
        tracing::debug!(goal, written, typical_ms = typical, "ranks refreshed");
    }
    Ok(Some((from, typical)))
}

impl Actor for Ranker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(LOOK_EVERY, |ranker, ctx| {
            let store = ranker.store.clone();
            let goals = ranker.goals.clone();
            let last = ranker.last.clone();
            // One pass at a time; its results are kept for the next.
            ctx.wait(
                async move {
                    let mut done = Vec::new();
                    for goal in goals {
                        match refresh(store.as_ref(), &goal, last.get(&goal)).await {
                            Ok(Some((from, typical))) => done.push((goal, from, typical)),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(goal = %goal, error = %e, "cannot refresh the goal's ranks; trying again next pass")
                            }
                        }
                    }
                    done
                }
                .into_actor(ranker)
                .map(|done, ranker, _| {
                    for (goal, from, typical) in done {
                        ranker.last.insert(goal, (from, Instant::now(), typical));
                    }
                }),
            );
        });
    }
}

impl Handler<GoalAdded> for Ranker {
    type Result = ();

    fn handle(&mut self, msg: GoalAdded, _: &mut Self::Context) {
        if !self.goals.contains(&msg.goal) {
            self.goals.push(msg.goal);
        }
    }
}
