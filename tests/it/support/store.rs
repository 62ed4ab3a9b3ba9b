//! Test data for the store and the orchestrator: task ids, plans (`Dag`s),
//! and claiming from a store.

use std::time::Duration;

use porki::domain::{AgentKind, Dag, Node};
use porki::store::{
    AgentRecord, AgentState, ClaimOutcome, Lease, Recovery, Store, TaskResult, WriteDagOptions,
    write_plan,
};

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

/// Seeds goal `team`: `draft` (needs approval) ran and awaits it; `scan`
/// failed for good and `scan.recover` took its work over; `publish` waits for
/// both; a reviewer `rev` of role `qa` is registered.
pub async fn seed_team(store: &dyn Store) {
    let lease = Duration::from_secs(600);
    let dag = plan(
        "team",
        vec![
            Node {
                priority: 10,
                approval: true,
                ..Node::new("draft", "Draft the post")
            },
            Node {
                priority: 5,
                ..Node::new("scan", "Scan the archive")
            },
            Node::new("publish", "Publish"),
        ],
        &[("draft", "publish"), ("scan", "publish")],
    );
    write_plan(store, dag, &WriteDagOptions::default(), 100)
        .await
        .unwrap();
    let draft = claim(store, "team", "w1", lease).await.unwrap();
    assert_eq!(draft.task, "draft");
    store
        .complete(&draft, &TaskResult::default())
        .await
        .unwrap();
    let scan = claim(store, "team", "w1", lease).await.unwrap();
    assert_eq!(scan.task, "scan");
    store
        .fail(&scan, "archive offline", false, lease, Recovery::SameRole)
        .await
        .unwrap();
    store
        .register_agent(&AgentRecord {
            name: "rev".into(),
            goal: "team".into(),
            role: Some("qa".into()),
            kind: AgentKind::Reviewer,
            process: "host:1".into(),
            state: AgentState::Running,
        })
        .await
        .unwrap();
}
