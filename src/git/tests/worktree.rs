//! Attempt worktrees: made, replaced, removed, pruned, prepared.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;

async fn adopted(dir: &Path) -> GoalRepo {
    GoalRepo::open_or_init(&git().await, dir, "g", None, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worktree_is_made_at_the_commit_on_the_task_branch_in_porkis_hidden_folder() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t", &tip).await.unwrap();
    assert_eq!(wt.path, dir.join(".porki/worktrees/g/tasks/t"));
    assert_eq!(wt.branch.name(), "porki-task/g/t");
    assert_eq!(sh(&wt.path, &["rev-parse", "HEAD"]), tip.as_str());
    assert_eq!(
        sh(&wt.path, &["symbolic-ref", "HEAD"]),
        "refs/heads/porki-task/g/t"
    );
    assert_eq!(read(&wt.path, "README"), "hello\n");
    assert_eq!(sh(&wt.path, &["status", "--porcelain"]), "");
    assert!(sh(&dir, &["worktree", "list"]).contains(".porki/worktrees/g/tasks/t"));
    // The user's work tree does not see it as untracked files.
    assert_eq!(
        sh(&dir, &["status", "--porcelain", "--untracked-files=all"]),
        ""
    );
    assert_sound(&dir);
}

#[tokio::test]
async fn a_leftover_worktree_of_an_earlier_attempt_or_a_crash_is_replaced() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let tip = repo.tip().await.unwrap();
    let first = repo.create_worktree("t", &tip).await.unwrap();
    write(&first.path, "junk.txt", "half done\n");
    write(&first.path, "README", "half edited\n");
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    // Again, at another commit: a clean worktree there.
    let second = repo.create_worktree("t", &a).await.unwrap();
    assert_eq!(second.path, first.path);
    assert_eq!(sh(&second.path, &["rev-parse", "HEAD"]), a.as_str());
    assert!(!second.path.join("junk.txt").exists());
    assert_eq!(read(&second.path, "README"), "hello\n");
    // A folder git does not know (a crash while making it).
    repo.remove_worktree("t").await.unwrap();
    write(&first.path, "stray.txt", "x");
    let third = repo.create_worktree("t", &tip).await.unwrap();
    assert!(!third.path.join("stray.txt").exists());
    // A worktree git knows whose folder is gone.
    std::fs::remove_dir_all(&third.path).unwrap();
    let fourth = repo.create_worktree("t", &tip).await.unwrap();
    assert_eq!(read(&fourth.path, "README"), "hello\n");
    assert_sound(&dir);
}

#[tokio::test]
async fn a_removed_worktree_keeps_its_branch_and_prune_forgets_deleted_folders() {
    let dir = user_repo();
    let repo = adopted(&dir).await;
    let a = task_commit(&repo, "a", "a.txt", "a\n").await;
    repo.remove_worktree("a").await.unwrap();
    assert!(!repo.worktree_path("a").exists());
    assert_eq!(sh(&dir, &["rev-parse", "porki-task/g/a"]), a.as_str());
    repo.remove_worktree("a").await.unwrap();

    let wt = repo.create_worktree("b", &a).await.unwrap();
    std::fs::remove_dir_all(&wt.path).unwrap();
    assert!(sh(&dir, &["worktree", "list", "--porcelain"]).contains("prunable"));
    repo.prune_worktrees().await.unwrap();
    assert!(!sh(&dir, &["worktree", "list"]).contains("tasks/b"));
    assert_sound(&dir);
}

#[tokio::test]
async fn worktreeinclude_copies_the_ignored_files_it_names_and_no_other() {
    let dir = user_repo();
    write(&dir, ".gitignore", ".env\nlocal/\nbin/\n");
    write(
        &dir,
        ".worktreeinclude",
        ".env\nlocal/config.json\nbin/\nkept.txt\n",
    );
    sh(&dir, &["add", ".gitignore"]);
    sh(&dir, &["commit", "--quiet", "-m", "ignore"]);
    write(&dir, ".env", "TOKEN=1\n");
    write(&dir, "local/config.json", "{}\n");
    write(&dir, "local/other.json", "no\n");
    write(&dir, "notes.txt", "not named\n");
    // Named but not ignored: a task's commit would take it onto the goal branch.
    write(&dir, "kept.txt", "the user's to commit\n");
    write(&dir, "bin/run", "#!/bin/sh\n");
    std::fs::set_permissions(dir.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("run", dir.join("bin/link")).unwrap();
    // A file the branch holds is not overwritten.
    write(&dir, "README", "user's own\n");

    let repo = adopted(&dir).await;
    let wt = repo
        .create_worktree("t", &repo.tip().await.unwrap())
        .await
        .unwrap();
    assert_eq!(read(&wt.path, ".env"), "TOKEN=1\n");
    assert_eq!(read(&wt.path, "local/config.json"), "{}\n");
    assert!(!wt.path.join("local/other.json").exists());
    assert!(!wt.path.join("notes.txt").exists());
    assert!(!wt.path.join("kept.txt").exists());
    let mode = std::fs::metadata(wt.path.join("bin/run"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(wt.path.join("bin/link")).unwrap(),
        Path::new("run")
    );
    assert_eq!(read(&wt.path, "README"), "hello\n");
}

#[tokio::test]
async fn the_setup_command_runs_in_the_cli_folder_and_its_failure_carries_its_output() {
    let dir = user_repo();
    let repo = GoalRepo::open_or_init(&git().await, &dir.join("src"), "g", None, None)
        .await
        .unwrap()
        .with_setup(
            Some("pwd > where.txt; echo ready".into()),
            Duration::from_secs(30),
        );
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree("t", &tip).await.unwrap();
    assert_eq!(
        read(&wt.cli_dir, "where.txt").trim(),
        wt.cli_dir.to_str().unwrap()
    );

    let repo = repo.with_setup(
        Some("echo installing; echo 'npm ERR! broken' >&2; exit 3".into()),
        Duration::from_secs(30),
    );
    let err = repo.create_worktree("u", &tip).await.unwrap_err();
    let GitError::SetupFailed { status, output, .. } = &err else {
        panic!("{err}");
    };
    assert!(status.contains('3'), "{status}");
    assert!(
        output.contains("installing") && output.contains("npm ERR! broken"),
        "{output}"
    );
    assert!(err.to_string().contains("npm ERR! broken"), "{err}");

    let repo = repo.with_setup(Some("sleep 30".into()), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = repo.create_worktree("v", &tip).await.unwrap_err();
    assert!(err.to_string().contains("stopped after"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
