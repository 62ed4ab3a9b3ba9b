//! Faults between a porki "process" and Redis, through `support::proxy`: a link
//! that silently stops forwarding (no reset, replies never come) and a reply
//! lost after Redis ran the request.

use std::sync::Arc;
use std::time::Duration;

use porki::domain::TaskStatus;

use crate::support::proxy::Proxy;
use crate::support::runtime::*;
use crate::support::{RedisServer, ids, nodes, plan, temp_dir, wait_until};

#[test]
fn a_holder_cut_off_from_redis_stops_its_call_before_another_process_takes_the_task() {
    // Regression: each renewal of a holder whose connection silently dropped
    // blocked for the client's 30 s response timeout, while the lock expired and
    // another process reclaimed the task: both ran it (10.6 s of overlap seen with
    // a 0.9 s lease).
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let dag = plan("g", nodes(&ids("t", 1)), &[]);
    let record = Arc::new(Record::default());
    let mut cut_off = ScriptedProvider::new(dag.clone(), "a", record.clone());
    cut_off.delay = Duration::from_secs(20);
    let project_a = project(&temp_dir("partition-a"), &[("a1", "g")]);
    let a = spawn_runtime(
        StoreKind::Redis(proxy.url()),
        Arc::new(cut_off),
        project_a,
        |_| {},
    );
    wait_until(Duration::from_secs(20), "a runs the task", || {
        !record.executions().is_empty()
    });
    proxy.freeze();
    let mut healthy = ScriptedProvider::new(dag, "b", record.clone());
    healthy.delay = Duration::from_millis(200);
    let project_b = project(&temp_dir("partition-b"), &[("b1", "g")]);
    let b = spawn_runtime(
        StoreKind::Redis(server.url()),
        Arc::new(healthy),
        project_b,
        |_| {},
    );
    assert_eq!(join_within(b, LIMIT), 0, "b finishes the goal");
    proxy.thaw();
    assert_eq!(
        join_within(a, LIMIT),
        0,
        "a sees the goal complete once it is back"
    );
    let runs = record.executions();
    let (first, second) = (&runs[0], &runs[1]);
    assert_eq!(
        (first.process.as_str(), second.process.as_str()),
        ("a", "b")
    );
    let stopped = first.ended.expect("a's call was stopped");
    assert!(first.finished.is_none(), "a's call did not run to its end");
    assert!(
        stopped <= second.started,
        "a stopped {:?} after b started: both ran the task at once",
        stopped - second.started
    );
    assert_eq!(runs.len(), 2);
}

#[test]
fn a_completion_whose_reply_is_lost_is_recognised_and_the_task_it_claimed_is_kept() {
    // Regression: a transport error on completion discarded a finished result and
    // spent an attempt, and a lost complete_and_claim reply left the task it
    // claimed under a token nobody knew until the reaper charged it an attempt.
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let tasks = ids("t", 6);
    let dag = plan("g", nodes(&tasks), &[]);
    let record = Arc::new(Record::default());
    let mut provider = ScriptedProvider::new(dag, "p1", record.clone());
    provider.delay = Duration::from_millis(50);
    // The completion of t02 (its result text is "t02 by p1") reaches Redis; its reply does not.
    proxy.cut_after_request_with(b"t02 by p1");
    let store = StoreKind::Redis(proxy.url());
    let project = project(&temp_dir("lost-reply"), &[("solo", "g")]);
    let run = spawn_runtime(store, Arc::new(provider), project, |_| {});
    assert_eq!(join_within(run, LIMIT), 0);
    assert!(proxy.cut_done(), "the reply of t02's completion was cut");
    for (id, (status, _, attempt)) in final_tasks(&StoreKind::Redis(server.url()), "g") {
        assert_eq!(status, TaskStatus::Done, "{id}");
        assert_eq!(attempt, 1, "{id}: no attempt spent on a lost reply");
    }
    let counts = record.counts();
    assert!(
        counts.values().all(|&n| n == 1),
        "every task ran once: {counts:?}"
    );
    assert_eq!(counts.len(), tasks.len());
}
