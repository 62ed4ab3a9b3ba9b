//! Crashes and stalls around the merge. A process killed (kill -9) between
//! its commit and its merge, or between its merge and the store's completion,
//! loses nothing and merges nothing twice: the next attempt finds the work
//! (committed on the task branch, or merged with the task's trailer) and
//! completes without running the CLI again. A holder stopped past its lease
//! (SIGSTOP) never moves the goal branch, whether it stopped right before its
//! compare-and-set or right after its CLI finished.

use std::process::Child;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Project, counts, git_output, plan, task_field};
use crate::support::{RedisServer, signal, wait_exit, wait_for, wait_until};

/// Longest a run here may take.
const LIMIT: Duration = Duration::from_secs(90);

/// The newest commit on `branch` carrying `task`'s trailer.
fn trailer_commit(project: &Project, branch: &str, task: &str) -> Option<String> {
    let grep = format!("--grep=^Porki-Task: {task}$");
    let out = git_output(
        &project.workspace,
        &["log", "-1", "--format=%H", &grep, branch, "--"],
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// How many of porki's merge commits on the goal branch carry each task's trailer.
fn merge_commits(project: &Project) -> std::collections::BTreeMap<String, usize> {
    super::task_commits(&project.git(&["log", "--merges", "--format=%B%x00", "porki/g", "--"]))
}

/// Three tasks (t3 after t1 and t2) for one agent.
fn three_tasks(name: &str) -> (Project, std::path::PathBuf) {
    let project = Project::new(
        name,
        &plan(&[("t1", &[]), ("t2", &[]), ("t3", &["t1", "t2"])]),
    );
    let instructions = project.instructions("run.md", &[("a", None)]);
    (project, instructions)
}

/// Runs the goal with `failpoint` sleeping once, kills the process (kill -9)
/// once `at` finds the task held there, then runs it again to the end;
/// returns the project, the task and what `at` found.
fn killed_then_finished(
    name: &str,
    failpoint: &str,
    at: impl Fn(&Project, &mut redis::Connection, &str) -> Option<String>,
) -> (Project, RedisServer, String, String) {
    let redis = RedisServer::start();
    let (project, instructions) = three_tasks(name);
    let mut conn = redis.conn();
    let mut first = project
        .command(&redis.url(), &instructions, "first.log")
        .env("FAILPOINTS", format!("{failpoint}=1*sleep(30000)"))
        .spawn()
        .unwrap();
    let (task, found) = wait_for(
        Duration::from_secs(30),
        "the first merge reaches the fail point",
        || {
            ["t1", "t2"]
                .into_iter()
                .find_map(|t| at(&project, &mut conn, t).map(|f| (t.to_string(), f)))
        },
    );
    signal(&first, Signal::SIGKILL);
    let _ = first.wait();
    assert!(
        at(&project, &mut conn, &task).is_some(),
        "{task} was still there when killed: {}",
        project.log("first.log")
    );
    let mut second = project
        .command(&redis.url(), &instructions, "second.log")
        .spawn()
        .unwrap();
    assert_eq!(
        wait_exit(&mut second, LIMIT),
        0,
        "{}",
        project.log("second.log")
    );
    for t in ["t1", "t2", "t3"] {
        assert_eq!(
            task_field(&mut conn, t, "status").as_deref(),
            Some("DONE"),
            "{t}"
        );
        assert_eq!(project.runs_of(t), 1, "{t} ran once: {:?}", project.runs());
    }
    assert_eq!(
        project.task_commits(),
        counts(&[("t1", 1), ("t2", 1), ("t3", 1)]),
        "each task's commit is on the goal branch once"
    );
    assert!(
        merge_commits(&project).values().all(|n| *n == 1),
        "no task merged twice: {:?}",
        merge_commits(&project)
    );
    assert_eq!(
        project.worktrees(),
        Vec::<String>::new(),
        "every worktree is removed"
    );
    project.git(&["fsck", "--no-progress"]);
    (project, redis, task, found)
}

#[test]
fn killed_between_commit_and_merge_the_committed_work_is_merged_without_running_again() {
    // At the fail point: the task's commit is on its branch, not on the goal branch.
    let (project, redis, task, committed) =
        killed_then_finished("iso-kill-before-merge", "agent-before-merge", |p, _, t| {
            let branch = format!("porki-task/g/{t}");
            let commit = trailer_commit(p, &branch, t)?;
            trailer_commit(p, "porki/g", t).is_none().then_some(commit)
        });
    assert!(
        git_output(
            &project.workspace,
            &["merge-base", "--is-ancestor", &committed, "porki/g"]
        )
        .status
        .success(),
        "the killed attempt's commit {committed} of {task} is what was merged"
    );
    let recorded = task_field(&mut redis.conn(), &task, "commit").unwrap();
    assert_eq!(
        Some(recorded),
        trailer_commit(&project, "porki/g", &task),
        "{task} is DONE with the goal branch's commit holding it"
    );
    let log = project.log("second.log");
    assert!(log.contains("not running it again"), "{log}");
}

#[test]
fn killed_between_merge_and_completion_the_task_completes_with_the_merged_commit() {
    // At the fail point: the goal branch holds the task, the store still runs it.
    let (project, redis, task, merged) =
        killed_then_finished("iso-kill-after-merge", "agent-after-merge", |p, conn, t| {
            let merged = trailer_commit(p, "porki/g", t)?;
            (task_field(conn, t, "status").as_deref() == Some("RUNNING")).then_some(merged)
        });
    let recorded = task_field(&mut redis.conn(), &task, "commit").unwrap();
    assert_eq!(
        recorded, merged,
        "{task} is DONE with the commit merged before the kill"
    );
    let log = project.log("second.log");
    assert!(log.contains("not running it again"), "{log}");
}

/// Two processes of one workspace: `a` (started with `failpoints`) and `b`.
fn holder_and_reclaimer(name: &str, failpoints: &str) -> (RedisServer, Project, Child) {
    let redis = RedisServer::start();
    let project = Project::new(name, &plan(&[("t1", &[]), ("t2", &["t1"])]));
    let a = project.instructions("a.md", &[("a", None)]);
    let holder = project
        .command(&redis.url(), &a, "a.log")
        .env("FAILPOINTS", failpoints)
        .spawn()
        .unwrap();
    (redis, project, holder)
}

/// Runs process `b` to the end of the goal while `holder` stays stopped, then
/// continues `holder` and checks it changed nothing on the goal branch.
fn reclaim_then_continue(redis: &RedisServer, project: &Project, mut holder: Child) {
    let b = project.instructions("b.md", &[("b", None)]);
    let mut reclaimer = project.command(&redis.url(), &b, "b.log").spawn().unwrap();
    assert_eq!(
        wait_exit(&mut reclaimer, LIMIT),
        0,
        "{}",
        project.log("b.log")
    );
    let tip = project.tip();
    let reflog = project.git(&["reflog", "porki/g", "--"]);
    signal(&holder, Signal::SIGCONT);
    assert_eq!(wait_exit(&mut holder, LIMIT), 0, "{}", project.log("a.log"));
    assert_eq!(
        project.tip(),
        tip,
        "the stopped holder did not move the goal branch"
    );
    assert_eq!(project.git(&["reflog", "porki/g", "--"]), reflog);
    assert_eq!(project.task_commits(), counts(&[("t1", 1), ("t2", 1)]));
    assert_eq!(project.merged_tasks(), counts(&[("t1", 1), ("t2", 1)]));
    let mut conn = redis.conn();
    for t in ["t1", "t2"] {
        assert_eq!(
            task_field(&mut conn, t, "status").as_deref(),
            Some("DONE"),
            "{t}"
        );
    }
    project.git(&["fsck", "--no-progress"]);
}

#[test]
fn a_holder_stopped_at_its_compare_and_set_past_its_lease_never_moves_the_goal_branch() {
    let (redis, project, holder) =
        holder_and_reclaimer("iso-stop-cas", "git-before-cas:g=1*sleep(8000)");
    // t1 committed: the holder is on its way to the compare-and-set, where it sleeps.
    wait_until(Duration::from_secs(30), "a commits t1", || {
        trailer_commit(&project, "porki-task/g/t1", "t1").is_some()
    });
    std::thread::sleep(Duration::from_millis(1000));
    signal(&holder, Signal::SIGSTOP);
    assert_eq!(trailer_commit(&project, "porki/g", "t1"), None);
    reclaim_then_continue(&redis, &project, holder);
    assert_eq!(
        project.runs_of("t1"),
        1,
        "b merged a's commit: {:?}",
        project.runs()
    );
    let log = project.log("a.log");
    assert!(
        log.contains("the goal branch moved while merging"),
        "a reached its compare-and-set: {log}"
    );
    assert!(log.contains("the lease was lost before the merge"), "{log}");
}

#[test]
fn a_holder_stopped_after_its_cli_run_past_its_lease_never_merges_nor_disturbs_the_next() {
    let (redis, project, holder) = holder_and_reclaimer("iso-stop-cli", "");
    // The first run stops porki (its parent) as it ends; the second, b's,
    // writes half its work, lets the holder go on, and finishes later.
    project.behave(
        "t1",
        "if ! marked first; then\n  mark first; echo 'work of a' > t1.txt; kill -STOP $PPID\n\
         else\n  echo half > t1.txt; mark half; until_ok marked continued; sleep 2; echo 'work of b' > t1.txt\nfi\n",
    );
    wait_until(
        Duration::from_secs(30),
        "a's CLI run ends, stopping a",
        || project.dir.join("marks/first").exists(),
    );
    let continuer = {
        let dir = project.dir.clone();
        let pid = holder.id();
        std::thread::spawn(move || {
            wait_until(Duration::from_secs(60), "b's run is half done", || {
                dir.join("marks/half").exists()
            });
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGCONT)
                .unwrap();
            std::fs::write(dir.join("marks/continued"), "").unwrap();
        })
    };
    reclaim_then_continue(&redis, &project, holder);
    continuer.join().unwrap();
    assert_eq!(
        project.git(&["show", "porki/g:t1.txt"]),
        "work of b\n",
        "the goal branch holds one attempt's whole work: {:?}",
        project.runs()
    );
    assert_eq!(project.runs_of("t1"), 2, "{:?}", project.runs());
}

#[test]
fn a_holder_stalled_past_its_lease_after_its_cli_neither_commits_nor_removes_the_next_holders_worktree()
 {
    // a stalls (the whole process, as under SIGSTOP) between its CLI's end and
    // its commit, for longer than its lease; b redoes t1 in the same worktree
    // and is still writing when a wakes up.
    let (redis, project, holder) =
        holder_and_reclaimer("iso-stall-commit", "agent-before-complete=1*sleep(6000)");
    project.behave(
        "t1",
        "if ! marked first; then\n  mark first; echo 'work of a' > t1.txt\nelse\n  echo half > t1.txt\n  \
         woke() { [ $(($(date +%s) - $(stat -c %Y \"$dir/marks/first\"))) -ge 8 ]; }\n  \
         until_ok woke; echo 'work of b' > t1.txt\nfi\n",
    );
    wait_until(Duration::from_secs(30), "a's CLI run ends", || {
        project.dir.join("marks/first").exists()
    });
    let mut holder = holder;
    let b = project.instructions("b.md", &[("b", None)]);
    let mut reclaimer = project.command(&redis.url(), &b, "b.log").spawn().unwrap();
    assert_eq!(
        wait_exit(&mut reclaimer, LIMIT),
        0,
        "{}",
        project.log("b.log")
    );
    assert_eq!(wait_exit(&mut holder, LIMIT), 0, "{}", project.log("a.log"));
    assert_eq!(project.git(&["show", "porki/g:t1.txt"]), "work of b\n");
    assert_eq!(project.runs_of("t1"), 2, "{:?}", project.runs());
    assert_eq!(project.task_commits(), counts(&[("t1", 1), ("t2", 1)]));
    let attempts = project.git(&["log", "--format=%B", "porki-task/g/t1", "--"]);
    assert!(
        !attempts.contains("Porki-Attempt: 1"),
        "the stalled holder committed nothing: {attempts}"
    );
    let log = project.log("a.log");
    assert!(
        log.contains("its worktree is left to the task's next holder"),
        "{log}"
    );
    assert_eq!(project.worktrees(), Vec::<String>::new());
    project.git(&["fsck", "--no-progress"]);
}
