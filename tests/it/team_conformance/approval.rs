//! A person's approval and rejection of tasks AWAITING_APPROVAL.

use std::sync::Arc;

use porki::domain::{TaskKind, TaskStatus, TeamLimits};
use porki::store::prelude::*;
use porki::store::{
    ClaimOutcome, ClaimScope, CompleteOutcome, GoalState, Rejected, ReviewOutcome, ReviewVerdict,
};

use super::{
    added, approval, assert_unknown, assert_wrong_state, edges, goal_state, review, stored_plan,
    take, take_task, task, work,
};
use crate::store_conformance::{LONG, counts, result, write};
use crate::support::plan;

const ANY: ClaimScope<'static> = ClaimScope {
    role: None,
    roleless: true,
};

/// What a completion held for approval answers.
fn held() -> CompleteOutcome {
    CompleteOutcome {
        awaiting_approval: true,
        ..CompleteOutcome::default()
    }
}

/// What a completion or approval that moved `promoted` on answers.
fn moved(promoted: &[&str], goal_complete: bool) -> CompleteOutcome {
    CompleteOutcome {
        promoted: promoted.iter().map(|p| p.to_string()).collect(),
        goal_complete,
        awaiting_approval: false,
    }
}

pub async fn an_approval_task_waits_for_a_person_and_approve_moves_its_dependents_on(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let tasks = vec![
        approval(work("a", None)),
        approval(work("b", None)),
        work("c", None),
    ];
    write(store, plan("g", tasks, &[("a", "b")])).await;
    let a = take_task(store, ANY, "a").await;
    assert_eq!(store.complete(&a, &result("a")).await.unwrap(), held());
    let a = task(store, "a").await;
    assert_eq!(a.status, TaskStatus::AwaitingApproval);
    assert!(a.needs_approval);
    assert_eq!((a.lease_expires_ms, a.finished_ms), (None, None));
    assert_eq!(
        (a.progress.as_str(), &a.artifacts[..]),
        ("a", &["a.md".into()][..])
    );
    assert_eq!(
        store.held_by("g", "x").await.unwrap(),
        None,
        "no lease held"
    );
    assert_eq!(counts(store).await, [1, 1, 0, 1, 0, 0]);
    assert_eq!(goal_state(store).await, GoalState::Active);

    assert_wrong_state(store.approve("g", "b").await, "b", TaskStatus::Blocked);
    assert_wrong_state(store.approve("g", "c").await, "c", TaskStatus::Ready);
    assert_unknown(store.approve("g", "nope").await, "nope");
    assert_eq!(store.approve("g", "a").await.unwrap(), moved(&["b"], false));
    let a = task(store, "a").await;
    assert_eq!(a.status, TaskStatus::Done);
    assert!(a.finished_ms.is_some());
    assert_eq!(counts(store).await, [0, 2, 0, 0, 1, 0]);
    assert_wrong_state(store.approve("g", "a").await, "a", TaskStatus::Done);

    let b = take_task(store, ANY, "b").await;
    assert_eq!(store.complete(&b, &result("b")).await.unwrap(), held());
    let c = take_task(store, ANY, "c").await;
    assert_eq!(
        store.complete(&c, &result("c")).await.unwrap(),
        moved(&[], false),
        "b still awaits approval"
    );
    assert_eq!(counts(store).await, [0, 0, 0, 1, 2, 0]);
    assert_eq!(goal_state(store).await, GoalState::Active);
    assert_eq!(store.approve("g", "b").await.unwrap(), moved(&[], true));
    assert_eq!(goal_state(store).await, GoalState::Complete);
    assert_eq!(counts(store).await, [0, 0, 0, 0, 3, 0]);
}

pub async fn complete_and_claim_holds_an_approval_task_and_claims_the_next(store: Arc<dyn Store>) {
    let store = &*store;
    let first = approval(porki::domain::Node {
        priority: 1,
        ..work("a", None)
    });
    write(store, plan("g", vec![first, work("b", None)], &[])).await;
    let a = take_task(store, ANY, "a").await;
    let (done, next) = store
        .complete_and_claim(&a, &result("a"), ANY, LONG)
        .await
        .unwrap();
    assert_eq!(done, held());
    let ClaimOutcome::Claimed(b) = next else {
        panic!("b is claimed with the completion, got {next:?}");
    };
    assert_eq!(b.task, "b");
    assert_eq!(task(store, "a").await.status, TaskStatus::AwaitingApproval);
    assert_eq!(counts(store).await, [0, 0, 1, 1, 0, 0]);
    assert_eq!(
        store.complete(&b, &result("b")).await.unwrap(),
        moved(&[], false)
    );
    assert_eq!(store.approve("g", "a").await.unwrap(), moved(&[], true));
    assert_eq!(goal_state(store).await, GoalState::Complete);
}

pub async fn a_rejected_task_gets_a_fix_then_awaits_approval_again(store: Arc<dyn Store>) {
    let store = &*store;
    let w = ClaimScope::builder(Some("w"));
    let t = approval(porki::domain::Node {
        priority: 3,
        ..work("t", Some("w"))
    });
    write(
        store,
        plan("g", vec![t.clone(), work("d", None)], &[("t", "d")]),
    )
    .await;
    let lease = take_task(store, w, "t").await;
    assert_eq!(store.complete(&lease, &result("t")).await.unwrap(), held());
    assert_wrong_state(store.reject("g", "d", "no").await, "d", TaskStatus::Blocked);
    assert_unknown(store.reject("g", "nope", "no").await, "nope");

    let fix = store.reject("g", "t", "too short").await.unwrap();
    assert_eq!(
        fix,
        Rejected {
            fix: "t.fix-1".into()
        }
    );
    let rejected = task(store, "t").await;
    assert_eq!(rejected.status, TaskStatus::Blocked);
    assert_eq!(rejected.notes.as_deref(), Some("too short"));
    let fix = task(store, "t.fix-1").await;
    assert_eq!(
        (fix.status, fix.kind, fix.of.as_deref(), fix.role.as_deref()),
        (TaskStatus::Ready, TaskKind::Fix, Some("t"), Some("w"))
    );
    assert_eq!((fix.notes.as_deref(), fix.cycle), (Some("too short"), 1));
    assert_eq!((fix.priority, fix.attempt, fix.pending_deps), (3, 0, 0));
    assert_eq!(counts(store).await, [2, 1, 0, 0, 0, 0]);
    let by_role = store.goal_status("g").await.unwrap().unwrap().ready_by_role;
    assert_eq!(by_role, [("w".to_string(), 1)].into());

    assert!(take(store, ANY).await.is_none(), "the fix is for role w");
    let lease = take_task(store, w, "t.fix-1").await;
    assert_eq!(
        store.complete(&lease, &result("fix")).await.unwrap(),
        moved(&[], false),
        "t awaits approval again instead of becoming READY"
    );
    assert_eq!(task(store, "t").await.status, TaskStatus::AwaitingApproval);
    assert_eq!(task(store, "t").await.pending_deps, 0);
    let status = store.goal_status("g").await.unwrap().unwrap();
    assert!(
        status.ready_by_role.is_empty(),
        "{:?}",
        status.ready_by_role
    );
    assert!(take(store, w).await.is_none(), "t is in no ready index");
    assert_eq!(counts(store).await, [1, 0, 0, 1, 1, 0]);

    let fix = store.reject("g", "t", "still short").await.unwrap();
    assert_eq!(fix.fix, "t.fix-2");
    assert_eq!(task(store, "t.fix-2").await.cycle, 2);
    let lease = take_task(store, w, "t.fix-2").await;
    store.complete(&lease, &result("fix")).await.unwrap();
    assert_eq!(task(store, "t").await.status, TaskStatus::AwaitingApproval);
    assert_eq!(store.approve("g", "t").await.unwrap(), moved(&["d"], false));
    assert_eq!(counts(store).await, [0, 1, 0, 0, 3, 0]);

    let (nodes, plan_edges) = stored_plan(store).await;
    let fix = |n: u32| {
        let id = format!("t.fix-{n}");
        porki::domain::Node {
            priority: 3,
            ..added(
                &id,
                &format!("Fix {n} of: Task t"),
                TaskKind::Fix,
                "t",
                Some("w"),
            )
        }
    };
    assert_eq!(nodes, [work("d", None), t, fix(1), fix(2)]);
    assert_eq!(
        plan_edges,
        edges(&[("t", "d"), ("t.fix-1", "t"), ("t.fix-2", "t")])
    );
}

pub async fn rejecting_a_review_fixes_the_reviewed_task_and_runs_the_review_again(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let (w, qa) = (ClaimScope::builder(Some("w")), ClaimScope::only("qa"));
    let tasks = vec![work("a", Some("w")), approval(review("a.review", "a"))];
    write(store, plan("g", tasks, &[("a", "a.review")])).await;
    let a = take_task(store, w, "a").await;
    assert_eq!(
        store.complete(&a, &result("a")).await.unwrap(),
        moved(&["a.review"], false)
    );
    let r = take_task(store, qa, "a.review").await;
    let verdict = store
        .settle_review(
            &r,
            &result("ok"),
            &ReviewVerdict::Approved,
            &TeamLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(verdict, ReviewOutcome::Approved(held()));
    assert_eq!(counts(store).await, [0, 0, 0, 1, 1, 0]);

    let fix = store.reject("g", "a.review", "needs tests").await.unwrap();
    assert_eq!(fix.fix, "a.fix-1", "the fix is of the reviewed task");
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.attempt), (TaskStatus::Blocked, 0));
    let fix = task(store, "a.fix-1").await;
    assert_eq!(
        (fix.status, fix.kind, fix.of.as_deref(), fix.role.as_deref()),
        (TaskStatus::Ready, TaskKind::Fix, Some("a"), Some("w"))
    );
    assert_eq!(fix.notes.as_deref(), Some("needs tests"));
    assert_eq!(counts(store).await, [1, 1, 0, 0, 1, 0]);
    assert!(take(store, qa).await.is_none());

    let lease = take_task(store, w, "a.fix-1").await;
    assert_eq!(
        store.complete(&lease, &result("fix")).await.unwrap(),
        moved(&["a.review"], false),
        "the review runs again"
    );
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.attempt), (TaskStatus::Ready, 0));
    let r = take_task(store, qa, "a.review").await;
    assert_eq!(r.attempt, 1, "attempts were reset");
    let verdict = store
        .settle_review(
            &r,
            &result("ok"),
            &ReviewVerdict::Approved,
            &TeamLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(verdict, ReviewOutcome::Approved(held()));
    assert_eq!(
        store.approve("g", "a.review").await.unwrap(),
        moved(&[], true)
    );
    assert_eq!(counts(store).await, [0, 0, 0, 0, 3, 0]);
}

pub async fn dropping_a_task_awaiting_approval_fails_it(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![approval(work("a", None)), work("b", None)];
    write(store, plan("g", tasks, &[])).await;
    let a = take_task(store, ANY, "a").await;
    store.complete(&a, &result("a")).await.unwrap();
    assert_eq!(counts(store).await, [0, 1, 0, 1, 0, 0]);
    store.drop_task("g", "a", "dropped").await.unwrap();
    let a = task(store, "a").await;
    assert_eq!(a.status, TaskStatus::Failed);
    assert_eq!(a.last_error.as_deref(), Some("dropped"));
    assert_eq!(counts(store).await, [0, 1, 0, 0, 0, 1]);
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert_wrong_state(store.approve("g", "a").await, "a", TaskStatus::Failed);
    assert_wrong_state(store.reject("g", "a", "no").await, "a", TaskStatus::Failed);
}
