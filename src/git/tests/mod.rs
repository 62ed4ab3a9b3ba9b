//! The git module against the real `git` (the one on `PATH`; run them again
//! with `PATH=/usr/bin:$PATH` for Debian bookworm's 2.39), each test in its
//! own temp folders. They never skip: without git they fail saying how to
//! install it.

mod commit_merge;
mod remote;
mod repo;
mod scan_diff_gc;
mod worktree;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::llm::Secrets;

/// The git on `PATH`, checked.
async fn git() -> Git {
    Git::detect(None, &Secrets::default()).await.expect(
        "these tests need git 2.38 or newer on PATH: install it (Debian: `apt-get install git`)",
    )
}

/// A fresh empty folder.
fn temp(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "porki-git-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs git as a user would (with an identity), panicking on failure; its stdout.
fn sh(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=User", "-c", "user.email=user@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("these tests need git on PATH: install it (Debian: `apt-get install git`)");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A user's repository: `main` with a committed `README` and `src/lib.txt`.
fn user_repo() -> PathBuf {
    let dir = temp("user");
    sh(&dir, &["init", "--quiet"]);
    write(&dir, "README", "hello\n");
    write(&dir, "src/lib.txt", "one\ntwo\nthree\n");
    sh(&dir, &["add", "."]);
    sh(&dir, &["commit", "--quiet", "-m", "first"]);
    dir
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

fn agent() -> Identity {
    Identity::agent("builder").unwrap()
}

/// A task's worktree at the tip with `file` written and committed.
async fn task_commit(repo: &GoalRepo, task: &str, file: &str, text: &str) -> CommitId {
    let tip = repo.tip().await.unwrap();
    let wt = repo.create_worktree(task, &tip).await.unwrap();
    write(&wt.cli_dir, file, text);
    repo.commit(&wt, &agent(), &format!("Do {task}"), 1)
        .await
        .unwrap()
        .expect("a change")
}

/// `git fsck` finds nothing wrong and `git worktree list` reads every worktree.
fn assert_sound(dir: &Path) {
    sh(dir, &["fsck", "--strict", "--no-progress"]);
    let list = sh(dir, &["worktree", "list", "--porcelain"]);
    assert!(!list.contains("prunable"), "{list}");
}

/// The agent keeps a `GoalRepo` in an `Arc` and awaits its calls in actors
/// and spawned tasks: it and its futures must cross threads (checked when
/// this compiles).
#[allow(dead_code)]
fn a_goal_repo_and_its_futures_cross_threads(repo: &GoalRepo, c: &CommitId, wt: &Worktree) {
    fn send<T: Send + Sync>(_: &T) {}
    fn send_future<T: Send>(_: T) {}
    send(repo);
    send_future(repo.tip());
    send_future(repo.create_worktree("t", c));
    send_future(repo.commit(wt, &agent(), "m", 1));
    send_future(repo.merge(c, "t", 1));
    send_future(repo.conflict_worktree("t", c));
    send_future(repo.merged_tasks());
    send_future(repo.task_commit("t"));
    send_future(repo.commit_diff(c, 1));
    send_future(repo.gc(false));
}
