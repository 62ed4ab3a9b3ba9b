//! Cleaning up after isolation: the reaper removes the worktree of a task it
//! FAILED (the attempt died with the process), the cleanup at start runs `git
//! worktree prune`, and `porki gc` removes a finished goal's worktrees and task
//! branches (`--keep-branches` keeps the branches), never the goal branch.

use std::path::PathBuf;
use std::time::Duration;

use super::{GOAL, Project, git_in, git_output, plan, task_field};
use crate::support::{RedisServer, porki, success_stdout, wait_exit};

/// Longest a run here may take.
const LIMIT: Duration = Duration::from_secs(90);

impl Project {
    /// The attempt worktree folder of `task`.
    fn worktree_dir(&self, task: &str) -> PathBuf {
        self.workspace
            .join(".porki/worktrees")
            .join(GOAL)
            .join("tasks")
            .join(task)
    }

    /// The task branches in the workspace's repository.
    fn task_branches(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/porki-task/",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Runs the goal to the end with one agent; fails the test unless it completes.
    fn complete(&self, redis: &RedisServer) {
        let instructions = self.instructions("run.md", &[("a", None)]);
        let mut run = self
            .command(&redis.url(), &instructions, "run.log")
            .spawn()
            .unwrap();
        assert_eq!(wait_exit(&mut run, LIMIT), 0, "{}", self.log("run.log"));
        assert_eq!(
            task_field(&mut redis.conn(), "t2", "status").as_deref(),
            Some("DONE")
        );
    }

    /// A worktree of `task`'s branch where porki keeps its attempts, as a
    /// process killed there leaves it.
    fn leave_worktree(&self, task: &str) -> PathBuf {
        let dir = self.worktree_dir(task);
        let branch = format!("porki-task/{GOAL}/{task}");
        git_in(
            &self.workspace,
            &["worktree", "add", "--quiet", dir.to_str().unwrap(), &branch],
        );
        std::fs::write(dir.join("half.txt"), "half done\n").unwrap();
        dir
    }
}

/// `porki gc` removing every finished goal of the store at `url`.
fn gc(url: &str, extra: &[&str]) -> String {
    let out = porki()
        .args(["gc", "--retain-finished", "0s", "--redis-url", url])
        .args(extra)
        .output()
        .unwrap();
    success_stdout(&out)
}

#[test]
fn the_reaper_removes_the_worktree_of_a_task_it_fails() {
    let redis = RedisServer::start();
    let project = Project::new("iso-reaper", &plan(&[("t1", &[]), ("t2", &[])]));
    // t1's first run kills porki (its parent) with half its work written.
    project.behave(
        "t1",
        "if ! marked killed; then\n  echo half > t1.txt; mark killed; kill -9 $PPID; exit 0\nfi\necho 'work of t1' > t1.txt\n",
    );
    let a = project.instructions("a.md", &[("a", None)]);
    let mut first = project
        .command(&redis.url(), &a, "a.log")
        .args(["--max-attempts", "1"])
        .spawn()
        .unwrap();
    assert_eq!(
        wait_exit(&mut first, LIMIT),
        -1,
        "killed: {}",
        project.log("a.log")
    );
    let dead = project.worktree_dir("t1");
    assert!(
        dead.join("t1.txt").exists(),
        "the dead attempt left its worktree"
    );

    // Another process reaps t1 once its lease expires: FAILED at max attempts.
    let b = project.instructions("b.md", &[("b", None)]);
    let mut second = project
        .command(&redis.url(), &b, "b.log")
        .args(["--max-attempts", "1"])
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut second, LIMIT), 1, "{}", project.log("b.log"));
    let mut conn = redis.conn();
    assert_eq!(
        task_field(&mut conn, "t1", "status").as_deref(),
        Some("FAILED")
    );
    assert_eq!(
        task_field(&mut conn, "t2", "status").as_deref(),
        Some("DONE")
    );
    assert_eq!(project.runs_of("t1"), 1, "{:?}", project.runs());
    assert!(!dead.exists(), "the failed task's worktree is removed");
    assert_eq!(
        project.worktrees(),
        Vec::<String>::new(),
        "git forgot it too"
    );
    // Its branch stays until porki gc.
    assert!(
        project
            .task_branches()
            .contains(&"porki-task/g/t1".to_string())
    );
    project.git(&["fsck", "--no-progress"]);
}

#[test]
fn the_cleanup_at_start_prunes_worktrees_whose_folders_are_gone() {
    let redis = RedisServer::start();
    let project = Project::new("iso-prune", &plan(&[("t1", &[]), ("t2", &["t1"])]));
    // t2's first run kills porki; its next waits until git lists no worktree
    // whose folder is gone.
    project.behave(
        "t2",
        "if ! marked killed; then mark killed; kill -9 $PPID; exit 0; fi
         pruned() { ! git worktree list --porcelain | grep -q '^prunable'; }
         until_ok pruned; echo 'work of t2' > t2.txt
",
    );
    let a = project.instructions("a.md", &[("a", None)]);
    let mut first = project.command(&redis.url(), &a, "a.log").spawn().unwrap();
    assert_eq!(
        wait_exit(&mut first, LIMIT),
        -1,
        "killed: {}",
        project.log("a.log")
    );
    // A worktree whose folder went (removed by hand, or a removal cut short).
    let gone = project.leave_worktree("t1");
    std::fs::remove_dir_all(&gone).unwrap();
    let listed = project.git(&["worktree", "list", "--porcelain"]);
    assert!(listed.contains("prunable"), "{listed}");

    let b = project.instructions("b.md", &[("b", None)]);
    let mut second = project.command(&redis.url(), &b, "b.log").spawn().unwrap();
    assert_eq!(wait_exit(&mut second, LIMIT), 0, "{}", project.log("b.log"));
    assert_eq!(project.runs_of("t2"), 2, "{:?}", project.runs());
    assert_eq!(project.git(&["show", "porki/g:t2.txt"]), "work of t2\n");
    assert_eq!(project.worktrees(), Vec::<String>::new());
    project.git(&["fsck", "--no-progress"]);
}

#[test]
fn porki_gc_removes_a_finished_goals_worktrees_and_task_branches_but_not_its_branch() {
    let redis = RedisServer::start();
    let project = Project::new("iso-gc", &plan(&[("t1", &[]), ("t2", &["t1"])]));
    project.complete(&redis);
    let tip = project.tip();
    let left = project.leave_worktree("t2");
    assert_eq!(
        project.task_branches(),
        ["porki-task/g/t1", "porki-task/g/t2"]
    );

    let out = gc(&redis.url(), &[]);
    assert!(out.contains("removed goal g"), "{out}");
    assert!(
        out.contains("removed 1 worktree and 2 task branches of goal g"),
        "{out}"
    );
    assert!(!left.exists());
    assert_eq!(project.worktrees(), Vec::<String>::new());
    assert_eq!(project.task_branches(), Vec::<String>::new());
    assert!(!project.workspace.join(".porki/worktrees/g").exists());
    assert_eq!(
        project.tip(),
        tip,
        "the goal branch is the result: it stays"
    );
    assert_eq!(project.git(&["show", "porki/g:t2.txt"]), "work of t2\n");
    project.git(&["fsck", "--no-progress"]);
}

#[test]
fn porki_gc_keep_branches_removes_the_worktrees_and_keeps_the_task_branches() {
    let redis = RedisServer::start();
    let project = Project::new("iso-gc-keep", &plan(&[("t1", &[]), ("t2", &["t1"])]));
    project.complete(&redis);
    let left = project.leave_worktree("t1");
    let branches = project.task_branches();
    let commits = git_in(
        &project.workspace,
        &["rev-parse", "porki-task/g/t1", "porki-task/g/t2"],
    );

    let dry = gc(&redis.url(), &["--keep-branches", "--dry-run"]);
    assert!(
        dry.contains("would remove the worktrees of goal g in"),
        "{dry}"
    );
    assert!(left.exists(), "a dry run removes nothing");
    assert_eq!(project.worktrees().len(), 1);

    let out = gc(&redis.url(), &["--keep-branches"]);
    assert!(
        out.contains("removed 1 worktree and 0 task branches of goal g"),
        "{out}"
    );
    assert!(!left.exists());
    assert_eq!(project.worktrees(), Vec::<String>::new());
    assert_eq!(project.task_branches(), branches);
    assert_eq!(
        git_in(
            &project.workspace,
            &["rev-parse", "porki-task/g/t1", "porki-task/g/t2"]
        ),
        commits
    );
    assert!(
        git_output(&project.workspace, &["rev-parse", "--verify", "porki/g"])
            .status
            .success()
    );
}
