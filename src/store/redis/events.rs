//! `events:{G}` fanned out to in-process subscribers. On one Redis, one pub/sub
//! connection takes every goal's channel (`PSUBSCRIBE events:*`); on a cluster,
//! each goal's channel is a shard channel in the goal's slot, subscribed to once
//! this process works on the goal (runs a script that changes it), and left
//! once the goal finishes or is collected (`shard_events.rs`).
//!
//! A goal's end (`goal complete`, `goal failed`) also drops what the process
//! learned about it ([`Hints`]): per-goal state lives only while a goal is
//! worked on, and a later script on the goal (a retry) takes it up again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::RedisStore;
use super::declare::Hints;
use crate::store::{EVENT_CHANNEL_CAPACITY, EventKind, StoreEvent, keys};

/// The in-process fan-out of the goals' events, fed by a subscriber connection
/// started on first use.
pub(super) struct EventFeed {
    pub(super) sender: broadcast::Sender<StoreEvent>,
    started: OnceLock<()>,
    source: Source,
    /// The store's hints, dropped for a goal that ends.
    hints: Arc<Hints>,
}

/// Where the events come from.
enum Source {
    /// One Redis: every goal's channel through one pattern.
    Single(redis::Client),
    /// A cluster: one shard channel per goal this process touched.
    Cluster {
        url: String,
        nodes: Vec<String>,
        watched: Mutex<Watched>,
    },
}

/// The goals whose shard channels the cluster feed subscribes to, and the feed's
/// inbox for the changes made after it started.
#[derive(Default)]
pub(super) struct Watched {
    pub(super) goals: HashSet<String>,
    pub(super) inbox: Option<mpsc::UnboundedSender<Subscription>>,
}

/// A change the cluster feed makes to its subscriptions.
pub(super) enum Subscription {
    /// Subscribe to the goal's channel, and tell the caller waiting once it is.
    Add(String, oneshot::Sender<()>),
    /// Leave the goal's channel: the goal finished or is gone.
    Drop(String),
}

impl EventFeed {
    fn new(source: Source, hints: Arc<Hints>) -> Self {
        Self {
            sender: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            started: OnceLock::new(),
            source,
            hints,
        }
    }

    /// A feed of one Redis; nobody listens yet.
    pub(super) fn single(client: redis::Client, hints: Arc<Hints>) -> Self {
        Self::new(Source::Single(client), hints)
    }

    /// A feed of the cluster behind `nodes`; nobody listens yet.
    pub(super) fn cluster(url: &str, nodes: Vec<String>, hints: Arc<Hints>) -> Self {
        Self::new(
            Source::Cluster {
                url: url.to_string(),
                nodes,
                watched: Mutex::default(),
            },
            hints,
        )
    }

    /// Notes that this process works on `goal`. On a cluster its channel is
    /// subscribed to: when the feed runs, the answer resolves once it is, so that
    /// what the caller's script publishes next reaches this process.
    pub(super) fn watch(&self, goal: &str) -> Option<oneshot::Receiver<()>> {
        let Source::Cluster { watched, .. } = &self.source else {
            return None;
        };
        let mut watched = watched.lock().expect("watched goals lock");
        if !watched.goals.insert(goal.to_string()) {
            return None;
        }
        let inbox = watched.inbox.as_ref()?;
        let (subscribed, wait) = oneshot::channel();
        inbox
            .send(Subscription::Add(goal.to_string(), subscribed))
            .ok()?;
        Some(wait)
    }

    /// Drops what this process keeps about `goal`, which finished or is gone:
    /// its hints, and on a cluster its channel's subscription.
    pub(super) fn forget(&self, goal: &str) {
        self.hints.forget(goal);
        let Source::Cluster { watched, .. } = &self.source else {
            return;
        };
        let mut watched = watched.lock().expect("watched goals lock");
        if watched.goals.remove(goal)
            && let Some(inbox) = &watched.inbox
        {
            let _ = inbox.send(Subscription::Drop(goal.to_string()));
        }
    }

    /// Whether the cluster feed subscribes to `goal` (a slot that moved away
    /// unsubscribed it, or this process left it).
    pub(super) fn is_watched(&self, goal: &str) -> bool {
        match &self.source {
            Source::Cluster { watched, .. } => watched
                .lock()
                .expect("watched goals lock")
                .goals
                .contains(goal),
            Source::Single(_) => false,
        }
    }

    /// Forwards `event` to the in-process subscribers; a goal's end first
    /// drops what this process keeps about the goal.
    pub(super) fn announce(&self, event: StoreEvent) {
        if matches!(event.kind, EventKind::GoalComplete | EventKind::GoalFailed) {
            self.forget(&event.goal);
        }
        let _ = self.sender.send(event);
    }

    /// The cluster feed's goals so far, its inbox set for the changes to come.
    pub(super) fn take_watched(&self, inbox: mpsc::UnboundedSender<Subscription>) -> Vec<String> {
        match &self.source {
            Source::Cluster { watched, .. } => {
                let mut watched = watched.lock().expect("watched goals lock");
                watched.inbox = Some(inbox);
                watched.goals.iter().cloned().collect()
            }
            Source::Single(_) => Vec::new(),
        }
    }

    /// Every goal the cluster feed subscribes to.
    pub(super) fn watched(&self) -> Vec<String> {
        match &self.source {
            Source::Cluster { watched, .. } => {
                let watched = watched.lock().expect("watched goals lock");
                watched.goals.iter().cloned().collect()
            }
            Source::Single(_) => Vec::new(),
        }
    }
}

impl RedisStore {
    /// Subscribes to every goal's events (see [`crate::store::GoalStore::events`]).
    pub(super) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.events.sender.subscribe();
        self.events.started.get_or_init(|| {
            let feed = Arc::downgrade(&self.events);
            match &self.events.source {
                Source::Single(client) => {
                    tokio::spawn(feed_events(client.clone(), feed));
                }
                Source::Cluster { url, nodes, .. } => {
                    tokio::spawn(super::shard_events::feed_shard_events(
                        url.clone(),
                        nodes.clone(),
                        feed,
                    ));
                }
            }
        });
        receiver
    }
}

/// Forwards `events:*` to the in-process channel until the store is dropped,
/// reconnecting with backoff. After every subscription, the first one included,
/// it sends [`EventKind::Resync`]: pub/sub keeps nothing, so what was published
/// before the subscription was live (a `ready` while the feed was starting, or
/// during an outage) is lost, and subscribers look again.
async fn feed_events(client: redis::Client, feed: Weak<EventFeed>) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(keys::EVENTS_PATTERN).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let Some(sender) = feed.upgrade().map(|f| f.sender.clone()) else {
            return;
        };
        match connected {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(100);
                if !first {
                    tracing::info!("event feed reconnected to Redis");
                }
                first = false;
                let _ = sender.send(StoreEvent {
                    goal: String::new(),
                    kind: EventKind::Resync,
                });
                let mut messages = pubsub.on_message();
                loop {
                    let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
                    if feed.strong_count() == 0 {
                        return;
                    }
                    match next {
                        Ok(Some(message)) => {
                            let channel = message.get_channel_name().to_string();
                            let payload: String = message.get_payload().unwrap_or_default();
                            if let Some(event) = keys::goal_of_events_channel(&channel)
                                .and_then(|goal| StoreEvent::parse(goal, &payload))
                                && let Some(feed) = feed.upgrade()
                            {
                                feed.announce(event);
                            }
                        }
                        Ok(None) => break,
                        Err(_idle) => {}
                    }
                }
                tracing::warn!("event feed lost its Redis connection; reconnecting");
            }
            Err(e) => {
                first = false;
                tracing::warn!(error = %e, retry_in = ?backoff, "event feed cannot reach Redis");
            }
        }
        drop(sender);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
