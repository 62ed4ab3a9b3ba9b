//! `events:{G}` over Redis pub/sub, fanned out to in-process subscribers.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use super::RedisStore;
use crate::store::{EVENT_CHANNEL_CAPACITY, EventKind, StoreEvent, keys};

/// The in-process fan-out of `events:*`, fed by one subscriber connection started
/// on first use.
pub(super) struct EventFeed {
    sender: broadcast::Sender<StoreEvent>,
    started: OnceLock<()>,
}

impl EventFeed {
    /// A feed nobody listens to yet; the subscriber connection starts with the first.
    pub(super) fn new() -> Self {
        Self {
            sender: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            started: OnceLock::new(),
        }
    }
}

impl RedisStore {
    /// Subscribes to every goal's events (see [`crate::store::GoalStore::events`]).
    pub(super) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.events.sender.subscribe();
        self.events.started.get_or_init(|| {
            tokio::spawn(feed_events(
                self.client.clone(),
                Arc::downgrade(&self.events),
            ));
        });
        receiver
    }
}

/// Forwards `events:*` to the in-process channel until the store is dropped,
/// reconnecting with backoff; after a reconnect it sends [`EventKind::Resync`]
/// because messages published during the outage are lost (pub/sub keeps none).
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
                    let _ = sender.send(StoreEvent {
                        goal: String::new(),
                        kind: EventKind::Resync,
                    });
                }
                first = false;
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
