//! Commits in worktrees, merges into the goal branch, conflicts and their
//! worktrees, the compare-and-set, an owned folder following its branch.

use super::*;

async fn adopted(dir: &Path) -> GoalRepo {
    GoalRepo::open_or_init(&git().await, dir, "g", None, None)
        .await
        .unwrap()
}

/// `rev-list --parents -n1`: the commit's parents.
fn parents(dir: &Path, commit: &CommitId) -> Vec<String> {
    let line = sh(dir, &["rev-list", "--parents", "-n1", commit.as_str()]);
    line.split(' ').skip(1).map(str::to_string).collect()
}

#[tokio::test]
async fn a_commit_holds_every_change_not_ignored_with_the_agent_as_author_and_porkis_trailers() {
    let dir = user_repo();
    write(&dir, ".gitignore", "*.log\n");
    sh(&dir, &["add", ".gitignore"]);
    sh(&dir, &["commit", "--quiet", "-m", "ignore logs"]);
    let repo = adopted(&dir).await;
    let wt = repo
        .create_worktree("t1", &repo.tip().await.unwrap())
        .await
        .unwrap();
    write(&wt.path, "new/page.md", "# page\n");
    write(&wt.path, "debug.log", "noise\n");
    std::fs::remove_file(wt.path.join("README")).unwrap();
    let commit = repo
        .commit(&wt, &agent(), "Write the page\n\nAs planned.", 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sh(&wt.path, &["rev-parse", "porki-task/g/t1"]),
        commit.as_str()
    );
    let files = sh(
        &dir,
        &["show", "--format=", "--name-status", commit.as_str()],
    );
    assert_eq!(files, "D\tREADME\nA\tnew/page.md");
    let who = sh(
        &dir,
        &["log", "-1", "--format=%an <%ae>|%cn <%ce>", commit.as_str()],
    );
    assert_eq!(who, "builder <builder@porki>|porki <porki@localhost>");
    let message = sh(&dir, &["log", "-1", "--format=%B", commit.as_str()]);
    assert!(
        message.starts_with("Write the page\n\nAs planned.\n\n"),
        "{message}"
    );
    let parsed = sh(
        &dir,
        &[
            "-c",
            "trailer.separators=:",
            "log",
            "-1",
            "--format=%(trailers:only,unfold)",
            commit.as_str(),
        ],
    );
    assert_eq!(parsed, "Porki-Goal: g\nPorki-Task: t1\nPorki-Attempt: 3");
    // An attempt that changed nothing (or undid what it did) makes no commit.
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t2", &tip).await.unwrap();
    write(&wt.path, "scratch.txt", "gone soon\n");
    write(&wt.path, "debug.log", "ignored\n");
    std::fs::remove_file(wt.path.join("scratch.txt")).unwrap();
    assert_eq!(
        repo.commit(&wt, &agent(), "Nothing", 1).await.unwrap(),
        None
    );
    assert_eq!(sh(&dir, &["rev-parse", "porki-task/g/t2"]), tip.as_str());
    assert_sound(&dir);
}

#[tokio::test]
async fn work_a_cli_committed_itself_is_one_task_commit_on_the_worktrees_start() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t", &tip).await.unwrap();
    write(&wt.path, "x.txt", "x\n");
    sh(&wt.path, &["add", "x.txt"]);
    sh(
        &wt.path,
        &["commit", "--quiet", "-m", "the CLI's own commit"],
    );
    // All committed by the CLI, nothing left in the files: still the task's work.
    let commit = repo.commit(&wt, &agent(), "T", 1).await.unwrap().unwrap();
    assert_eq!(parents(&dir, &commit), [tip.to_string()]);
    assert_eq!(
        sh(&dir, &["show", "--format=", "--name-only", commit.as_str()]),
        "x.txt"
    );
    // A CLI that switched to a branch of its own: the task branch still gets it.
    let wt = repo.create_worktree("u", &tip).await.unwrap();
    sh(&wt.path, &["switch", "--quiet", "-c", "cli-branch"]);
    write(&wt.path, "y.txt", "y\n");
    let commit = repo.commit(&wt, &agent(), "U", 1).await.unwrap().unwrap();
    assert_eq!(sh(&dir, &["rev-parse", "porki-task/g/u"]), commit.as_str());
    assert_eq!(parents(&dir, &commit), [tip.to_string()]);
}

#[tokio::test]
async fn a_task_started_at_the_tip_is_a_fast_forward() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let outcome = repo.merge(&a, "a", 1).await.unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::Merged {
            commit: a.clone(),
            fast_forward: true,
            checkout: Checkout::Untouched
        }
    );
    assert_eq!(repo.tip().await.unwrap(), a);
    assert_eq!(sh(&dir, &["rev-parse", "porki/g"]), a.as_str());
}

#[tokio::test]
async fn tasks_started_at_one_tip_merge_with_a_merge_commit_whose_first_parent_is_the_tip() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let b = task_commit(&repo, "b", "b.txt", "b\n").await;
    repo.merge(&a, "a", 1).await.unwrap();
    let MergeOutcome::Merged {
        commit,
        fast_forward: false,
        ..
    } = repo.merge(&b, "b", 2).await.unwrap()
    else {
        panic!("a merge commit");
    };
    assert_eq!(parents(&dir, &commit), [a.to_string(), b.to_string()]);
    let message = sh(&dir, &["log", "-1", "--format=%B", commit.as_str()]);
    assert!(
        message.starts_with("Merge task b into porki/g\n"),
        "{message}"
    );
    assert!(
        message.ends_with("Porki-Task: b\nPorki-Attempt: 2"),
        "{message}"
    );
    assert_eq!(
        sh(&dir, &["ls-tree", "--name-only", "porki/g"]),
        "README\na.txt\nb.txt\nsrc"
    );
    let merged = repo.merged_tasks().await.unwrap();
    assert_eq!(merged["a"].commit, a);
    assert_eq!(merged["b"].commit, commit);
    assert_eq!(merged["b"].attempt, 2);
    assert_sound(&dir);
}

#[tokio::test]
async fn two_attempts_editing_the_same_line_conflict_and_the_merge_task_resolves_it() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let a = task_commit(&repo, "a", "src/lib.txt", "one\nTWO by a\nthree\n").await;
    let b = task_commit(&repo, "b", "src/lib.txt", "one\n2 by b\nthree\n").await;
    repo.merge(&a, "a", 1).await.unwrap();
    let outcome = repo.merge(&b, "b", 1).await.unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::Conflict {
            files: vec!["src/lib.txt".into()],
            tip: a.clone()
        }
    );
    assert_eq!(
        repo.tip().await.unwrap(),
        a,
        "a conflict leaves the goal branch alone"
    );

    let conflicted = repo.conflict_worktree("b.merge", &b).await.unwrap();
    assert_eq!(conflicted.files, ["src/lib.txt"]);
    let wt = &conflicted.worktree;
    let text = read(&wt.path, "src/lib.txt");
    assert!(
        text.contains("<<<<<<< ") && text.contains(">>>>>>> "),
        "{text}"
    );
    assert!(
        text.contains("TWO by a") && text.contains("2 by b"),
        "{text}"
    );
    assert_eq!(sh(&wt.path, &["rev-parse", "MERGE_HEAD"]), b.as_str());
    // Markers left: refused.
    let err = repo.commit(wt, &agent(), "Resolve", 1).await.unwrap_err();
    assert!(
        matches!(&err, GitError::UnresolvedConflict { files } if files == &["src/lib.txt"]),
        "{err}"
    );

    write(&wt.path, "src/lib.txt", "one\nTWO by a\n2 by b\nthree\n");
    let resolved = repo
        .commit(wt, &agent(), "Resolve b", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parents(&dir, &resolved), [a.to_string(), b.to_string()]);
    let outcome = repo.merge(&resolved, "b.merge", 1).await.unwrap();
    assert!(
        matches!(
            outcome,
            MergeOutcome::Merged {
                fast_forward: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        sh(&dir, &["show", "porki/g:src/lib.txt"]),
        "one\nTWO by a\n2 by b\nthree"
    );
    let log = sh(&dir, &["log", "--format=%H", "porki/g"]);
    for commit in [&a, &b, &resolved] {
        assert_eq!(log.lines().filter(|l| *l == commit.as_str()).count(), 1);
    }
    assert_sound(&dir);
}

/// git with no identity configured anywhere and none guessed (a fresh machine,
/// or a throwaway `HOME` as the CLIs are given).
async fn git_without_identity() -> Git {
    let dir = temp("no-identity");
    let wrapper = dir.join("git");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport HOME='{home}' XDG_CONFIG_HOME='{home}' GIT_CONFIG_NOSYSTEM=1 \
             GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=user.useConfigOnly GIT_CONFIG_VALUE_0=true\n\
             exec git \"$@\"\n",
            home = home.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    Git::detect(Some(&wrapper), &Secrets::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_merge_task_starts_its_merge_where_git_has_no_identity() {
    let dir = user_repo();
    let git = git_without_identity().await;
    let repo = GoalRepo::open_or_init(&git, &dir, "g", None, None)
        .await
        .unwrap();
    let a = task_commit(&repo, "a", "src/lib.txt", "one\nTWO by a\nthree\n").await;
    let b = task_commit(&repo, "b", "src/lib.txt", "one\n2 by b\nthree\n").await;
    repo.merge(&a, "a", 1).await.unwrap();
    let outcome = repo.merge(&b, "b", 1).await.unwrap();
    assert!(
        matches!(outcome, MergeOutcome::Conflict { .. }),
        "{outcome:?}"
    );
    let conflicted = repo.conflict_worktree("b.merge", &b).await.unwrap();
    assert_eq!(conflicted.files, ["src/lib.txt"]);
    write(
        &conflicted.worktree.path,
        "src/lib.txt",
        "one\nTWO by a\n2 by b\nthree\n",
    );
    let resolved = repo
        .commit(&conflicted.worktree, &agent(), "Resolve b", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parents(&dir, &resolved), [a.to_string(), b.to_string()]);
}

#[tokio::test]
async fn the_compare_and_set_refuses_a_merge_from_a_tip_that_moved() {
    let dir = user_repo();
    let repo = GoalRepo::open_or_init(&git().await, &dir, "cas", None, None)
        .await
        .unwrap();
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let b = task_commit(&repo, "b", "b.txt", "b\n").await;
    // Another process merges `b` while this one is between its merge and its
    // ref update.
    let (moving_dir, moved_to) = (dir.clone(), b.to_string());
    fail::cfg_callback("git-before-cas:cas", move || {
        sh(
            &moving_dir,
            &["update-ref", "refs/heads/porki/cas", &moved_to],
        );
    })
    .unwrap();
    let outcome = repo.merge(&a, "a", 1).await;
    fail::remove("git-before-cas:cas");
    let expected = sh(&dir, &["rev-parse", "porki/cas^"]);
    assert_eq!(
        outcome.unwrap(),
        MergeOutcome::TipMoved {
            expected: CommitId::parse(&expected).unwrap()
        }
    );
    assert_eq!(
        sh(&dir, &["rev-parse", "porki/cas"]),
        b.as_str(),
        "left as the other process set it"
    );
    // Tried again, it merges onto the new tip.
    let outcome = repo.merge(&a, "a", 1).await.unwrap();
    assert!(
        matches!(
            outcome,
            MergeOutcome::Merged {
                fast_forward: false,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn work_already_on_the_goal_branch_is_not_merged_again() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let first = task_commit(&repo, "a", "a.txt", "first\n").await;
    repo.merge(&first, "a", 1).await.unwrap();
    // A second attempt of the same task (the first's completion was lost).
    let second = task_commit(&repo, "a", "a.txt", "second\n").await;
    let outcome = repo.merge(&second, "a", 2).await.unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::AlreadyMerged {
            commit: first.clone()
        }
    );
    assert_eq!(repo.tip().await.unwrap(), first);
    // A commit the branch already holds.
    let outcome = repo.merge(&first, "other", 1).await.unwrap();
    assert_eq!(outcome, MergeOutcome::AlreadyMerged { commit: first });
}

#[tokio::test]
async fn an_owned_folder_follows_its_goal_branch_keeping_the_users_changes() {
    let dir = temp("owned-follow");
    let repo = GoalRepo::open_or_init(&git().await, &dir, "g", None, None)
        .await
        .unwrap();
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let outcome = repo.merge(&a, "a", 1).await.unwrap();
    assert!(
        matches!(
            outcome,
            MergeOutcome::Merged {
                checkout: Checkout::Updated,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(read(&dir, "a.txt"), "a\n");
    assert_eq!(sh(&dir, &["status", "--porcelain"]), "");

    write(&dir, "a.txt", "a, edited by the user\n");
    write(&dir, "notes.txt", "mine\n");
    let b = task_commit(&repo, "b", "b.txt", "b\n").await;
    let outcome = repo.merge(&b, "b", 1).await.unwrap();
    assert!(
        matches!(
            outcome,
            MergeOutcome::Merged {
                checkout: Checkout::Updated,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(read(&dir, "b.txt"), "b\n");
    assert_eq!(read(&dir, "a.txt"), "a, edited by the user\n");
    assert_eq!(
        sh(&dir, &["status", "--porcelain"]),
        "M a.txt\n?? notes.txt"
    );

    // A merge changing the file the user changed: the branch moves, the files stay.
    let c = task_commit(&repo, "c", "a.txt", "a by c\n").await;
    let outcome = repo.merge(&c, "c", 1).await.unwrap();
    let MergeOutcome::Merged {
        checkout: Checkout::Behind { message },
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(message.contains("git reset --hard porki/g"), "{message}");
    assert_eq!(read(&dir, "a.txt"), "a, edited by the user\n");
    assert_eq!(sh(&dir, &["rev-parse", "HEAD"]), c.as_str());
}
