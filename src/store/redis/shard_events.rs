//! Goal events on Redis Cluster: each goal's `events:{G}` is a shard channel
//! (`SSUBSCRIBE`, published with `SPUBLISH` by the scripts), which lives on the
//! node owning the goal's slot, so a goal's events travel with its keys.
//!
//! The feed subscribes to the channel of every goal this process touches, over
//! one cluster connection on RESP3 whose pushes come here. Subscriptions follow
//! the slots: the client re-subscribes a channel on the node that owns it after a
//! failover or a topology refresh, and a node that gives a slot away unsubscribes
//! its channels (`sunsubscribe`), which this feed subscribes to again (the client
//! follows `MOVED` to the new owner). A probe each second makes the client notice
//! a dead or moved node even while nothing else is sent on this connection. After
//! every (re)subscription the feed sends [`EventKind::Resync`]: messages published
//! while the channel had no subscriber are lost, so agents look again.

use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::conn::cluster_client;
use super::events::EventFeed;
use crate::store::{EventKind, StoreEvent, keys};

/// How often the feed probes the nodes of its goals.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Forwards the shard channels of the watched goals to the in-process channel
/// until the store is dropped.
pub(super) async fn feed_shard_events(url: String, nodes: Vec<String>, feed: Weak<EventFeed>) {
    let (inbox, mut new_goals) = mpsc::unbounded_channel();
    let Some(mut goals) = feed.upgrade().map(|f| f.take_watched(inbox)) else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    let (mut conn, mut pushes) = loop {
        let (push, pushes) = mpsc::unbounded_channel();
        let connected = match cluster_client(&url, &nodes, Some(push)) {
            Ok(client) => client.get_async_connection().await.map_err(Into::into),
            Err(e) => Err(e),
        };
        match connected {
            Ok(conn) => break (conn, pushes),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "event feed cannot reach the Redis Cluster");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if feed.strong_count() == 0 {
                    return;
                }
            }
        }
    };
    let mut subscribed: HashSet<String> = HashSet::new();
    for goal in goals.drain(..) {
        subscribe(&mut conn, &goal).await;
    }
    let mut probe = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { return };
                let Some(feed) = feed.upgrade() else { return };
                on_push(&mut conn, &feed, &mut subscribed, push).await;
            }
            goal = new_goals.recv() => {
                let Some((goal, subscribed)) = goal else { return };
                subscribe(&mut conn, &goal).await;
                let _ = subscribed.send(());
            }
            _ = probe.tick() => {
                let Some(watched) = feed.upgrade().map(|f| f.watched()) else { return };
                probe_nodes(&conn, &watched).await;
            }
        }
    }
}

/// Subscribes to `goal`'s shard channel; a failure is retried when the probe
/// makes the client refresh its view of the cluster.
async fn subscribe(conn: &mut ClusterConnection, goal: &str) {
    if let Err(e) = conn.ssubscribe(keys::events(goal)).await {
        tracing::warn!(goal = %goal, error = %e, "event feed cannot subscribe to the goal's events yet; retrying");
    }
}

/// Handles one push: a message, a (re)subscription, or a slot that moved away.
async fn on_push(
    conn: &mut ClusterConnection,
    feed: &EventFeed,
    subscribed: &mut HashSet<String>,
    push: PushInfo,
) {
    let mut data = push.data.into_iter().map(|v| text(&v));
    let channel = data.next().flatten().unwrap_or_default();
    let Some(goal) = keys::goal_of_events_channel(&channel).map(str::to_string) else {
        return;
    };
    match push.kind {
        PushKind::SMessage => {
            let payload = data.next().flatten().unwrap_or_default();
            if let Some(event) = StoreEvent::parse(&goal, &payload) {
                let _ = feed.sender.send(event);
            }
        }
        PushKind::SSubscribe => {
            if !subscribed.insert(goal.clone()) {
                tracing::info!(goal = %goal, "event feed subscribed again to the goal's events (its slot moved or its node failed over)");
            }
            let _ = feed.sender.send(StoreEvent {
                goal,
                kind: EventKind::Resync,
            });
        }
        PushKind::SUnsubscribe => {
            // porki never unsubscribes: the node gave the goal's slot away.
            tracing::info!(goal = %goal, "the goal's slot left its node; subscribing on the new owner");
            subscribe(conn, &goal).await;
        }
        _ => {}
    }
}

/// A cheap read of every watched goal's slot, whose only use is its side effect:
/// a dead node or a moved slot makes the client refresh the cluster's topology
/// and re-subscribe the channels where they now live.
async fn probe_nodes(conn: &ClusterConnection, goals: &[String]) {
    for goal in goals {
        let mut conn = conn.clone();
        let key = keys::goal(goal);
        tokio::spawn(async move {
            let _: Result<bool, _> = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
        });
    }
}

/// A push's channel or payload as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
