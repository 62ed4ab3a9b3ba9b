//! Recovery of work that failed for good, claim scopes, and soft reassignment.

use std::sync::Arc;

use porki::domain::{TaskKind, TaskStatus, TeamLimits};
use porki::store::prelude::*;
use porki::store::{
    ClaimOutcome, ClaimScope, FailOutcome, GoalState, Recovery, ReviewVerdict, StoreError,
};

use super::{
    added, approval, assert_unknown, assert_wrong_state, edges, goal_state, review, stored_plan,
    take, take_in, take_task, task, task_in, work,
};
use crate::store_conformance::{LONG, SHORT, counts, result, write, write_with_attempts};
use crate::support::plan;

pub async fn work_failing_for_good_is_recovered_and_its_dependents_wait_for_the_recovery(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let tasks = vec![work("x", Some("w")), work("y", None), work("d", None)];
    write(store, plan("g", tasks, &[("x", "d"), ("y", "d")])).await;
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let failed = store
        .fail(&x, "broke", false, SHORT, Recovery::SameRole)
        .await
        .unwrap();
    assert_eq!(
        failed,
        FailOutcome::Recovering {
            task: "x.recover".into()
        }
    );
    let x = task(store, "x").await;
    assert_eq!(x.status, TaskStatus::Failed);
    assert_eq!(x.recovered_by.as_deref(), Some("x.recover"));
    assert_eq!(x.last_error.as_deref(), Some("broke"));
    let status = store.goal_status("g").await.unwrap().unwrap();
    assert_eq!((status.state, status.superseded), (GoalState::Active, 1));
    let rec = task(store, "x.recover").await;
    assert_eq!(
        (rec.status, rec.kind, rec.of.as_deref(), rec.role.as_deref()),
        (TaskStatus::Ready, TaskKind::Recover, Some("x"), Some("w"))
    );
    assert_eq!(rec.notes.as_deref(), Some("broke"));
    assert_eq!(counts(store).await, [1, 2, 0, 0, 0, 1]);
    match store.retry_task("g", "x").await {
        Err(StoreError::Superseded { goal, task, by }) => {
            assert_eq!(
                (goal.as_str(), task.as_str(), by.as_str()),
                ("g", "x", "x.recover")
            )
        }
        other => panic!("retrying a recovered task is refused, got {other:?}"),
    }
    let (nodes, plan_edges) = stored_plan(store).await;
    let node = added(
        "x.recover",
        "Recover: Task x",
        TaskKind::Recover,
        "x",
        Some("w"),
    );
    let planned = [work("d", None), work("x", Some("w"))];
    assert_eq!(nodes, [&planned[..], &[node, work("y", None)]].concat());
    assert_eq!(plan_edges, edges(&[("x.recover", "d"), ("y", "d")]));

    let y = take_task(store, ClaimScope::builder(None), "y").await;
    assert!(
        store
            .complete(&y, &result("y"))
            .await
            .unwrap()
            .promoted
            .is_empty()
    );
    let rec = take_task(store, ClaimScope::only("w"), "x.recover").await;
    assert_eq!(
        store.complete(&rec, &result("rec")).await.unwrap().promoted,
        ["d"]
    );
    let d = take_task(store, ClaimScope::builder(None), "d").await;
    assert!(
        store
            .complete(&d, &result("d"))
            .await
            .unwrap()
            .goal_complete
    );
    assert_eq!(goal_state(store).await, GoalState::Complete);
    assert_eq!(counts(store).await, [0, 0, 0, 0, 3, 1]);
}

pub async fn a_recovery_of_work_that_needs_approval_needs_it_too(store: Arc<dyn Store>) {
    let store = &*store;
    write(store, plan("g", vec![approval(work("x", Some("w")))], &[])).await;
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let failed = store
        .fail(&x, "broke", false, SHORT, Recovery::SameRole)
        .await;
    assert!(matches!(failed.unwrap(), FailOutcome::Recovering { .. }));
    assert!(task(store, "x.recover").await.needs_approval);
    let (nodes, _) = stored_plan(store).await;
    let node = added(
        "x.recover",
        "Recover: Task x",
        TaskKind::Recover,
        "x",
        Some("w"),
    );
    assert_eq!(nodes, [approval(work("x", Some("w"))), approval(node)]);
    let rec = take_task(store, ClaimScope::only("w"), "x.recover").await;
    let done = store.complete(&rec, &result("rec")).await.unwrap();
    assert!(done.awaiting_approval && !done.goal_complete);
    assert_eq!(
        task(store, "x.recover").await.status,
        TaskStatus::AwaitingApproval
    );
}

pub async fn a_recovery_for_a_managers_role_is_never_recovered_itself(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![work("x", Some("w")), work("d", None)];
    write_with_attempts(store, plan("g", tasks, &[("x", "d")]), 1).await;
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let failed = store
        .fail(&x, "flaky", true, SHORT, Recovery::Role("lead"))
        .await
        .unwrap();
    assert_eq!(
        failed,
        FailOutcome::Recovering {
            task: "x.recover".into()
        },
        "its attempts are spent"
    );
    let rec = task(store, "x.recover").await;
    assert_eq!(
        (rec.role.as_deref(), rec.status),
        (Some("lead"), TaskStatus::Ready)
    );
    assert!(take(store, ClaimScope::builder(Some("w"))).await.is_none());
    let rec = take_task(store, ClaimScope::only("lead"), "x.recover").await;
    let failed = store
        .fail(&rec, "still broken", false, SHORT, Recovery::SameRole)
        .await
        .unwrap();
    assert_eq!(failed, FailOutcome::Failed);
    let rec = task(store, "x.recover").await;
    assert_eq!((rec.status, rec.recovered_by), (TaskStatus::Failed, None));
    assert!(
        store
            .task("g", "x.recover.recover")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert_eq!(counts(store).await, [1, 0, 0, 0, 0, 2]);
}

pub async fn only_planned_work_is_recovered(store: Arc<dyn Store>) {
    let store = &*store;
    let any = ClaimScope::builder(None);
    // Planned work with Recovery::Never.
    write(store, plan("n", vec![work("n", None)], &[])).await;
    let n = take_in(store, "n", any).await.unwrap();
    let failed = store.fail(&n, "bad", false, SHORT, Recovery::Never).await;
    assert_eq!(failed.unwrap(), FailOutcome::Failed);
    assert!(store.task("n", "n.recover").await.unwrap().is_none());
    assert_eq!(task_in(store, "n", "n").await.recovered_by, None);

    // A fix.
    write(store, plan("f", vec![approval(work("t", None))], &[])).await;
    let t = take_in(store, "f", any).await.unwrap();
    store.complete(&t, &result("t")).await.unwrap();
    assert_eq!(store.reject("f", "t", "redo").await.unwrap().fix, "t.fix-1");
    let fix = take_in(store, "f", any).await.unwrap();
    assert_eq!(fix.task, "t.fix-1");
    let failed = store
        .fail(&fix, "bad", false, SHORT, Recovery::SameRole)
        .await;
    assert_eq!(failed.unwrap(), FailOutcome::Failed);
    assert!(store.task("f", "t.fix-1.recover").await.unwrap().is_none());

    // A review.
    let tasks = vec![work("a", Some("w")), review("a.review", "a")];
    write(store, plan("r", tasks, &[("a", "a.review")])).await;
    let a = take_in(store, "r", ClaimScope::only("w")).await.unwrap();
    store.complete(&a, &result("a")).await.unwrap();
    let r = take_in(store, "r", ClaimScope::only("qa")).await.unwrap();
    let failed = store
        .fail(&r, "bad", false, SHORT, Recovery::SameRole)
        .await;
    assert_eq!(failed.unwrap(), FailOutcome::Failed);
    assert!(store.task("r", "a.review.recover").await.unwrap().is_none());

    for goal in ["n", "f", "r"] {
        let status = store.goal_status(goal).await.unwrap().unwrap();
        assert_eq!(
            (status.state, status.superseded),
            (GoalState::Failed, 0),
            "{goal}"
        );
    }
}

pub async fn reviewers_and_managers_claim_only_their_roles_tasks(store: Arc<dyn Store>) {
    let store = &*store;
    let free = porki::domain::Node {
        priority: 9,
        ..work("free", None)
    };
    let tasks = vec![free, work("r1", Some("qa")), work("r2", Some("qa"))];
    write(store, plan("g", tasks, &[])).await;
    let qa = ClaimScope::only("qa");
    let r1 = store
        .claim_preferred("g", "x", qa, LONG, Some("free"))
        .await
        .unwrap();
    let ClaimOutcome::Claimed(r1) = r1 else {
        panic!("r1 is claimable, got {r1:?}");
    };
    assert_eq!(r1.task, "r1", "a roleless pick is not the reviewer's");
    let (_, next) = store
        .complete_and_claim(&r1, &result("r1"), qa, LONG)
        .await
        .unwrap();
    assert!(
        matches!(next, ClaimOutcome::Claimed(ref l) if l.task == "r2"),
        "the better roleless task is not the reviewer's: {next:?}"
    );
    assert!(take(store, qa).await.is_none());
    take_task(store, ClaimScope::builder(Some("qa")), "free").await;
    // The verdict of a reviewer on planned work is a completion.
    let verdict = ReviewVerdict::Approved;
    let ClaimOutcome::Claimed(r2) = next else {
        unreachable!()
    };
    let done = store
        .settle_review(&r2, &result("r2"), &verdict, &TeamLimits::default())
        .await
        .unwrap();
    assert!(
        matches!(done, porki::store::ReviewOutcome::Approved(_)),
        "{done:?}"
    );
    assert_eq!(counts(store).await, [0, 0, 1, 0, 2, 0]);
}

pub async fn reassign_hands_a_ready_task_to_another_role(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![
        work("b", Some("w")),
        work("s", Some("w")),
        work("t", Some("w")),
        work("u", Some("w")),
    ];
    write(store, plan("g", tasks, &[("s", "b")])).await;
    store.reassign("g", "s", Some("third")).await.unwrap();
    store.reassign("g", "s", Some("other")).await.unwrap();
    store.reassign("g", "u", None).await.unwrap();
    let s = task(store, "s").await;
    assert_eq!(
        (s.role.as_deref(), s.planned_role.as_deref(), s.status),
        (Some("other"), Some("w"), TaskStatus::Ready),
        "the plan's role is kept"
    );
    let u = task(store, "u").await;
    assert_eq!((u.role, u.planned_role.as_deref()), (None, Some("w")));
    let by_role = store.goal_status("g").await.unwrap().unwrap().ready_by_role;
    let expected = [("", 1), ("other", 1), ("w", 1)].map(|(r, n)| (r.to_string(), n));
    assert_eq!(by_role, expected.into());
    assert_eq!(counts(store).await, [1, 3, 0, 0, 0, 0]);

    assert_wrong_state(
        store.reassign("g", "b", Some("other")).await,
        "b",
        TaskStatus::Blocked,
    );
    assert_unknown(store.reassign("g", "nope", Some("other")).await, "nope");
    take_task(store, ClaimScope::builder(None), "u").await;
    take_task(store, ClaimScope::only("w"), "t").await;
    assert!(take(store, ClaimScope::only("w")).await.is_none());
    take_task(store, ClaimScope::only("other"), "s").await;
    assert_wrong_state(
        store.reassign("g", "s", Some("w")).await,
        "s",
        TaskStatus::Running,
    );
    assert_eq!(counts(store).await, [1, 0, 3, 0, 0, 0]);
}

pub async fn reassigning_a_task_backing_off_moves_it_when_the_backoff_ends(store: Arc<dyn Store>) {
    let store = &*store;
    write(store, plan("g", vec![work("x", Some("w"))], &[])).await;
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let failed = store
        .fail(&x, "flaky", true, SHORT, Recovery::SameRole)
        .await;
    assert_eq!(failed.unwrap(), FailOutcome::Retrying { after: SHORT });
    store.reassign("g", "x", Some("other")).await.unwrap();
    let x = task(store, "x").await;
    assert_eq!(
        (x.status, x.role.as_deref(), x.planned_role.as_deref()),
        (TaskStatus::Ready, Some("other"), Some("w"))
    );
    tokio::time::sleep(SHORT * 3).await;
    assert!(take(store, ClaimScope::only("w")).await.is_none());
    let x = take_task(store, ClaimScope::only("other"), "x").await;
    assert_eq!(x.attempt, 2);
    assert_eq!(counts(store).await, [0, 0, 1, 0, 0, 0]);
}

pub async fn a_review_of_recovered_work_reviews_the_recovery(store: Arc<dyn Store>) {
    let store = &*store;
    let qa = ClaimScope::only("qa");
    let lead = ClaimScope::only("lead");
    // y's review waits for x too: it still reviews y. c says it is about x:
    // planned work's `of` is kept in the plan only.
    let about_x = porki::domain::Node {
        of: Some("x".into()),
        ..work("c", None)
    };
    let tasks = vec![
        work("x", Some("w")),
        review("x.review", "x"),
        about_x,
        work("y", Some("w")),
        review("y.review", "y"),
    ];
    let after = [
        ("x", "x.review"),
        ("x.review", "c"),
        ("y", "y.review"),
        ("x", "y.review"),
    ];
    write(store, plan("g", tasks, &after)).await;
    let x = take_task(store, ClaimScope::only("w"), "x").await;
    let failed = store
        .fail(&x, "broke", false, SHORT, Recovery::Role("lead"))
        .await
        .unwrap();
    assert_eq!(
        failed,
        FailOutcome::Recovering {
            task: "x.recover".into()
        }
    );
    let r = task(store, "x.review").await;
    assert_eq!(
        (r.status, r.of.as_deref()),
        (TaskStatus::Blocked, Some("x.recover"))
    );
    assert_eq!(task(store, "y.review").await.of.as_deref(), Some("y"));
    assert_eq!(task(store, "c").await.of, None);
    let (nodes, plan_edges) = stored_plan(store).await;
    assert!(
        nodes.contains(&review("x.review", "x.recover")),
        "the plan shows what the review reviews: {nodes:?}"
    );
    assert!(plan_edges.contains(&("x.recover".into(), "x.review".into())));

    let rec = take_task(store, lead, "x.recover").await;
    let done = store.complete(&rec, &result("rec")).await.unwrap();
    assert_eq!(done.promoted, ["x.review"]);
    // Changes asked of the recovery: a fix named after the planned task, for
    // the recovery's role, about the recovery.
    let one_cycle = TeamLimits {
        max_review_cycles: 1,
        manager_role: Some("lead".into()),
    };
    let r = take_task(store, qa, "x.review").await;
    let asked = store
        .settle_review(&r, &result("r"), &super::changes("redo"), &one_cycle)
        .await
        .unwrap();
    assert_eq!(
        asked,
        porki::store::ReviewOutcome::FixRequested {
            fix: "x.fix-1".into()
        }
    );
    let fix = task(store, "x.fix-1").await;
    assert_eq!(
        (fix.of.as_deref(), fix.role.as_deref(), fix.title.as_str()),
        (Some("x.recover"), Some("lead"), "Fix 1 of: Recover: Task x")
    );
    let fix = take_task(store, lead, "x.fix-1").await;
    store.complete(&fix, &result("fix")).await.unwrap();
    let r = take_task(store, qa, "x.review").await;
    let asked = store
        .settle_review(&r, &result("r"), &super::changes("still"), &one_cycle)
        .await
        .unwrap();
    assert_eq!(
        asked,
        porki::store::ReviewOutcome::Escalated {
            task: "x.escalate".into()
        }
    );
    let e = task(store, "x.escalate").await;
    assert_eq!(
        (e.of.as_deref(), e.title.as_str()),
        (Some("x.review"), "Settle the review of: Recover: Task x")
    );
    assert_eq!(counts(store).await, [3, 2, 0, 0, 2, 1]);
}

pub async fn rejecting_a_recovery_adds_a_fix_named_after_the_planned_task(store: Arc<dyn Store>) {
    let store = &*store;
    let w = ClaimScope::only("w");
    write(store, plan("g", vec![approval(work("x", Some("w")))], &[])).await;
    let x = take_task(store, w, "x").await;
    store
        .fail(&x, "broke", false, SHORT, Recovery::SameRole)
        .await
        .unwrap();
    let rec = take_task(store, w, "x.recover").await;
    assert!(
        store
            .complete(&rec, &result("rec"))
            .await
            .unwrap()
            .awaiting_approval
    );
    let rejected = store.reject("g", "x.recover", "wrong").await.unwrap();
    assert_eq!(rejected.fix, "x.fix-1");
    let fix = task(store, "x.fix-1").await;
    assert_eq!(
        (fix.kind, fix.of.as_deref(), fix.role.as_deref()),
        (TaskKind::Fix, Some("x.recover"), Some("w"))
    );
    let fix = take_task(store, w, "x.fix-1").await;
    store.complete(&fix, &result("fix")).await.unwrap();
    assert_eq!(
        task(store, "x.recover").await.status,
        TaskStatus::AwaitingApproval
    );
    assert_eq!(
        store.reject("g", "x.recover", "again").await.unwrap().fix,
        "x.fix-2"
    );
    let fix = take_task(store, w, "x.fix-2").await;
    store.complete(&fix, &result("fix")).await.unwrap();
    assert!(store.approve("g", "x.recover").await.unwrap().goal_complete);
}
