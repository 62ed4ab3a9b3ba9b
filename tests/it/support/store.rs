//! Test data for the store and the orchestrator: task ids, plans (`Dag`s),
//! and claiming from a store.

use std::time::Duration;

use porki::domain::{Dag, Node};
use porki::store::{ClaimOutcome, Lease, Store};

/// `n` task ids: `PREFIX00`, `PREFIX01`, …
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// A task titled `Task ID`, with `priority`.
pub fn node(id: &str, priority: i32) -> Node {
    Node {
        priority,
        ..Node::new(id, format!("Task {id}"))
    }
}

/// Tasks of priority 0 for `ids`.
pub fn nodes(ids: &[impl AsRef<str>]) -> Vec<Node> {
    ids.iter().map(|id| node(id.as_ref(), 0)).collect()
}

/// The plan of `goal`: `nodes`, and `edges` as (source, target).
pub fn plan(goal: &str, nodes: Vec<Node>, edges: &[(&str, &str)]) -> Dag {
    Dag::new(goal, nodes, edges)
}

/// Claims the next task of `goal` for `agent` (no role) under a `ttl` lease;
/// `None` when nothing is claimable.
pub async fn claim(store: &dyn Store, goal: &str, agent: &str, ttl: Duration) -> Option<Lease> {
    match store.claim(goal, agent, None, ttl).await.expect("claim") {
        ClaimOutcome::Claimed(lease) => Some(lease),
        ClaimOutcome::Empty { .. } => None,
    }
}
