//! Reading merged tasks from trailers, task branches, diffs, and gc.

use super::*;

async fn open(dir: &Path, goal: &str) -> GoalRepo {
    GoalRepo::open_or_init(&git().await, dir, goal, None, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_scan_finds_this_goals_tasks_since_its_start_and_reads_again_a_rewritten_branch() {
    let dir = user_repo();
    let repo = open(&dir, "g").await;
    assert!(repo.merged_tasks().await.unwrap().is_empty());
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    repo.merge(&a, "a", 1).await.unwrap();
    let start = sh(&dir, &["rev-parse", "porki/g^"]);
    assert_eq!(repo.merged("a").await.unwrap().unwrap().commit, a);
    let b = task_commit(&repo, "b", "b.txt", "b\n").await;
    repo.merge(&b, "b", 1).await.unwrap();
    let merged = repo.merged_tasks().await.unwrap();
    assert_eq!(merged.keys().count(), 2);
    assert_eq!(merged["b"].commit, b);
    assert_eq!(repo.merged("c").await.unwrap(), None);

    // The branch rewritten under porki (a remote reset it): read again.
    sh(&dir, &["update-ref", "refs/heads/porki/g", &start]);
    assert!(repo.merged_tasks().await.unwrap().is_empty());

    // The user merges the goal's work into main and deletes the branch; a new
    // goal of the same id, started from main, has merged nothing yet.
    sh(&dir, &["update-ref", "refs/heads/porki/g", b.as_str()]);
    sh(&dir, &["merge", "--quiet", "--no-edit", "porki/g"]);
    sh(&dir, &["branch", "--quiet", "-D", "porki/g"]);
    let again = open(&dir, "g").await;
    assert!(again.merged_tasks().await.unwrap().is_empty());
    // Another goal's trailers never count.
    let other = open(&dir, "h").await;
    let ha = task_commit(&other, "a", "ha.txt", "h\n").await;
    other.merge(&ha, "a", 1).await.unwrap();
    assert!(again.merged_tasks().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_task_branch_shows_an_earlier_attempts_commit_only_when_that_task_made_it() {
    let dir = user_repo();
    let repo = open(&dir, "g").await;
    assert_eq!(repo.task_commit("t").await.unwrap(), None);
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t", &tip).await.unwrap();
    assert_eq!(
        repo.task_commit("t").await.unwrap(),
        None,
        "at the tip, nothing made yet"
    );
    write(&wt.path, "t.txt", "t\n");
    let commit = repo.commit(&wt, &agent(), "T", 4).await.unwrap().unwrap();
    let found = repo.task_commit("t").await.unwrap().unwrap();
    assert_eq!(found.commit, commit);
    assert_eq!(
        found.trailers,
        Trailers {
            goal: "g".into(),
            task: "t".into(),
            attempt: 4
        }
    );
}

#[tokio::test]
async fn a_commit_diff_is_against_its_first_parent_and_capped() {
    let dir = user_repo();
    let repo = open(&dir, "g").await;
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let b = task_commit(&repo, "b", "b.txt", &"b\n".repeat(500)).await;
    repo.merge(&a, "a", 1).await.unwrap();
    let MergeOutcome::Merged { commit, .. } = repo.merge(&b, "b", 1).await.unwrap() else {
        panic!("merged");
    };
    let diff = repo.commit_diff(&commit, 1 << 20).await.unwrap();
    assert!(!diff.truncated);
    assert!(
        diff.stat.contains("b.txt") && !diff.stat.contains("a.txt"),
        "{}",
        diff.stat
    );
    assert_eq!(diff.summary(), "1 file changed, 500 insertions(+)");
    assert!(
        diff.patch.starts_with("diff --git a/b.txt b/b.txt"),
        "{}",
        diff.patch
    );
    assert_eq!(diff.patch.matches("\n+b").count(), 500);

    let capped = repo.commit_diff(&commit, 300).await.unwrap();
    assert!(capped.truncated);
    assert!(capped.patch.len() <= 300 && capped.patch.starts_with("diff --git"));
    // The empty first commit of an owned repository.
    let owned = open(&temp("owned-diff"), "g").await;
    let root = owned.tip().await.unwrap();
    let diff = owned.commit_diff(&root, 1000).await.unwrap();
    assert_eq!(
        (diff.stat.as_str(), diff.patch.as_str(), diff.summary()),
        ("", "", "")
    );
}

#[tokio::test]
async fn gc_removes_the_goals_worktrees_and_task_branches_and_keeps_the_goal_branch() {
    let dir = user_repo();
    let repo = open(&dir, "g").await;
    let other = open(&dir, "g2").await;
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    task_commit(&repo, "b", "b.txt", "b\n").await;
    task_commit(&other, "x", "x.txt", "x\n").await;
    repo.merge(&a, "a", 1).await.unwrap();
    let tip = repo.tip().await.unwrap();

    let kept = repo.gc(true).await.unwrap();
    assert_eq!(
        kept,
        GcReport {
            worktrees: 2,
            branches: 0
        }
    );
    assert!(!repo.common_dir().join("porki/g").exists());
    assert_eq!(
        sh(&dir, &["branch", "--list", "porki-task/g/*"])
            .lines()
            .count(),
        2
    );

    let report = repo.gc(false).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            worktrees: 0,
            branches: 2
        }
    );
    assert_eq!(sh(&dir, &["branch", "--list", "porki-task/g/*"]), "");
    assert_eq!(sh(&dir, &["rev-parse", "porki/g"]), tip.as_str());
    // The other goal's are untouched.
    assert!(other.worktree_path("x").exists());
    assert_eq!(
        sh(
            &dir,
            &[
                "for-each-ref",
                "--format=%(refname:short)",
                "refs/heads/porki-task/g2/"
            ]
        ),
        "porki-task/g2/x"
    );
    let list = sh(&dir, &["worktree", "list"]);
    assert!(
        !list.contains("/worktrees/g/") && list.contains("/worktrees/g2/"),
        "{list}"
    );
    assert_sound(&dir);
}
