//! Worktree isolation's store side (issue 20, docs/isolation.md), on every
//! backend: the merged commit recorded with DONE, the goal branch set once, and
//! the per-goal merge lock, taken only under a live lease.

use std::sync::Arc;
use std::time::Duration;

use porki::domain::TaskStatus;
use porki::domain::merge::DIFFSTAT_CAP;
use porki::store::prelude::*;
use porki::store::{
    ClaimOutcome, ClaimScope, GoalBranch, Lease, MergeLock, MergeLockOutcome, StoreError,
    TaskResult, WriteDagOptions, write_plan,
};

use super::{LONG, SHORT, assert_lost, cluster, memory, redis, result, write};
use crate::support::{claim, nodes, plan};

conformance!(
    untimed: [
        a_completion_records_the_merged_commit_with_done,
        the_goal_branch_is_set_once_and_outlives_a_replan,
        the_merge_lock_admits_one_live_lease_and_is_released_by_its_token_only,
    ],
    timed: [a_merge_lock_lasts_its_ttl_unless_renewed],
);

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `result(text)` merged as `commit`, with a diffstat.
fn merged(text: &str, commit: &str) -> TaskResult {
    TaskResult {
        commit: Some(commit.to_string()),
        diffstat: Some(format!(" {text}.md | 1 +\n 1 file changed, 1 insertion(+)")),
        ..result(text)
    }
}

fn branch(name: &str) -> GoalBranch {
    GoalBranch {
        branch: name.to_string(),
        repository: format!("/repos/{name}"),
    }
}

async fn acquired(store: &dyn Store, lease: &Lease, ttl: Duration) -> MergeLock {
    match store.acquire_merge_lock(lease, ttl).await.unwrap() {
        MergeLockOutcome::Acquired(lock) => lock,
        busy => panic!("{} takes the merge lock, got {busy:?}", lease.task),
    }
}

fn assert_busy(outcome: MergeLockOutcome, holder: &str) {
    match outcome {
        MergeLockOutcome::Busy {
            holder: found,
            expires_in,
        } => {
            assert_eq!(found, holder);
            assert!(expires_in <= LONG, "{expires_in:?}");
        }
        acquired => panic!("the lock is {holder}'s, got {acquired:?}"),
    }
}

mod behaviour {
    use super::*;

    pub async fn a_completion_records_the_merged_commit_with_done(store: Arc<dyn Store>) {
        let store = &*store;
        write(store, plan("g", nodes(&["a", "b", "c"]), &[("a", "c")])).await;
        let a = claim(store, "g", "x", LONG).await.unwrap();
        let mut long = merged("a", COMMIT);
        long.diffstat = Some("x".repeat(DIFFSTAT_CAP * 2));
        assert_eq!(store.complete(&a, &long).await.unwrap().promoted, ["c"]);
        let a = store.task("g", "a").await.unwrap().unwrap();
        assert_eq!(
            (a.status, a.commit.as_deref()),
            (TaskStatus::Done, Some(COMMIT))
        );
        let diffstat = a.diffstat.unwrap();
        assert!(diffstat.len() <= DIFFSTAT_CAP, "{}", diffstat.len());
        assert!(diffstat.starts_with("xxx"), "{diffstat}");

        // complete_and_claim records it as well; a completion without one has none.
        let b = claim(store, "g", "x", LONG).await.unwrap();
        assert_eq!(b.task, "b");
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        let (_, next) = store
            .complete_and_claim(&b, &merged("b", other), ClaimScope::builder(None), LONG)
            .await
            .unwrap();
        let b = store.task("g", "b").await.unwrap().unwrap();
        assert_eq!(b.commit.as_deref(), Some(other));
        assert_eq!(
            b.diffstat.as_deref(),
            Some(" b.md | 1 +\n 1 file changed, 1 insertion(+)")
        );
        let ClaimOutcome::Claimed(c) = next else {
            panic!("c is claimed next, got {next:?}")
        };
        store.complete(&c, &result("c")).await.unwrap();
        let c = store.task("g", "c").await.unwrap().unwrap();
        assert_eq!((c.commit, c.diffstat), (None, None));
    }

    pub async fn the_goal_branch_is_set_once_and_outlives_a_replan(store: Arc<dyn Store>) {
        let store = &*store;
        match store.set_goal_branch("g", &branch("porki/g")).await {
            Err(StoreError::UnknownGoal { goal }) => assert_eq!(goal, "g"),
            other => panic!("a goal without a plan has no branch, got {other:?}"),
        }
        write(store, plan("g", nodes(&["a"]), &[])).await;
        assert_eq!(store.goal_status("g").await.unwrap().unwrap().branch, None);
        let first = branch("porki/g");
        assert_eq!(store.set_goal_branch("g", &first).await.unwrap(), first);
        assert_eq!(
            store.set_goal_branch("g", &branch("other")).await.unwrap(),
            first,
            "the first branch stays"
        );
        let status = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(status.branch, Some(first.clone()));

        let replace = WriteDagOptions {
            expected: Some(status.fingerprint),
            ..Default::default()
        };
        write_plan(store, plan("g", nodes(&["b"]), &[]), &replace, 100)
            .await
            .unwrap();
        let status = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(status.branch, Some(first), "the branch is the goal's");
    }

    pub async fn the_merge_lock_admits_one_live_lease_and_is_released_by_its_token_only(
        store: Arc<dyn Store>,
    ) {
        let store = &*store;
        write(store, plan("g", nodes(&["a", "b", "c"]), &[])).await;
        let a = claim(store, "g", "x", LONG).await.unwrap();
        let b = claim(store, "g", "y", LONG).await.unwrap();
        let lock = acquired(store, &a, LONG).await;
        assert_eq!((lock.goal.as_str(), lock.task.as_str()), ("g", "a"));
        // The same attempt asking again (a resend) holds the same lock.
        assert_eq!(acquired(store, &a, LONG).await, lock);
        assert_busy(store.acquire_merge_lock(&b, LONG).await.unwrap(), "a");

        // Another token neither renews nor releases it.
        let forged = MergeLock {
            token: "forged".into(),
            ..lock.clone()
        };
        assert!(!store.renew_merge_lock(&forged, LONG).await.unwrap());
        assert!(!store.release_merge_lock(&forged).await.unwrap());
        assert_busy(store.acquire_merge_lock(&b, LONG).await.unwrap(), "a");
        assert!(store.renew_merge_lock(&lock, LONG).await.unwrap());
        assert!(store.release_merge_lock(&lock).await.unwrap());
        assert!(!store.release_merge_lock(&lock).await.unwrap(), "once");

        // A holder whose lease was lost never takes it.
        store.drop_task("g", "b", "cancelled").await.unwrap();
        assert_lost(store.acquire_merge_lock(&b, LONG).await, "a merge lock");
        let stale = Lease {
            token: "stale".into(),
            ..a.clone()
        };
        assert_lost(store.acquire_merge_lock(&stale, LONG).await, "a merge lock");
        let a_lock = acquired(store, &a, LONG).await;
        assert_ne!(a_lock.token, lock.token, "a new lock");
        // A goal's lock is its own: another goal merges meanwhile.
        write(store, plan("h", nodes(&["a"]), &[])).await;
        let other = claim(store, "h", "z", LONG).await.unwrap();
        assert_eq!(acquired(store, &other, LONG).await.goal, "h");
    }

    pub async fn a_merge_lock_lasts_its_ttl_unless_renewed(store: Arc<dyn Store>) {
        let store = &*store;
        write(store, plan("g", nodes(&["a", "b"]), &[])).await;
        let a = claim(store, "g", "x", LONG).await.unwrap();
        let b = claim(store, "g", "y", LONG).await.unwrap();
        let lock = acquired(store, &a, SHORT * 2).await;
        tokio::time::sleep(SHORT).await;
        assert!(store.renew_merge_lock(&lock, SHORT * 2).await.unwrap());
        tokio::time::sleep(SHORT).await;
        assert_busy(store.acquire_merge_lock(&b, LONG).await.unwrap(), "a");
        tokio::time::sleep(SHORT * 2).await;
        // Expired: the next attempt takes it, and the old token is worth nothing.
        let next = acquired(store, &b, LONG).await;
        assert_eq!(next.task, "b");
        assert!(!store.renew_merge_lock(&lock, LONG).await.unwrap());
        assert!(!store.release_merge_lock(&lock).await.unwrap());
        assert_busy(store.acquire_merge_lock(&a, LONG).await.unwrap(), "b");
    }
}
