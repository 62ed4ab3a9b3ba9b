//! Finding or making a goal's repository, and refusing bad input.

use super::*;

/// Everything a user sees of their own work tree's state.
fn user_state(dir: &Path) -> Vec<String> {
    vec![
        sh(dir, &["status", "--porcelain=v1", "--untracked-files=all"]),
        sh(dir, &["diff"]),
        sh(dir, &["diff", "--cached"]),
        sh(dir, &["rev-parse", "--symbolic-full-name", "HEAD"]),
        sh(dir, &["rev-parse", "HEAD"]),
        sh(dir, &["stash", "list"]),
        read(dir, "README"),
        std::fs::read_to_string(dir.join("notes.txt")).unwrap_or_default(),
    ]
}

#[tokio::test]
async fn an_adopted_repository_with_uncommitted_changes_is_left_exactly_as_it_was() {
    let dir = user_repo();
    write(&dir, "README", "hello\nmy unstaged edit\n");
    write(&dir, "src/lib.txt", "one\nstaged\nthree\n");
    sh(&dir, &["add", "src/lib.txt"]);
    write(&dir, "notes.txt", "untracked\n");
    let before = user_state(&dir);
    let head = sh(&dir, &["rev-parse", "HEAD"]);

    let repo = GoalRepo::open_or_init(&git().await, &dir, "g", None, None)
        .await
        .unwrap();
    assert_eq!(repo.kind(), RepoKind::Adopted);
    // The goal branch starts at HEAD, with porki's empty start commit on top.
    assert_eq!(sh(&dir, &["rev-parse", "porki/g^"]), head);
    assert_eq!(
        sh(&dir, &["rev-parse", "porki/g^{tree}"]),
        sh(&dir, &["rev-parse", "HEAD^{tree}"])
    );
    // A whole round: two tasks, one merge commit, a conflict worktree, gc.
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    let b = task_commit(&repo, "b", "README", "hello\nfrom b\n").await;
    let c = task_commit(&repo, "c", "README", "hello\nfrom c\n").await;
    assert!(matches!(
        repo.merge(&a, "a", 1).await.unwrap(),
        MergeOutcome::Merged { .. }
    ));
    assert!(matches!(
        repo.merge(&b, "b", 1).await.unwrap(),
        MergeOutcome::Merged { .. }
    ));
    assert!(matches!(
        repo.merge(&c, "c", 1).await.unwrap(),
        MergeOutcome::Conflict { .. }
    ));
    repo.conflict_worktree("c.merge", &c).await.unwrap();
    repo.gc(false).await.unwrap();

    assert_eq!(user_state(&dir), before);
    assert_eq!(read(&dir, "README"), "hello\nmy unstaged edit\n");
    assert_sound(&dir);
}

#[tokio::test]
async fn a_workspace_subfolder_runs_the_cli_in_the_matching_folder_of_the_worktree() {
    let dir = user_repo();
    let repo = GoalRepo::open_or_init(&git().await, &dir.join("src"), "g", None, None)
        .await
        .unwrap();
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t", &tip).await.unwrap();
    assert_eq!(wt.cli_dir, wt.path.join("src"));
    assert_eq!(read(&wt.cli_dir, "lib.txt"), "one\ntwo\nthree\n");
    // A workspace folder not in git yet is made in the worktree too.
    let repo = GoalRepo::open_or_init(&git().await, &dir.join("docs/new"), "h", None, None)
        .await
        .unwrap();
    let wt = repo
        .create_worktree("t", &repo.tip().await.unwrap())
        .await
        .unwrap();
    assert!(wt.cli_dir.ends_with("docs/new") && wt.cli_dir.is_dir());
    write(&wt.cli_dir, "page.md", "# page\n");
    let commit = repo
        .commit(&wt, &agent(), "Page", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sh(&dir, &["show", "--format=", "--name-only", commit.as_str()]),
        "docs/new/page.md"
    );
}

#[tokio::test]
async fn a_workspace_the_enclosing_repository_ignores_gets_a_repository_of_its_own() {
    // A build or scratch folder (`target/`, say) is not the enclosing project's
    // work: porki must not check that project out into worktrees for it.
    let dir = user_repo();
    write(&dir, ".gitignore", "scratch/\n");
    let before = user_state(&dir);
    let branches = sh(&dir, &["branch", "--list"]);
    let workspace = dir.join("scratch/ws");
    let repo = GoalRepo::open_or_init(&git().await, &workspace, "g", None, None)
        .await
        .unwrap();
    assert_eq!(repo.kind(), RepoKind::Owned);
    assert_eq!(repo.work_tree(), workspace.as_path());
    assert_eq!(user_state(&dir), before);
    assert_eq!(
        sh(&dir, &["branch", "--list"]),
        branches,
        "no branch made in the enclosing repository"
    );
}

#[tokio::test]
async fn a_folder_in_no_repository_becomes_one_whose_checkout_is_the_goal_branch() {
    let dir = temp("owned").join("ws");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "existing.txt", "mine\n");
    let git = git().await;
    let repo = GoalRepo::open_or_init(&git, &dir, "g", None, None)
        .await
        .unwrap();
    assert_eq!(repo.kind(), RepoKind::Owned);
    assert_eq!(repo.work_tree(), dir.canonicalize().unwrap());
    assert_eq!(sh(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/porki/g");
    let log = sh(&dir, &["log", "--format=%B", "porki/g"]);
    assert!(log.contains("Porki-Goal: g\nPorki-Start: none"), "{log}");
    assert_eq!(sh(&dir, &["ls-tree", "-r", "HEAD"]), "");
    let tip = repo.tip().await.unwrap();
    // Opened again (a restart), it is the same; a second goal there adopts it.
    let again = GoalRepo::open_or_init(&git, &dir, "g", None, None)
        .await
        .unwrap();
    assert_eq!(again.kind(), RepoKind::Owned);
    assert_eq!(again.tip().await.unwrap(), tip);
    let other = GoalRepo::open_or_init(&git, &dir, "h", None, None)
        .await
        .unwrap();
    assert_eq!(other.kind(), RepoKind::Adopted);
    assert_eq!(sh(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/porki/g");
    assert_eq!(read(&dir, "existing.txt"), "mine\n");
    assert_sound(&dir);
}

#[tokio::test]
async fn open_makes_nothing_where_there_is_no_goal_branch() {
    let git = git().await;
    let nowhere = temp("open-nothing");
    assert!(
        GoalRepo::open(&git, &nowhere, "g", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!nowhere.join(".git").exists());
    let dir = user_repo();
    assert!(
        GoalRepo::open(&git, &dir, "g", None)
            .await
            .unwrap()
            .is_none()
    );
    GoalRepo::open_or_init(&git, &dir, "g", None, None)
        .await
        .unwrap();
    assert!(
        GoalRepo::open(&git, &dir, "g", None)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn base_ref_sets_the_start_and_a_missing_one_is_refused_by_name() {
    let dir = user_repo();
    let first = sh(&dir, &["rev-parse", "HEAD"]);
    write(&dir, "README", "second\n");
    sh(&dir, &["commit", "--quiet", "-am", "second"]);
    sh(&dir, &["tag", "v1", &first]);
    let git = git().await;
    GoalRepo::open_or_init(&git, &dir, "g", Some("v1"), None)
        .await
        .unwrap();
    assert_eq!(sh(&dir, &["rev-parse", "porki/g^"]), first);

    let err = GoalRepo::open_or_init(&git, &dir, "h", Some("no-such-branch"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::BaseRefMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"no-such-branch\"") && text.contains("leave --base-ref out"),
        "{text}"
    );
    let err = GoalRepo::open_or_init(&git, &dir, "h", Some("--help"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::BaseRefMissing { .. }), "{err}");
    assert!(sh(&dir, &["branch", "--list", "porki/h"]).is_empty());
}

#[tokio::test]
async fn a_workspace_that_cannot_be_made_is_refused_saying_what_to_do() {
    let dir = temp("unwritable");
    write(&dir, "file", "x");
    let err = GoalRepo::open_or_init(&git().await, &dir.join("file/ws"), "g", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::NotWritable { .. }), "{err}");
    assert!(
        err.to_string().contains("choose another --workspace"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rebase_in_progress_is_refused_only_when_the_goal_would_start_at_its_head() {
    let dir = user_repo();
    sh(&dir, &["switch", "--quiet", "-c", "topic"]);
    write(&dir, "README", "topic\n");
    sh(&dir, &["commit", "--quiet", "-am", "topic"]);
    sh(&dir, &["switch", "--quiet", "main"]);
    write(&dir, "README", "main\n");
    sh(&dir, &["commit", "--quiet", "-am", "main"]);
    sh(&dir, &["switch", "--quiet", "topic"]);
    let rebase = Command::new("git")
        .args([
            "-c",
            "user.name=U",
            "-c",
            "user.email=u@e",
            "rebase",
            "main",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !rebase.status.success(),
        "the rebase should stop on a conflict"
    );
    let before = user_state(&dir);

    let git = git().await;
    let err = GoalRepo::open_or_init(&git, &dir, "g", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::OperationInProgress { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("a rebase") && text.contains("git rebase --abort"),
        "{text}"
    );
    // Started from a branch of the user's choice, the rebase does not matter.
    let repo = GoalRepo::open_or_init(&git, &dir, "g", Some("main"), None)
        .await
        .unwrap();
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    assert!(matches!(
        repo.merge(&a, "a", 1).await.unwrap(),
        MergeOutcome::Merged { .. }
    ));
    assert_eq!(user_state(&dir), before);
}

#[tokio::test]
async fn a_git_too_old_or_missing_is_a_clear_error() {
    let dir = temp("old-git");
    let fake = dir.join("git");
    std::fs::write(&fake, "#!/bin/sh\necho 'git version 2.37.1'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Git::detect(Some(&fake), &Secrets::default())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::TooOld { .. }), "{err}");
    assert!(err.to_string().contains("2.38 or newer"), "{err}");
    let err = Git::detect(Some(&dir.join("missing")), &Secrets::default())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::NotInstalled { .. }), "{err}");
    assert!(err.to_string().contains("--isolation shared"), "{err}");
    assert!(git().await.version() >= GitVersion(2, 38));
}

#[tokio::test]
async fn branch_names_made_from_hostile_ids_are_valid_refs_to_git() {
    let dir = user_repo();
    for id in [
        "t1",
        ".x",
        "a..b",
        "x.lock",
        "end.",
        "a b",
        "@",
        "a@{1}",
        "x~^:?*[\\",
        "é",
        "",
    ] {
        let branch = Branch::task("g", id);
        sh(&dir, &["check-ref-format", &branch.full()]);
        sh(&dir, &["branch", branch.name()]);
    }
    assert_eq!(
        sh(&dir, &["branch", "--list", "porki-task/g/*"])
            .lines()
            .count(),
        11
    );
}

#[tokio::test]
async fn git_runs_without_porkis_secrets_without_prompts_and_in_english() {
    let dir = user_repo();
    // A secret equal to a variable's value hides that variable.
    let home = std::env::var("HOME").expect("HOME is set");
    let git = Git::detect(None, &Secrets::new("memory://", Some(&home)))
        .await
        .unwrap();
    let env = git
        .run(&dir, &["-c", "alias.envdump=!env", "envdump"])
        .await
        .unwrap();
    assert!(!env.lines().any(|l| l.starts_with("HOME=")), "{env}");
    assert!(env.lines().any(|l| l == "GIT_TERMINAL_PROMPT=0"), "{env}");
    assert!(env.lines().any(|l| l == "LC_ALL=C"), "{env}");
    let err = git.run(&dir, &["rev-parse", "no-such"]).await.unwrap_err();
    assert!(err.to_string().contains("unknown revision"), "{err}");
}

#[tokio::test]
async fn a_git_command_past_its_time_limit_is_stopped_with_everything_it_started() {
    let dir = user_repo();
    let git = git()
        .await
        .with_timeout(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = git
        .run(&dir, &["-c", "alias.slow=!sleep 1 && touch late", "slow"])
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::TimedOut { .. }), "{err}");
    assert!(err.to_string().contains("password"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !dir.join("late").exists(),
        "the alias's shell was killed too"
    );
}

#[tokio::test]
async fn processes_opening_one_new_workspace_at_once_share_one_repository() {
    // Several `porki run` started together on a fresh workspace each find no
    // repository and run `git init` in the same folder at once.
    for round in 0..5 {
        let dir = temp(&format!("init-race-{round}"));
        let git = git().await;
        let opened = futures::future::join_all(
            (0..4).map(|_| GoalRepo::open_or_init(&git, &dir, "g", None, None)),
        )
        .await;
        let mut tips = Vec::new();
        for repo in opened {
            let repo = repo.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(repo.kind(), RepoKind::Owned);
            tips.push(repo.tip().await.unwrap());
        }
        tips.dedup();
        assert_eq!(tips.len(), 1, "one goal branch: {tips:?}");
        assert_sound(&dir);
    }
}
