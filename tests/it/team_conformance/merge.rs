//! A merge into the goal branch that conflicted becomes a `.merge` task
//! (issue 20, docs/isolation.md): the task waits for it and is DONE with its
//! commit; a conflicting merge task is taken over by the next; two per task,
//! then the task fails naming the files.

use std::sync::Arc;
use std::time::Duration;

use porki::domain::{MergeConflict, TaskKind, TaskStatus};
use porki::store::prelude::*;
use porki::store::{
    ClaimScope, ConflictOutcome, EventKind, FailOutcome, GoalState, Recovery, StoreError,
    StoreEvent, TaskResult,
};

use super::{added, approval, edges, goal_state, stored_plan, take_task, task, work};
use crate::store_conformance::{SHORT, counts, result, write, write_with_attempts};
use crate::support::plan;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A conflict of `task`'s work with `a`'s, in `files`.
fn conflict(task: &str, files: &[&str]) -> MergeConflict {
    MergeConflict {
        commit: "1111111111111111111111111111111111111111".into(),
        files: files.iter().map(|f| f.to_string()).collect(),
        ours: vec![task.to_string()],
        theirs: vec!["a".into()],
    }
}

/// `result(text)` merged as [`COMMIT`].
fn merged(text: &str) -> TaskResult {
    TaskResult {
        commit: Some(COMMIT.into()),
        diffstat: Some(" f.txt | 2 +-".into()),
        ..result(text)
    }
}

fn merging(task: &str, subject: &str) -> ConflictOutcome {
    ConflictOutcome::Merging {
        task: task.into(),
        subject: subject.into(),
    }
}

/// The next event of goal `g` that is not a resync.
async fn next_event(events: &mut tokio::sync::broadcast::Receiver<StoreEvent>) -> EventKind {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s")
            .expect("event channel open");
        if event.kind != EventKind::Resync && event.goal == "g" {
            return event.kind;
        }
    }
}

pub async fn a_conflict_blocks_the_task_on_a_merge_task_whose_completion_completes_it(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let mut events = store.events();
    // The Redis feed subscribes in the background; give it a moment to be live.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tasks = vec![work("x", Some("w")), work("a", None), work("d", None)];
    write(store, plan("g", tasks, &[("x", "d")])).await;
    assert_eq!(next_event(&mut events).await, EventKind::Ready);
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let clash = conflict("x", &["f.txt", "g.txt"]);
    let outcome = store
        .merge_conflict(&x, &result("x"), &clash)
        .await
        .unwrap();
    assert_eq!(outcome, merging("x.merge", "x"));
    assert_eq!(
        next_event(&mut events).await,
        EventKind::Ready,
        "idle agents wake for the merge task"
    );
    // The same request sent again adds nothing.
    assert_eq!(
        store
            .merge_conflict(&x, &result("x"), &clash)
            .await
            .unwrap(),
        outcome
    );
    let blocked = task(store, "x").await;
    assert_eq!(
        (
            blocked.status,
            blocked.pending_deps,
            blocked.progress.as_str()
        ),
        (TaskStatus::Blocked, 1, "x")
    );
    assert_eq!(blocked.commit, None);
    match store.complete(&x, &result("x")).await {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("the conflicting attempt no longer holds x, got {other:?}"),
    }
    let m = task(store, "x.merge").await;
    assert_eq!(
        (m.status, m.kind, m.of.as_deref(), m.role.as_deref()),
        (TaskStatus::Ready, TaskKind::Merge, Some("x"), Some("w"))
    );
    assert_eq!(m.conflict, Some(clash.clone()));
    let notes = m.notes.unwrap();
    assert!(
        notes.contains("f.txt, g.txt") && notes.contains("of x"),
        "{notes}"
    );
    assert!(notes.contains("with a"), "{notes}");
    assert_eq!(counts(store).await, [2, 2, 0, 0, 0, 0]);
    let (nodes, plan_edges) = stored_plan(store).await;
    assert!(nodes.contains(&added(
        "x.merge",
        "Merge: Task x",
        TaskKind::Merge,
        "x",
        Some("w")
    )));
    assert_eq!(plan_edges, edges(&[("x", "d"), ("x.merge", "x")]));

    let m = take_task(store, ClaimScope::only("w"), "x.merge").await;
    let done = store.complete(&m, &merged("resolved")).await.unwrap();
    assert_eq!(done.promoted, ["d"], "x is DONE, and d goes on");
    let x = task(store, "x").await;
    assert_eq!(
        (x.status, x.commit.as_deref(), x.pending_deps),
        (TaskStatus::Done, Some(COMMIT), 0)
    );
    assert_eq!(x.diffstat.as_deref(), Some(" f.txt | 2 +-"));
    assert_eq!(x.progress, "x", "x keeps what its attempt reported");
    assert_eq!(task(store, "x.merge").await.commit.as_deref(), Some(COMMIT));
    for id in ["a", "d"] {
        let lease = take_task(store, ClaimScope::builder(None), id).await;
        store.complete(&lease, &result(id)).await.unwrap();
    }
    assert_eq!(goal_state(store).await, GoalState::Complete);
    assert_eq!(counts(store).await, [0, 0, 0, 0, 4, 0]);
}

pub async fn a_conflicting_merge_task_is_taken_over_and_a_third_conflict_fails_the_task(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    write(
        store,
        plan("g", vec![work("x", None), work("d", None)], &[("x", "d")]),
    )
    .await;
    let x = take_task(store, ClaimScope::builder(None), "x").await;
    let first = store
        .merge_conflict(&x, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(first.unwrap(), merging("x.merge", "x"));
    let m1 = take_task(store, ClaimScope::builder(None), "x.merge").await;
    let second = store
        .merge_conflict(&m1, &result("m1"), &conflict("x", &["g.txt"]))
        .await;
    assert_eq!(second.unwrap(), merging("x.merge-2", "x"));
    let taken = task(store, "x.merge").await;
    assert_eq!(
        (taken.status, taken.recovered_by.as_deref()),
        (TaskStatus::Failed, Some("x.merge-2"))
    );
    assert!(
        taken.last_error.unwrap().contains("g.txt"),
        "names the files"
    );
    assert_eq!(task(store, "x").await.status, TaskStatus::Blocked);
    let status = store.goal_status("g").await.unwrap().unwrap();
    assert_eq!((status.state, status.superseded), (GoalState::Active, 1));
    let m2 = task(store, "x.merge-2").await;
    assert_eq!((m2.of.as_deref(), m2.cycle), (Some("x"), 2));
    let (_, plan_edges) = stored_plan(store).await;
    assert_eq!(plan_edges, edges(&[("x", "d"), ("x.merge-2", "x")]));
    assert_eq!(counts(store).await, [2, 1, 0, 0, 0, 1]);

    let m2 = take_task(store, ClaimScope::builder(None), "x.merge-2").await;
    let third = store
        .merge_conflict(&m2, &result("m2"), &conflict("x", &["h.txt", "i.txt"]))
        .await;
    assert_eq!(
        third.unwrap(),
        ConflictOutcome::Failed {
            subject: "x".into()
        }
    );
    let x = task(store, "x").await;
    assert_eq!(x.status, TaskStatus::Failed);
    let error = x.last_error.unwrap();
    assert!(error.contains("h.txt, i.txt"), "{error}");
    assert!(error.contains("x.merge-2"), "{error}");
    let m2 = task(store, "x.merge-2").await;
    assert_eq!(
        (m2.status, m2.recovered_by.as_deref()),
        (TaskStatus::Failed, Some("x")),
        "x is what to retry"
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert_eq!(counts(store).await, [1, 0, 0, 0, 0, 3]);
    // Retried, x runs again, and its next conflict fails it at once.
    store.retry_task("g", "x").await.unwrap();
    assert_eq!(goal_state(store).await, GoalState::Active);
    let again = take_task(store, ClaimScope::builder(None), "x").await;
    let fourth = store
        .merge_conflict(&again, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(
        fourth.unwrap(),
        ConflictOutcome::Failed {
            subject: "x".into()
        }
    );
    let x = task(store, "x").await;
    assert_eq!(x.status, TaskStatus::Failed);
    assert!(x.last_error.unwrap().contains("f.txt"));
    assert_eq!(
        store.tasks("g").await.unwrap().len(),
        4,
        "no merge task added"
    );
}

pub async fn a_merge_task_failing_for_good_fails_the_task_it_merges(store: Arc<dyn Store>) {
    let store = &*store;
    write(
        store,
        plan("g", vec![work("x", None), work("d", None)], &[("x", "d")]),
    )
    .await;
    let x = take_task(store, ClaimScope::builder(None), "x").await;
    let outcome = store
        .merge_conflict(&x, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("x.merge", "x"));
    let m = take_task(store, ClaimScope::builder(None), "x.merge").await;
    let failed = store
        .fail(&m, "gave up", false, SHORT, Recovery::SameRole)
        .await
        .unwrap();
    assert_eq!(
        failed,
        FailOutcome::Failed,
        "a merge task is never recovered"
    );
    let x = task(store, "x").await;
    assert_eq!(
        (x.status, x.pending_deps, x.last_error.as_deref()),
        (
            TaskStatus::Failed,
            0,
            Some("its merge task x.merge failed: gave up")
        )
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
    match store.retry_task("g", "x.merge").await {
        Err(StoreError::Superseded { by, .. }) => assert_eq!(by, "x"),
        other => panic!("x is what to retry, got {other:?}"),
    }

    // Retried, x runs again and its next conflict gets its second merge task,
    // whose completion completes it.
    store.retry_task("g", "x").await.unwrap();
    assert_eq!(goal_state(store).await, GoalState::Active);
    let again = take_task(store, ClaimScope::builder(None), "x").await;
    let outcome = store
        .merge_conflict(&again, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("x.merge-2", "x"));
    let m2 = take_task(store, ClaimScope::builder(None), "x.merge-2").await;
    assert_eq!(
        store.complete(&m2, &merged("m2")).await.unwrap().promoted,
        ["d"]
    );
    assert_eq!(task(store, "x").await.commit.as_deref(), Some(COMMIT));
    let d = take_task(store, ClaimScope::builder(None), "d").await;
    assert!(
        store
            .complete(&d, &result("d"))
            .await
            .unwrap()
            .goal_complete
    );
    assert_eq!(counts(store).await, [0, 0, 0, 0, 3, 1]);
}

pub async fn dropping_a_merge_task_fails_the_task_it_merges(store: Arc<dyn Store>) {
    let store = &*store;
    write(store, plan("g", vec![work("x", None)], &[])).await;
    let x = take_task(store, ClaimScope::builder(None), "x").await;
    let outcome = store
        .merge_conflict(&x, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("x.merge", "x"));
    store.drop_task("g", "x.merge", "not now").await.unwrap();
    let x = task(store, "x").await;
    assert_eq!(
        (x.status, x.last_error.as_deref()),
        (
            TaskStatus::Failed,
            Some("its merge task x.merge failed: not now")
        )
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert_eq!(counts(store).await, [0, 0, 0, 0, 0, 2]);
}

pub async fn merge_tasks_of_added_work_are_named_after_the_planned_task(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![work("y", Some("w")), work("d", None)];
    write(store, plan("g", tasks, &[("y", "d")])).await;
    let y = take_task(store, ClaimScope::only("w"), "y").await;
    store
        .fail(&y, "broke", false, SHORT, Recovery::SameRole)
        .await
        .unwrap();
    let rec = take_task(store, ClaimScope::only("w"), "y.recover").await;
    let outcome = store
        .merge_conflict(&rec, &result("rec"), &conflict("y.recover", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("y.merge", "y.recover"));
    let m = task(store, "y.merge").await;
    assert_eq!(
        (m.of.as_deref(), m.role.as_deref()),
        (Some("y.recover"), Some("w"))
    );
    let m = take_task(store, ClaimScope::only("w"), "y.merge").await;
    assert_eq!(
        store.complete(&m, &merged("m")).await.unwrap().promoted,
        ["d"]
    );
    let rec = task(store, "y.recover").await;
    assert_eq!(
        (rec.status, rec.commit.as_deref()),
        (TaskStatus::Done, Some(COMMIT))
    );
    // A stale holder's conflict is refused.
    let stale = porki::store::Lease {
        token: "stale".into(),
        ..m
    };
    match store
        .merge_conflict(&stale, &result("m"), &conflict("y", &["f.txt"]))
        .await
    {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("a stale holder adds nothing, got {other:?}"),
    }
}

pub async fn a_task_needing_approval_awaits_it_once_its_merge_task_is_done(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![approval(work("x", None)), work("d", None)];
    write(store, plan("g", tasks, &[("x", "d")])).await;
    let x = take_task(store, ClaimScope::builder(None), "x").await;
    let outcome = store
        .merge_conflict(&x, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("x.merge", "x"));
    assert!(!task(store, "x.merge").await.needs_approval);
    let m = take_task(store, ClaimScope::builder(None), "x.merge").await;
    let done = store.complete(&m, &merged("m")).await.unwrap();
    assert!(done.promoted.is_empty(), "d waits for the approval");
    let x = task(store, "x").await;
    assert_eq!(
        (x.status, x.commit.as_deref()),
        (TaskStatus::AwaitingApproval, Some(COMMIT))
    );
    assert_eq!(store.approve("g", "x").await.unwrap().promoted, ["d"]);
}

pub async fn a_merge_task_whose_lease_expires_at_max_attempts_fails_the_task_it_merges(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let tasks = vec![work("x", None), work("d", None)];
    write_with_attempts(store, plan("g", tasks, &[("x", "d")]), 1).await;
    let x = take_task(store, ClaimScope::builder(None), "x").await;
    let outcome = store
        .merge_conflict(&x, &result("x"), &conflict("x", &["f.txt"]))
        .await;
    assert_eq!(outcome.unwrap(), merging("x.merge", "x"));
    let m = take_in_for(store, "x.merge", SHORT).await;
    tokio::time::sleep(SHORT * 2).await;
    let reaped = store.reap("g").await.unwrap();
    assert_eq!(reaped.failed, [m.task.as_str()]);
    let x = task(store, "x").await;
    assert_eq!(x.status, TaskStatus::Failed);
    let error = x.last_error.unwrap();
    assert!(
        error.starts_with("its merge task x.merge failed: lease expired"),
        "{error}"
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
}

/// Claims `id` of goal `g` for any builder under a `ttl` lease.
async fn take_in_for(store: &dyn Store, id: &str, ttl: Duration) -> porki::store::Lease {
    let claimed = store
        .claim_preferred("g", "x", ClaimScope::builder(None), ttl, Some(id))
        .await
        .unwrap();
    match claimed {
        porki::store::ClaimOutcome::Claimed(lease) if lease.task == id => lease,
        other => panic!("{id} is claimed, got {other:?}"),
    }
}
