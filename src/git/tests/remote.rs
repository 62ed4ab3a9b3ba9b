//! Goal branches shared through a bare remote by two clones ("machines").

use super::*;

fn bare_remote() -> PathBuf {
    let dir = temp("remote").join("shared.git");
    std::fs::create_dir_all(&dir).unwrap();
    sh(&dir, &["init", "--quiet", "--bare"]);
    dir
}

async fn machine(remote: &Path, goal: &str) -> (PathBuf, GoalRepo) {
    let dir = temp("machine");
    let repo = GoalRepo::open_or_init(
        &git().await,
        &dir,
        goal,
        None,
        Some(remote.to_str().unwrap()),
    )
    .await
    .unwrap();
    (dir, repo)
}

#[tokio::test]
async fn two_clones_share_the_goal_branch_and_a_rejected_push_is_retried_onto_the_new_tip() {
    let remote = bare_remote();
    let (one_dir, one) = machine(&remote, "shared").await;
    let (two_dir, two) = machine(&remote, "shared").await;
    // Both start from the branch the first one pushed.
    let start = sh(&remote, &["rev-parse", "porki/shared"]);
    assert_eq!(one.tip().await.unwrap().as_str(), start);
    assert_eq!(two.tip().await.unwrap().as_str(), start);
    assert_eq!(two.kind(), RepoKind::Owned);
    assert_eq!(sh(&two_dir, &["status", "--porcelain"]), "");

    let a = task_commit(&one, "a", "a.txt", "a\n").await;
    let b = task_commit(&two, "b", "b.txt", "b\n").await;
    // Machine one pushes `a` while machine two is between its merge and its push.
    let (from, pushed) = (one_dir.clone(), a.to_string());
    let url = remote.to_str().unwrap().to_string();
    fail::cfg_callback("git-before-cas:shared", move || {
        sh(
            &from,
            &[
                "push",
                "--quiet",
                &url,
                &format!("{pushed}:refs/heads/porki/shared"),
            ],
        );
    })
    .unwrap();
    let outcome = two.merge(&b, "b", 1).await;
    fail::remove("git-before-cas:shared");
    assert!(matches!(outcome.unwrap(), MergeOutcome::TipMoved { .. }));
    assert_eq!(sh(&remote, &["rev-parse", "porki/shared"]), a.as_str());

    // Tried again (after the scan), it lands on top of `a`.
    let MergeOutcome::Merged {
        commit, checkout, ..
    } = two.merge(&b, "b", 1).await.unwrap()
    else {
        panic!("merged");
    };
    assert_eq!(checkout, Checkout::Updated);
    assert_eq!(sh(&remote, &["rev-parse", "porki/shared"]), commit.as_str());
    assert_eq!(read(&two_dir, "a.txt"), "a\n");
    // Machine one sees both, merged once each; its folder follows.
    let merged = one.merged_tasks().await.unwrap();
    assert_eq!(merged["a"].commit, a);
    assert_eq!(merged["b"].commit, commit);
    assert_eq!(read(&one_dir, "b.txt"), "b\n");
    assert_eq!(
        one.merge(&a, "a", 1).await.unwrap(),
        MergeOutcome::AlreadyMerged { commit: a.clone() }
    );
    let log = sh(&remote, &["log", "--format=%H", "porki/shared"]);
    assert_eq!(log.lines().filter(|l| *l == a.as_str()).count(), 1);
    assert_eq!(log.lines().filter(|l| *l == b.as_str()).count(), 1);
    sh(&remote, &["fsck", "--strict", "--no-progress"]);
    assert_sound(&one_dir);
    assert_sound(&two_dir);
}

#[tokio::test]
async fn a_push_the_remote_refuses_is_reported_with_its_message() {
    let remote = bare_remote();
    let (_dir, repo) = machine(&remote, "g").await;
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'porki/g is protected here' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let err = repo.merge(&a, "a", 1).await.unwrap_err();
    assert!(matches!(err, GitError::PushRejected { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("pre-receive hook declined"), "{text}");
    assert!(text.contains("porki/g is protected here"), "{text}");
    // Nothing moved, here or there.
    let start = sh(&remote, &["rev-parse", "porki/g"]);
    assert_eq!(repo.tip().await.unwrap().as_str(), start);
}

#[tokio::test]
async fn a_remote_that_cannot_be_fetched_is_refused_at_open() {
    let dir = temp("no-remote");
    let err = GoalRepo::open_or_init(&git().await, &dir, "g", None, Some("/nonexistent/repo.git"))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::RemoteUnreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/repo.git") && text.contains("--git-remote"),
        "{text}"
    );
}
