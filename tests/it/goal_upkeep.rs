//! Keeping goals right across processes and over time (issue 12). Here: the
//! event feed's first resync.

use std::time::Duration;

use porki::store::prelude::*;
use porki::store::{EventKind, RedisStore};

use crate::support::RedisServer;

// --- defect 14: the first subscription -----------------------------------------

#[tokio::test]
async fn the_single_redis_feed_sends_a_resync_after_its_first_subscription() {
    // What was published before the subscription was live is lost (pub/sub keeps
    // nothing): subscribers must be told to look again, the first time too.
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut events = store.events();
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s of subscribing")
        .unwrap();
    assert_eq!((first.goal.as_str(), first.kind), ("", EventKind::Resync));
}
