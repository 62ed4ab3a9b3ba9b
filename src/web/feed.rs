//! What tells open pages to refresh: one [`Feed`] per server turns the store's
//! goal events into [`Change`]s, throttled, and `/events` streams them to each
//! page as server-sent events.
//!
//! The store announces promotions, retries, failures and goal ends
//! ([`crate::store::GoalStore::events`]) but not claims, completions that
//! unblock nothing, or an agent's pause: so while a page listens, the feed also
//! looks once a second and reports what changed. A look costs little: the goal
//! list, the summary (counts, no tasks) of each goal still moving, and the
//! agents in one read. A settled goal (finished, nothing running or awaiting
//! approval) is read again only when an event names it, or every
//! [`SETTLED_EVERY`] looks (on a cluster this process hears no goal's events,
//! and a retry can wake a failed goal). Changes are coalesced for [`THROTTLE`]
//! so a burst of events makes one refresh.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use actix_web::web::Bytes;
use futures::Stream;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use super::server::StoreSlot;
use crate::domain::TaskStatus;
use crate::store::prelude::*;
use crate::store::{EventKind, GoalStatus, StoreError};

/// How long changes are gathered before pages are told.
pub(super) const THROTTLE: Duration = Duration::from_millis(150);
/// How often unannounced changes are looked for while a page listens.
const POLL: Duration = Duration::from_secs(1);
/// Every how many looks settled goals are read again though no event named them.
const SETTLED_EVERY: u64 = 15;
/// A comment sent this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Something changed: in one goal, or (`None`) possibly in all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// The goal, or `None` for everything (agents, a resync, missed events).
    pub goal: Option<String>,
}

impl Change {
    /// Whether a page about `goal` (`None`: the front page) should refresh.
    fn concerns(&self, goal: Option<&str>) -> bool {
        match (&self.goal, goal) {
            (None, _) | (_, None) => true,
            (Some(changed), Some(shown)) => changed == shown,
        }
    }
}

/// The server's fan-out of changes to open pages.
#[derive(Clone)]
pub(super) struct Feed {
    sender: broadcast::Sender<Change>,
}

impl Feed {
    /// A feed nobody listens to yet.
    pub(super) fn new() -> Self {
        Self {
            sender: broadcast::channel(256).0,
        }
    }

    /// Turns store events and polled differences into changes until the server stops.
    pub(super) async fn run(self, slot: StoreSlot) {
        let store = slot.wait().await;
        let mut events = store.events();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut seen = Fingerprints::default();
        let mut pending: BTreeSet<Option<String>> = BTreeSet::new();
        let mut flush_at: Option<Instant> = None;
        loop {
            let flush = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) if event.kind == EventKind::Resync => {
                        seen.heard(None);
                        pending.insert(None);
                    }
                    Ok(event) => {
                        seen.heard(Some(&event.goal));
                        pending.insert(Some(event.goal));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        seen.heard(None);
                        pending.insert(None);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(POLL).await;
                        events = store.events();
                    }
                },
                _ = poll.tick() => {
                    if self.sender.receiver_count() > 0
                        && let Ok(changed) = seen.update(&*store).await
                    {
                        pending.extend(changed);
                    }
                }
                () = flush => {
                    flush_at = None;
                    let everything = pending.contains(&None);
                    for goal in std::mem::take(&mut pending) {
                        if !everything || goal.is_none() {
                            let _ = self.sender.send(Change { goal });
                        }
                    }
                }
            }
            if !pending.is_empty() && flush_at.is_none() {
                flush_at = Some(Instant::now() + THROTTLE);
            }
        }
    }

    /// The server-sent events for a page about `goal` (`None`: the front page):
    /// a `change` event per relevant change, and a comment now and then.
    pub(super) fn stream(
        &self,
        goal: Option<String>,
    ) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + use<> {
        let receiver = self.sender.subscribe();
        // The first message sets the browser's reconnect delay.
        let start = Bytes::from_static(b"retry: 2000\n\n");
        futures::stream::unfold(
            (receiver, goal, Some(start)),
            |(mut receiver, goal, first)| async move {
                if let Some(first) = first {
                    return Some((Ok(first), (receiver, goal, None)));
                }
                loop {
                    let message = match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
                        Err(_idle) => Bytes::from_static(b": keep-alive\n\n"),
                        Ok(Ok(change)) if change.concerns(goal.as_deref()) => sse_change(&change),
                        Ok(Ok(_)) => continue,
                        Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                            sse_change(&Change { goal: None })
                        }
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    };
                    return Some((Ok(message), (receiver, goal, None)));
                }
            },
        )
    }
}

/// One `change` event; its data is `{"goal": …}` (null: everything).
fn sse_change(change: &Change) -> Bytes {
    let data = serde_json::json!({ "goal": change.goal });
    Bytes::from(format!("event: change\ndata: {data}\n\n"))
}

/// A hash of each goal's summary and of the agents (records, pauses, newest
/// problem, liveness), to notice changes the store does not announce.
#[derive(Default)]
struct Fingerprints {
    goals: BTreeMap<String, Seen>,
    agents: u64,
    /// Goals an event named since the last look; `everything` after a resync.
    heard: BTreeSet<String>,
    everything: bool,
    looks: u64,
}

/// What the last look saw of a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    hash: u64,
    /// Finished with nothing running or awaiting approval: nothing changes it
    /// but a person (a retry, a new plan) or the cleanup.
    settled: bool,
}

fn hash_of(value: &impl std::fmt::Debug) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!("{value:?}").hash(&mut hasher);
    hasher.finish()
}

/// Whether nothing but a person or the cleanup changes the goal any more.
fn settled(status: &Option<GoalStatus>) -> bool {
    status.as_ref().is_none_or(|s| {
        let count = |state| s.counts.get(&state).copied().unwrap_or(0);
        s.state.is_terminal()
            && count(TaskStatus::Running) == 0
            && count(TaskStatus::AwaitingApproval) == 0
    })
}

impl Fingerprints {
    /// An event named `goal` (`None`: maybe every goal): read it at the next look.
    fn heard(&mut self, goal: Option<&str>) {
        match goal {
            Some(goal) => {
                self.heard.insert(goal.to_string());
            }
            None => self.everything = true,
        }
    }

    /// Reads the store; returns what changed since the last call.
    async fn update(&mut self, store: &dyn Store) -> Result<Vec<Option<String>>, StoreError> {
        let everything =
            std::mem::take(&mut self.everything) || self.looks.is_multiple_of(SETTLED_EVERY);
        self.looks += 1;
        let heard = std::mem::take(&mut self.heard);
        let mut changed = Vec::new();
        let mut goals = BTreeMap::new();
        for goal in store.goals().await? {
            let seen = match self.goals.get(&goal) {
                Some(seen) if seen.settled && !everything && !heard.contains(&goal) => *seen,
                before => {
                    let status = store.goal_status(&goal).await?;
                    let seen = Seen {
                        hash: hash_of(&status),
                        settled: settled(&status),
                    };
                    if before.map(|b| b.hash) != Some(seen.hash) {
                        changed.push(Some(goal.clone()));
                    }
                    seen
                }
            };
            goals.insert(goal, seen);
        }
        if !goals.keys().eq(self.goals.keys()) {
            changed.push(None);
        }
        self.goals = goals;
        let hash = hash_of(&store.agent_details(1).await?);
        if hash != self.agents {
            self.agents = hash;
            changed.push(None);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Dag, Node};
    use crate::store::{ClaimOutcome, MemoryStore, Recovery, WriteDagOptions, write_plan};

    #[tokio::test]
    async fn a_settled_goal_is_read_again_when_named_or_now_and_then() {
        let store = MemoryStore::new();
        let dag = Dag::new("g", vec![Node::new("a", "Only")], &[]);
        write_plan(&store, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        let ClaimOutcome::Claimed(a) = store
            .claim("g", "w1", None, Duration::from_secs(60))
            .await
            .unwrap()
        else {
            panic!("nothing to claim")
        };
        store
            .fail(&a, "broken", false, Duration::ZERO, Recovery::Never)
            .await
            .unwrap();
        let mut seen = Fingerprints::default();
        let g = Some("g".to_string());
        assert!(seen.update(&store).await.unwrap().contains(&g));
        assert!(seen.goals["g"].settled);
        // A retry, which the feed did not hear of: seen at the next full look.
        store.retry_task("g", "a").await.unwrap();
        for _ in 1..SETTLED_EVERY {
            assert_eq!(seen.update(&store).await.unwrap(), Vec::new());
        }
        assert_eq!(seen.update(&store).await.unwrap(), vec![g.clone()]);
        assert!(!seen.goals["g"].settled);
        // An event names it: read at the next look.
        let b = store
            .claim("g", "w1", None, Duration::from_secs(60))
            .await
            .unwrap();
        let ClaimOutcome::Claimed(b) = b else {
            panic!("{b:?}")
        };
        store
            .fail(&b, "broken", false, Duration::ZERO, Recovery::Never)
            .await
            .unwrap();
        assert_eq!(seen.update(&store).await.unwrap(), vec![g.clone()]);
        store.retry_task("g", "a").await.unwrap();
        seen.heard(Some("g"));
        assert_eq!(seen.update(&store).await.unwrap(), vec![g]);
    }

    #[test]
    fn pages_hear_about_their_goal_and_about_everything() {
        let one = Change {
            goal: Some("g".into()),
        };
        let all = Change { goal: None };
        assert!(one.concerns(Some("g")) && one.concerns(None));
        assert!(!one.concerns(Some("h")));
        assert!(all.concerns(Some("h")));
        assert_eq!(
            sse_change(&one),
            Bytes::from("event: change\ndata: {\"goal\":\"g\"}\n\n")
        );
    }
}
