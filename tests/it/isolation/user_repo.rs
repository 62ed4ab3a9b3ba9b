//! A user's repository, adopted: porki works on its own branch and leaves the
//! checked-out branch, the index and every uncommitted file exactly as they
//! were, while the tasks' work lands on `porki/<goal>`.

use std::path::Path;
use std::time::Duration;

use super::{Project, counts, git_in, plan, task_field};
use crate::support::{RedisServer, temp_dir, wait_exit};

/// What a user sees of their repository's state.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: String,
    diff: String,
    staged: String,
    head: String,
    branch: String,
    untracked: String,
    stashes: String,
}

fn seen(repo: &Path) -> Seen {
    Seen {
        status: git_in(repo, &["status", "--porcelain", "--untracked-files=all"]),
        diff: git_in(repo, &["diff"]),
        staged: git_in(repo, &["diff", "--cached"]),
        head: git_in(repo, &["rev-parse", "HEAD"]),
        branch: git_in(repo, &["symbolic-ref", "HEAD"]),
        untracked: std::fs::read_to_string(repo.join("notes/draft.txt")).unwrap(),
        stashes: git_in(repo, &["stash", "list"]),
    }
}

/// A repository on branch `main` with one commit, then a staged change, an
/// unstaged change (on top of the staged one) and an untracked file.
fn user_repository(repo: &Path) {
    std::fs::create_dir_all(repo.join("notes")).unwrap();
    git_in(repo, &["init", "--quiet", "--initial-branch=main"]);
    git_in(repo, &["config", "user.name", "User"]);
    git_in(repo, &["config", "user.email", "user@example.com"]);
    std::fs::write(repo.join("app.txt"), "committed\n").unwrap();
    std::fs::write(repo.join("lib.txt"), "committed\n").unwrap();
    git_in(repo, &["add", "."]);
    git_in(repo, &["commit", "--quiet", "-m", "the user's commit"]);
    std::fs::write(repo.join("app.txt"), "committed\nstaged\n").unwrap();
    git_in(repo, &["add", "app.txt"]);
    std::fs::write(repo.join("app.txt"), "committed\nstaged\nunstaged\n").unwrap();
    std::fs::write(repo.join("lib.txt"), "unstaged only\n").unwrap();
    std::fs::write(repo.join("notes/draft.txt"), "untracked\n").unwrap();
}

#[test]
fn a_users_repository_with_uncommitted_changes_is_left_exactly_as_it_was() {
    let dir = temp_dir("iso-user-repo");
    let repo = dir.join("repo");
    user_repository(&repo);
    let before = seen(&repo);
    assert!(
        before.status.contains("MM app.txt")
            && before.status.contains(" M lib.txt")
            && before.status.contains("?? notes/draft.txt"),
        "{}",
        before.status
    );

    let redis = RedisServer::start();
    // The tasks also edit the files the user changed, in their worktrees.
    let project = Project::in_workspace(dir, repo.clone(), &plan(&[("t1", &[]), ("t2", &["t1"])]));
    project.behave("t1", "echo 'by t1' >> app.txt; echo t1 > t1.txt\n");
    project.behave(
        "t2",
        "echo 'by t2' > lib.txt; mkdir -p notes; echo t2 > notes/t2.txt\n",
    );
    let instructions = project.instructions("run.md", &[("a", None)]);
    let mut run = project
        .command(&redis.url(), &instructions, "run.log")
        .spawn()
        .unwrap();
    assert_eq!(
        wait_exit(&mut run, Duration::from_secs(90)),
        0,
        "{}",
        project.log("run.log")
    );

    assert_eq!(seen(&repo), before, "the user's repository is as it was");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).unwrap(),
        "committed\nstaged\nunstaged\n"
    );
    // The goal branch started at the user's HEAD (committed state only) and
    // holds each task's work once.
    let show = |path: &str| project.git(&["show", &format!("porki/g:{path}")]);
    assert_eq!(show("app.txt"), "committed\nby t1\n");
    assert_eq!(show("lib.txt"), "by t2\n");
    assert_eq!(show("t1.txt"), "t1\n");
    assert_eq!(show("notes/t2.txt"), "t2\n");
    assert!(
        !super::git_output(&repo, &["cat-file", "-e", "porki/g:notes/draft.txt"])
            .status
            .success(),
        "the user's untracked file stays out of the goal branch"
    );
    project.git(&["merge-base", "--is-ancestor", "main", "porki/g"]);
    assert_eq!(project.task_commits(), counts(&[("t1", 1), ("t2", 1)]));
    let mut conn = redis.conn();
    for t in ["t1", "t2"] {
        assert_eq!(
            task_field(&mut conn, t, "status").as_deref(),
            Some("DONE"),
            "{t}"
        );
    }
    assert_eq!(
        project.worktrees(),
        Vec::<String>::new(),
        "every worktree is removed"
    );
    project.git(&["fsck", "--no-progress"]);
}
