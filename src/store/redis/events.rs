//! `events:{G}` fanned out to in-process subscribers. On one Redis, one pub/sub
//! connection takes every goal's channel (`PSUBSCRIBE events:*`); on a cluster,
//! each goal's channel is a shard channel in the goal's slot, subscribed to once
//! this process touches the goal (`shard_events.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::RedisStore;
use crate::store::{EVENT_CHANNEL_CAPACITY, EventKind, StoreEvent, keys};

/// The in-process fan-out of the goals' events, fed by a subscriber connection
/// started on first use.
pub(super) struct EventFeed {
    pub(super) sender: broadcast::Sender<StoreEvent>,
    started: OnceLock<()>,
    source: Source,
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
/// inbox for goals added after it started (with whom to tell once subscribed).
#[derive(Default)]
pub(super) struct Watched {
    pub(super) goals: HashSet<String>,
    pub(super) inbox: Option<mpsc::UnboundedSender<NewGoal>>,
}

/// A goal to subscribe to, and a caller waiting until it is.
pub(super) type NewGoal = (String, oneshot::Sender<()>);

impl EventFeed {
    fn new(source: Source) -> Self {
        Self {
            sender: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            started: OnceLock::new(),
            source,
        }
    }

    /// A feed of one Redis; nobody listens yet.
    pub(super) fn single(client: redis::Client) -> Self {
        Self::new(Source::Single(client))
    }

    /// A feed of the cluster behind `nodes`; nobody listens yet.
    pub(super) fn cluster(url: &str, nodes: Vec<String>) -> Self {
        Self::new(Source::Cluster {
            url: url.to_string(),
            nodes,
            watched: Mutex::default(),
        })
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
        inbox.send((goal.to_string(), subscribed)).ok()?;
        Some(wait)
    }

    /// The cluster feed's goals so far, its inbox set for the ones to come.
    pub(super) fn take_watched(&self, inbox: mpsc::UnboundedSender<NewGoal>) -> Vec<String> {
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
                            {
                                let _ = sender.send(event);
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
