//! Goal events on Redis Cluster: each goal's `events:{G}` is a shard channel
//! (`SSUBSCRIBE`, published with `SPUBLISH` by the scripts), which lives on the
//! node owning the goal's slot, so a goal's events travel with its keys.
//!
//! The feed subscribes to the channel of every goal this process works on, over
//! one cluster connection on RESP3 whose pushes come here, and leaves it when
//! the goal finishes or is gone (`events.rs`). Subscriptions follow
//! the slots: a node that gives a slot away unsubscribes its channels
//! (`sunsubscribe`), which this feed subscribes to again at once (the client
//! follows `MOVED` to the new owner); the client itself re-subscribes after a
//! failover or a topology refresh. The feed does not take that on trust: each
//! second it asks, on the connection that serves each goal's slot, how many
//! shard channels that connection is subscribed to (`CLIENT INFO`), and
//! subscribes again to the goals of a connection that has fewer than its share
//! (a connection replaced after a failover comes back with none). That check is
//! also what makes the client notice a dead or moved node while nothing else is
//! sent on this connection. After every (re)subscription the feed sends
//! [`EventKind::Resync`]: messages published while the channel had no
//! subscriber are lost, so agents look again.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::conn::cluster_client;
use super::events::{EventFeed, Subscription};
use crate::store::{EventKind, StoreEvent, keys};

/// How often the feed checks its subscriptions.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Forwards the shard channels of the watched goals to the in-process channel
/// until the store is dropped.
pub(super) async fn feed_shard_events(url: String, nodes: Vec<String>, feed: Weak<EventFeed>) {
    let (inbox, mut changes) = mpsc::unbounded_channel();
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
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { return };
                let Some(feed) = feed.upgrade() else { return };
                on_push(&mut conn, &feed, &mut subscribed, push).await;
            }
            change = changes.recv() => match change {
                None => return,
                Some(Subscription::Add(goal, done)) => {
                    subscribe(&mut conn, &goal).await;
                    let _ = done.send(());
                }
                Some(Subscription::Drop(goal)) => {
                    subscribed.remove(&goal);
                    if let Err(e) = conn.sunsubscribe(keys::events(&goal)).await {
                        tracing::debug!(goal = %goal, error = %e, "event feed could not leave the goal's events");
                    }
                }
            },
            _ = check.tick() => {
                let Some(watched) = feed.upgrade().map(|f| f.watched()) else { return };
                for goal in unsubscribed(&conn, &watched).await {
                    tracing::info!(goal = %goal, "the goal's events had no subscription on its node; subscribing again");
                    subscribe(&mut conn, &goal).await;
                }
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
                feed.announce(event);
            }
        }
        // (The confirmation of a goal left meanwhile is no news.)
        PushKind::SSubscribe if feed.is_watched(&goal) => {
            if !subscribed.insert(goal.clone()) {
                tracing::info!(goal = %goal, "event feed subscribed again to the goal's events (its slot moved or its node failed over)");
            }
            let _ = feed.sender.send(StoreEvent {
                goal,
                kind: EventKind::Resync,
            });
        }
        // Either this process left the goal, or the node gave the goal's slot away.
        PushKind::SUnsubscribe if feed.is_watched(&goal) => {
            tracing::info!(goal = %goal, "the goal's slot left its node; subscribing on the new owner");
            subscribe(conn, &goal).await;
        }
        _ => {}
    }
}

/// The goals whose channel the connection serving their slot is not subscribed
/// to, judged by its count of shard subscriptions (`CLIENT INFO`, `ssub=`): a
/// connection with fewer than the goals it serves lost some, and all of them are
/// subscribed again (subscribing twice is harmless). A goal whose node does not
/// answer is left to the next check; the failed request makes the client
/// refresh its view of the cluster meanwhile.
async fn unsubscribed(conn: &ClusterConnection, goals: &[String]) -> Vec<String> {
    let asks = goals.iter().map(|goal| {
        let mut conn = conn.clone();
        let route = Route::with_key(keys::events(goal), SlotAddr::Master);
        async move {
            let answer = conn
                .route_command(
                    redis::cmd("CLIENT").arg("INFO").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
                .ok()
                .and_then(|v| String::from_redis_value(v).ok())?;
            let field = |name: &str| {
                answer
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
            };
            // laddr (the node's address) and id name the connection.
            let connection = format!("{}/{}", field("laddr")?, field("id")?);
            let subscribed: usize = field("ssub")?.parse().ok()?;
            Some((goal.clone(), connection, subscribed))
        }
    });
    let mut by_connection: HashMap<String, (usize, Vec<String>)> = HashMap::new();
    for (goal, connection, subscribed) in
        futures::future::join_all(asks).await.into_iter().flatten()
    {
        let entry = by_connection
            .entry(connection)
            .or_insert((subscribed, Vec::new()));
        entry.1.push(goal);
    }
    by_connection
        .into_values()
        .filter(|(subscribed, goals)| *subscribed < goals.len())
        .flat_map(|(_, goals)| goals)
        .collect()
}

/// A push's channel or payload as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
