//! Review verdicts: approval, fixes, escalation to a manager, failure.

use std::sync::Arc;

use porki::domain::rank::TYPICAL_TASK_MS;
use porki::domain::{TaskKind, TaskStatus, TeamLimits};
use porki::store::prelude::*;
use porki::store::{
    ClaimScope, CompleteOutcome, GoalState, Lease, ReviewOutcome, ReviewVerdict, StoreError,
};

use super::{
    added, approval, changes, edges, goal_state, limits, review, stored_plan, take, take_task,
    task, work,
};
use crate::store_conformance::{counts, result, write};
use crate::support::plan;

const QA: ClaimScope<'static> = ClaimScope {
    role: Some("qa"),
    roleless: false,
};
const W: ClaimScope<'static> = ClaimScope {
    role: Some("w"),
    roleless: true,
};

/// Plans work `a` (role w), its review `a.review` (role qa) and `c` after the
/// review; runs `a` and claims the review.
async fn start_review(store: &dyn Store) -> Lease {
    let tasks = vec![
        work("a", Some("w")),
        review("a.review", "a"),
        work("c", None),
    ];
    let after = [("a", "a.review"), ("a.review", "c")];
    write(store, plan("g", tasks, &after)).await;
    let a = take_task(store, W, "a").await;
    let done = store.complete(&a, &result("a")).await.unwrap();
    assert_eq!(done.promoted, ["a.review"]);
    take_task(store, QA, "a.review").await
}

/// The review held by `lease` asks for changes with `notes`.
async fn ask(store: &dyn Store, lease: &Lease, notes: &str, limits: &TeamLimits) -> ReviewOutcome {
    store
        .settle_review(lease, &result("review"), &changes(notes), limits)
        .await
        .unwrap()
}

/// A builder of role w runs fix `id` of `a`; the review runs again, and is claimed.
async fn run_fix(store: &dyn Store, id: &str) -> Lease {
    let fix = take_task(store, W, id).await;
    let done = store.complete(&fix, &result("fix")).await.unwrap();
    assert_eq!(
        done.promoted,
        ["a.review"],
        "{id} done: the review is READY"
    );
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.attempt), (TaskStatus::Ready, 0));
    take_task(store, QA, "a.review").await
}

/// Runs the review of `a` through two fixes to a third request for changes.
async fn third_request(store: &dyn Store, limits: &TeamLimits) -> ReviewOutcome {
    let r = start_review(store).await;
    assert_eq!(
        ask(store, &r, "add tests", limits).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-1".into()
        }
    );
    // The fix ranks in front of the review that runs again after it (review,
    // then c: two typical tasks) — issue 21.
    assert_eq!(
        task(store, "a.fix-1").await.rank_ms,
        Some(3 * TYPICAL_TASK_MS)
    );
    let r = run_fix(store, "a.fix-1").await;
    assert_eq!(
        ask(store, &r, "more tests", limits).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-2".into()
        }
    );
    let fix = task(store, "a.fix-2").await;
    assert_eq!((fix.notes.as_deref(), fix.cycle), (Some("more tests"), 2));
    assert_eq!(task(store, "a.review").await.cycle, 2);
    let r = run_fix(store, "a.fix-2").await;
    ask(store, &r, "still no tests", limits).await
}

pub async fn an_approving_review_completes_and_only_reviews_take_changes(store: Arc<dyn Store>) {
    let store = &*store;
    let r = start_review(store).await;
    let verdict = store
        .settle_review(
            &r,
            &result("fine"),
            &ReviewVerdict::Approved,
            &limits(2, None),
        )
        .await
        .unwrap();
    let promoted = CompleteOutcome {
        promoted: vec!["c".into()],
        ..CompleteOutcome::default()
    };
    assert_eq!(verdict, ReviewOutcome::Approved(promoted));
    assert_eq!(task(store, "a.review").await.status, TaskStatus::Done);
    assert_eq!(counts(store).await, [0, 1, 0, 0, 2, 0]);

    let c = take_task(store, ClaimScope::builder(None), "c").await;
    let refused = store
        .settle_review(&c, &result("c"), &changes("redo"), &limits(2, None))
        .await;
    match refused {
        Err(StoreError::NotAReview { goal, task, kind }) => {
            assert_eq!(
                (goal.as_str(), task.as_str(), kind.as_str()),
                ("g", "c", "work")
            )
        }
        other => panic!("changes on a work task are refused with NotAReview, got {other:?}"),
    }
    assert_eq!(task(store, "c").await.status, TaskStatus::Running);
    assert!(store.task("g", "c.fix-1").await.unwrap().is_none());
    let verdict = store
        .settle_review(&c, &result("c"), &ReviewVerdict::Approved, &limits(2, None))
        .await
        .unwrap();
    let last = CompleteOutcome {
        goal_complete: true,
        ..CompleteOutcome::default()
    };
    assert_eq!(verdict, ReviewOutcome::Approved(last));
    assert_eq!(goal_state(store).await, GoalState::Complete);
}

pub async fn a_review_asking_for_changes_gets_fixes_then_fails_without_a_manager(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let no_manager = limits(2, None);
    let r = start_review(store).await;
    assert_eq!(
        ask(store, &r, "add tests", &no_manager).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-1".into()
        }
    );
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.cycle, r.attempt), (TaskStatus::Blocked, 1, 0));
    assert_eq!(r.notes.as_deref(), Some("add tests"));
    let fix = task(store, "a.fix-1").await;
    assert_eq!(
        (fix.status, fix.kind, fix.of.as_deref(), fix.role.as_deref()),
        (TaskStatus::Ready, TaskKind::Fix, Some("a"), Some("w"))
    );
    assert_eq!((fix.notes.as_deref(), fix.cycle), (Some("add tests"), 1));
    assert_eq!(counts(store).await, [2, 1, 0, 0, 1, 0]);
    assert!(take(store, QA).await.is_none(), "a reviewer takes no fix");
    assert!(take(store, ClaimScope::builder(None)).await.is_none());

    let r = run_fix(store, "a.fix-1").await;
    assert_eq!(
        ask(store, &r, "more tests", &no_manager).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-2".into()
        }
    );
    let r = run_fix(store, "a.fix-2").await;
    assert_eq!(
        ask(store, &r, "still no tests", &no_manager).await,
        ReviewOutcome::Failed {
            review: "a.review".into()
        }
    );
    let r = task(store, "a.review").await;
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "the review asked for changes 3 time(s), more than the 2 review cycle(s) \
             allowed, and no manager settled it: still no tests"
        )
    );
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert!(store.task("g", "a.escalate").await.unwrap().is_none());
    assert_eq!(counts(store).await, [1, 0, 0, 0, 3, 1]);

    let (nodes, plan_edges) = stored_plan(store).await;
    let fix = |n: u32| {
        let id = format!("a.fix-{n}");
        added(
            &id,
            &format!("Fix {n} of: Task a"),
            TaskKind::Fix,
            "a",
            Some("w"),
        )
    };
    let expected = [
        work("a", Some("w")),
        fix(1),
        fix(2),
        review("a.review", "a"),
        work("c", None),
    ];
    assert_eq!(nodes, expected);
    assert_eq!(
        plan_edges,
        edges(&[
            ("a", "a.review"),
            ("a.fix-1", "a.review"),
            ("a.fix-2", "a.review"),
            ("a.review", "c")
        ])
    );
}

/// Runs the review to its escalation, checks it, and claims it as the manager.
async fn escalate(store: &dyn Store) -> Lease {
    let outcome = third_request(store, &limits(2, Some("lead"))).await;
    assert_eq!(
        outcome,
        ReviewOutcome::Escalated {
            task: "a.escalate".into()
        }
    );
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.cycle, r.attempt), (TaskStatus::Blocked, 3, 0));
    let e = task(store, "a.escalate").await;
    assert_eq!(
        (e.status, e.kind, e.of.as_deref(), e.role.as_deref()),
        (
            TaskStatus::Ready,
            TaskKind::Escalate,
            Some("a.review"),
            Some("lead")
        )
    );
    assert_eq!(e.notes.as_deref(), Some("still no tests"));
    assert_eq!(counts(store).await, [2, 1, 0, 0, 3, 0]);
    for scope in [QA, W, ClaimScope::builder(None)] {
        assert!(take(store, scope).await.is_none(), "{scope:?}");
    }
    let (nodes, plan_edges) = stored_plan(store).await;
    let title = "Settle the review of: Task a";
    let node = added(
        "a.escalate",
        title,
        TaskKind::Escalate,
        "a.review",
        Some("lead"),
    );
    assert!(nodes.contains(&node), "{nodes:?}");
    assert!(plan_edges.contains(&("a.escalate".into(), "a.review".into())));
    take_task(store, ClaimScope::only("lead"), "a.escalate").await
}

pub async fn a_review_past_its_cycles_escalates_and_the_manager_approves(store: Arc<dyn Store>) {
    let store = &*store;
    let e = escalate(store).await;
    let verdict = store
        .settle_review(
            &e,
            &result("ship it"),
            &ReviewVerdict::Approved,
            &limits(2, Some("lead")),
        )
        .await
        .unwrap();
    let promoted = CompleteOutcome {
        promoted: vec!["c".into()],
        ..CompleteOutcome::default()
    };
    assert_eq!(verdict, ReviewOutcome::Approved(promoted));
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.pending_deps), (TaskStatus::Done, 0));
    let by = "approved by the manager on escalation a.escalate: ship it";
    assert_eq!(r.progress, by);
    assert_eq!(task(store, "a.escalate").await.status, TaskStatus::Done);
    assert_eq!(task(store, "c").await.status, TaskStatus::Ready);
    assert_eq!(counts(store).await, [0, 1, 0, 0, 5, 0]);
    let c = take_task(store, ClaimScope::builder(None), "c").await;
    assert!(
        store
            .complete(&c, &result("c"))
            .await
            .unwrap()
            .goal_complete
    );
    assert_eq!(goal_state(store).await, GoalState::Complete);
}

pub async fn a_manager_rejecting_an_escalation_fails_the_review_and_the_goal(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let e = escalate(store).await;
    let verdict = store
        .settle_review(
            &e,
            &result("no"),
            &changes("not shippable"),
            &limits(2, Some("lead")),
        )
        .await
        .unwrap();
    assert_eq!(
        verdict,
        ReviewOutcome::Failed {
            review: "a.review".into()
        }
    );
    let r = task(store, "a.review").await;
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "the manager rejected the work after the review asked for changes 3 time(s): \
             not shippable"
        )
    );
    assert_eq!(task(store, "a.escalate").await.status, TaskStatus::Done);
    assert_eq!(goal_state(store).await, GoalState::Failed);
    assert_eq!(counts(store).await, [1, 0, 0, 0, 4, 1]);
}

pub async fn a_review_of_any_id_gets_fixes_of_the_task_it_reviews(store: Arc<dyn Store>) {
    let store = &*store;
    let tasks = vec![work("a", Some("w")), approval(review("check", "a"))];
    write(store, plan("g", tasks, &[("a", "check")])).await;
    let a = take_task(store, W, "a").await;
    store.complete(&a, &result("a")).await.unwrap();
    let r = take_task(store, QA, "check").await;
    assert_eq!(
        ask(store, &r, "add tests", &limits(2, None)).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-1".into()
        }
    );
    let fix = take_task(store, W, "a.fix-1").await;
    let done = store.complete(&fix, &result("fix")).await.unwrap();
    assert_eq!(done.promoted, ["check"]);
    let r = take_task(store, QA, "check").await;
    let verdict = store
        .settle_review(
            &r,
            &result("ok"),
            &ReviewVerdict::Approved,
            &limits(2, None),
        )
        .await
        .unwrap();
    assert!(
        matches!(verdict, ReviewOutcome::Approved(ref c) if c.awaiting_approval),
        "{verdict:?}"
    );
    let fix = store.reject("g", "check", "wrong tone").await.unwrap();
    assert_eq!(fix.fix, "a.fix-2");
    assert_eq!(task(store, "check").await.status, TaskStatus::Blocked);
    assert_eq!(
        task(store, "a.fix-2").await.notes.as_deref(),
        Some("wrong tone")
    );
    assert_eq!(counts(store).await, [1, 1, 0, 0, 2, 0]);
}

/// Escalates the review of `a`, then a person drops the review before the
/// manager answers; the manager's answer is `verdict`.
async fn settle_dropped(store: &dyn Store, verdict: ReviewVerdict) {
    let e = escalate(store).await;
    store
        .drop_task("g", "a.review", "not needed")
        .await
        .unwrap();
    assert_eq!(goal_state(store).await, GoalState::Failed);
    let outcome = store
        .settle_review(&e, &result("manager"), &verdict, &limits(2, Some("lead")))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReviewOutcome::Moot {
            review: "a.review".into()
        }
    );
    let r = task(store, "a.review").await;
    assert_eq!(
        (r.status, r.pending_deps, r.last_error.as_deref()),
        (TaskStatus::Failed, 0, Some("not needed")),
        "the dropped review is left as it is, waiting for nothing"
    );
    assert_eq!(task(store, "a.escalate").await.status, TaskStatus::Done);
    assert_eq!(task(store, "c").await.status, TaskStatus::Blocked);
    assert_eq!(counts(store).await, [1, 0, 0, 0, 4, 1]);
    // Retried, the review runs again, with its cycles back.
    assert_eq!(
        store.retry_task("g", "a.review").await.unwrap(),
        TaskStatus::Ready
    );
    assert_eq!(goal_state(store).await, GoalState::Active);
    let r = task(store, "a.review").await;
    assert_eq!((r.status, r.cycle), (TaskStatus::Ready, 0));
}

pub async fn a_manager_approving_an_escalation_of_a_dropped_review_settles_nothing(
    store: Arc<dyn Store>,
) {
    settle_dropped(&*store, ReviewVerdict::Approved).await;
}

pub async fn a_manager_rejecting_an_escalation_of_a_dropped_review_fails_nothing_more(
    store: Arc<dyn Store>,
) {
    settle_dropped(&*store, changes("not shippable")).await;
}

pub async fn a_retried_review_that_failed_its_cycles_may_ask_for_changes_again(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let no_manager = limits(2, None);
    let outcome = third_request(store, &no_manager).await;
    assert!(
        matches!(outcome, ReviewOutcome::Failed { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        store.retry_task("g", "a.review").await.unwrap(),
        TaskStatus::Ready
    );
    assert_eq!(task(store, "a.review").await.cycle, 0);
    let r = take_task(store, QA, "a.review").await;
    assert_eq!(
        ask(store, &r, "one more thing", &no_manager).await,
        ReviewOutcome::FixRequested {
            fix: "a.fix-3".into()
        }
    );
    assert_eq!(goal_state(store).await, GoalState::Active);
}
