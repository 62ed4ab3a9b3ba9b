//! The Ranker: keeps the ranks of the running goals' tasks up to date (issue 21,
//! `domain::rank`). A plan is ranked when it is written, and a task added at
//! run time gets a cheap rank in the script that adds it; this actor refreshes
//! the whole goal's ranks when its tasks finish (their durations teach the
//! estimates) or the plan grows, so claims, which read only the stored ranks,
//! follow what was learnt. Every process runs one; their refreshes compute the
//! same ranks from the same store, so which one writes does not matter.
//!
//! An idle goal costs nothing: a goal is looked at only after the store
//! announced tasks made READY in it (a completion that promoted, a task added,
//! a plan written), or every [`SAFETY_NET`] in case an announcement was missed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::domain::rank::{TYPICAL_TASK_MS, goal_ranks};
use crate::reaper::GoalAdded;
use tokio::sync::broadcast;

use crate::store::prelude::*;
use crate::store::{EventKind, GoalState};

/// How often the ranker looks for goals whose ranks may be out of date.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often a goal is looked at without an announcement.
const SAFETY_NET: Duration = Duration::from_secs(60);
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
    /// Goals with tasks made READY since they were last looked at, and when
    /// each was last looked at.
    dirty: HashSet<String>,
    looked: HashMap<String, Instant>,
}

impl Ranker {
    /// A ranker for `goals`.
    pub fn new(store: Arc<dyn Store>, goals: Vec<String>) -> Self {
        Self {
            store,
            goals,
            last: HashMap::new(),
            dirty: HashSet::new(),
            looked: HashMap::new(),
        }
    }
}

/// Refreshes `goal`'s ranks if they are out of date (`last`: what they were
/// last computed from, and the typical task written then): writes the ranks
/// that changed and the goal's typical task. Returns what they were computed
/// from and the typical task, or `None` when nothing was due.
pub async fn refresh(
    store: &dyn Store,
    goal: &str,
    last: Option<&(RankedFrom, u64)>,
) -> Result<Option<(RankedFrom, u64)>, crate::store::StoreError> {
    let Some(status) = store.goal_status(goal).await? else {
        return Ok(None);
    };
    if status.state != GoalState::Active || !status.ranked {
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
        Some((seen, _)) if *seen == from => return Ok(None),
        Some(_) => {}
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
    if !ranks.is_empty() || last.is_none_or(|(_, written)| *written != typical) {
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
        // Announcements mark goals to look at; a lagging or reconnected feed
        // marks them all.
        let mut events = self.store.events();
        let addr = ctx.address();
        actix::spawn(async move {
            loop {
                let goal = match events.recv().await {
                    Ok(event) if matches!(event.kind, EventKind::Ready | EventKind::Resync) => {
                        Some(event.goal)
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if addr.try_send(Touched(goal)).is_err() && !addr.connected() {
                    return;
                }
            }
        });
        ctx.run_interval(LOOK_EVERY, |ranker, ctx| {
            let store = ranker.store.clone();
            let now = Instant::now();
            // A goal announced since it was last looked at, once its pause is
            // over (a refresh reads every task: a big goal less often), or
            // once the safety net's time is up.
            let due = |goal: &String| {
                let looked = ranker.looked.get(goal).map(|at| now.duration_since(*at));
                let pause = ranker.last.get(goal).map_or(Duration::ZERO, |(from, _, _)| {
                    LOOK_EVERY + PER_TASK * from.total.min(100_000) as u32
                });
                looked.is_none_or(|l| l >= SAFETY_NET || (ranker.dirty.contains(goal) && l >= pause))
            };
            let goals: Vec<String> = ranker.goals.iter().filter(|g| due(g)).cloned().collect();
            for goal in &goals {
                ranker.dirty.remove(goal);
                ranker.looked.insert(goal.clone(), now);
            }
            let last = ranker.last.clone();
            // One pass at a time; its results are kept for the next.
            ctx.wait(
                async move {
                    let mut done = Vec::new();
                    for goal in goals {
                        let seen = last.get(&goal).map(|(from, _, typical)| (from.clone(), *typical));
                        match refresh(store.as_ref(), &goal, seen.as_ref()).await {
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

/// Tasks were made READY in a goal (`None`: in any goal, as far as is known).
#[derive(Message)]
#[rtype(result = "()")]
struct Touched(Option<String>);

impl Handler<Touched> for Ranker {
    type Result = ();

    fn handle(&mut self, msg: Touched, _: &mut Self::Context) {
        match msg.0 {
            // A resync's goal is empty: it concerns every goal.
            Some(goal) if !goal.is_empty() => {
                self.dirty.insert(goal);
            }
            _ => self.dirty.extend(self.goals.iter().cloned()),
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::rank::EstimateSource;
    use crate::domain::{Dag, Node};
    use crate::store::{ClaimOutcome, MemoryStore, TaskResult, WriteDagOptions, write_plan};

    fn node(id: &str, role: &str) -> Node {
        Node {
            role: Some(role.into()),
            ..Node::new(id, format!("Task {id}"))
        }
    }

    /// Claims `task` for an agent of `role`, holds it for `ms` and completes it.
    async fn run(store: &dyn Store, role: &str, task: &str, ms: u64) {
        let ClaimOutcome::Claimed(lease) = store
            .claim("g", "agent", Some(role), Duration::from_secs(60))
            .await
            .unwrap()
        else {
            panic!("nothing to claim for {role}");
        };
        assert_eq!(lease.task, task);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        store
            .complete(&lease, &TaskResult::default())
            .await
            .unwrap();
    }

    #[actix_rt::test]
    async fn finished_tasks_teach_each_role_its_estimate_and_an_unchanged_goal_is_left_alone() {
        let store = MemoryStore::new();
        let tasks = vec![
            node("build-1", "build"),
            node("build-2", "build"),
            node("docs-1", "docs"),
            node("docs-2", "docs"),
        ];
        let dag = Dag::new("g", tasks, &[]);
        write_plan(&store, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        let first = refresh(&store, "g", None).await.unwrap();
        let (from, typical) = first.clone().expect("a first look records the goal");
        assert_eq!(typical, TYPICAL_TASK_MS, "nothing finished: nothing learnt");
        run(&store, "build", "build-1", 300).await;
        run(&store, "docs", "docs-1", 20).await;
        let (from, typical) = refresh(&store, "g", Some(&(from, typical)))
            .await
            .unwrap()
            .expect("two tasks finished since");
        assert_eq!(from.done, 2);
        assert!(
            (160..1_000).contains(&typical),
            "the mean of 300 and 20 ms: {typical}"
        );
        let build = store.task("g", "build-2").await.unwrap().unwrap();
        let docs = store.task("g", "docs-2").await.unwrap().unwrap();
        assert_eq!(build.estimate_source, Some(EstimateSource::Measured));
        assert!(
            build.rank_ms.unwrap() >= 300 && docs.rank_ms.unwrap() < 300,
            "{build:?} {docs:?}"
        );
        // Nothing changed since: no refresh.
        assert_eq!(
            refresh(&store, "g", Some(&(from, typical))).await.unwrap(),
            None
        );
    }

    #[actix_rt::test]
    async fn a_goal_planned_without_ranking_is_never_refreshed() {
        let store = MemoryStore::new();
        let options = WriteDagOptions {
            ranked: false,
            ..WriteDagOptions::default()
        };
        let dag = Dag::new("g", vec![node("build-1", "build")], &[]);
        write_plan(&store, dag, &options, 100).await.unwrap();
        assert_eq!(refresh(&store, "g", None).await.unwrap(), None);
    }
}
