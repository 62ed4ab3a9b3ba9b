//! Two builders edit one file at once: the first merges, the second's work
//! conflicts, and its `.merge` task (the provider, finding the markers in its
//! working directory, keeps both sides) merges it. A merge task that cannot
//! land is bounded: markers left fail it, and a third conflict fails the task,
//! each naming the files.

use std::time::Duration;

use super::{Project, counts, plan, task_field};
use crate::support::{RedisServer, wait_exit};

/// Longest a goal here may take.
const LIMIT: Duration = Duration::from_secs(90);

/// w1 and w2 write `shared.txt` in their CLIs at the same time; w1 answers once
/// w2 has written, w2 once w1 is merged, so w2 is the one that conflicts.
fn two_writers(name: &str) -> Project {
    let project = Project::new(name, &plan(&[("w1", &[]), ("w2", &[])]));
    project.behave(
        "w1",
        "echo 'line of w1' > shared.txt; mark w1; until_ok marked w2\n",
    );
    project.behave(
        "w2",
        "echo 'line of w2' > shared.txt; mark w2; until_ok merged w1\n",
    );
    project
}

#[test]
fn two_builders_editing_one_file_at_once_are_merged_once_each_through_a_merge_task() {
    let redis = RedisServer::start();
    let project = two_writers("iso-conflict");
    let instructions = project.instructions("run.md", &[("a", None), ("b", None)]);
    let mut run = project
        .command(&redis.url(), &instructions, "run.log")
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut run, LIMIT), 0, "{}", project.log("run.log"));

    let merged = project.git(&["show", "porki/g:shared.txt"]);
    assert_eq!(merged, "line of w1\nline of w2\n", "both changes are kept");
    assert_eq!(
        project.task_commits(),
        counts(&[("w1", 1), ("w2", 1)]),
        "each task's own commit is on the goal branch once"
    );
    // The merge task's commit is the merge of w2's work.
    let merge = project.git(&[
        "log",
        "--format=%H %P",
        "-1",
        "--grep=^Porki-Task: w2.merge$",
        "porki/g",
    ]);
    assert_eq!(
        merge.split_whitespace().count(),
        3,
        "a merge commit: {merge}"
    );
    for task in ["w1", "w2", "w2.merge"] {
        assert_eq!(
            project.runs_of(task),
            1,
            "{task} ran once: {:?}",
            project.runs()
        );
    }
    let mut conn = redis.conn();
    let conflict = task_field(&mut conn, "w2.merge", "conflict").unwrap();
    assert!(
        conflict.contains("shared.txt") && conflict.contains("w1"),
        "{conflict}"
    );
    for task in ["w1", "w2", "w2.merge"] {
        assert_eq!(
            task_field(&mut conn, task, "status").as_deref(),
            Some("DONE"),
            "{task}"
        );
    }
    let w2 = task_field(&mut conn, "w2", "commit").expect("w2 records its commit");
    assert_eq!(
        w2,
        merge.split_whitespace().next().unwrap(),
        "w2 is DONE with the merge"
    );
    // The workspace folder (porki's own repository) holds the result, checked out.
    let folder = std::fs::read_to_string(project.workspace.join("shared.txt")).unwrap();
    assert_eq!(folder, merged);
    assert_eq!(project.git(&["status", "--porcelain"]), "");
    assert_eq!(
        project.worktrees(),
        Vec::<String>::new(),
        "every worktree is removed"
    );
    project.git(&["fsck", "--no-progress"]);
}

#[test]
fn a_merge_task_that_leaves_the_markers_fails_the_task_naming_the_files() {
    let redis = RedisServer::start();
    let project = two_writers("iso-markers");
    // A merge task that changes nothing: the markers stay.
    project.behave("w2.merge", "true\n");
    let instructions = project.instructions("run.md", &[("a", None), ("b", None)]);
    let mut run = project
        .command(&redis.url(), &instructions, "run.log")
        .args(["--max-attempts", "2"])
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut run, LIMIT), 1, "{}", project.log("run.log"));
    let mut conn = redis.conn();
    assert_eq!(
        task_field(&mut conn, "w2", "status").as_deref(),
        Some("FAILED")
    );
    let error = task_field(&mut conn, "w2", "last_error").unwrap();
    assert!(
        error.contains("w2.merge")
            && error.contains("shared.txt")
            && error.contains("conflict markers"),
        "{error}"
    );
    assert_eq!(
        project.runs_of("w2.merge"),
        2,
        "each attempt of the merge task ran once"
    );
    assert_eq!(
        task_field(&mut conn, "w2.merge-2", "status"),
        None,
        "no second merge task"
    );
    let tip = project.git(&["show", "porki/g:shared.txt"]);
    assert_eq!(tip, "line of w1\n", "nothing with markers was merged");
    assert_eq!(project.task_commits(), counts(&[("w1", 1)]));
    assert_eq!(
        project.worktrees(),
        Vec::<String>::new(),
        "every worktree is removed"
    );
}

#[test]
fn a_task_whose_merges_keep_conflicting_fails_naming_the_files_after_two_merge_tasks() {
    let redis = RedisServer::start();
    // s conflicts with a; while s.merge resolves, b rewrites the file and
    // merges first; while s.merge-2 resolves, c does the same.
    let project = Project::new(
        "iso-conflict-bound",
        &plan(&[("s", &[]), ("a", &[]), ("b", &["a"]), ("c", &["b"])]),
    );
    project.behave("s", "echo S > shared.txt; until_ok merged a\n");
    project.behave("a", "echo A > shared.txt\n");
    project.behave("s.merge", "mark s.merge; resolve; until_ok merged b\n");
    project.behave(
        "b",
        "until_ok marked s.merge; printf 'B\\nB\\nB\\n' > shared.txt\n",
    );
    project.behave("s.merge-2", "mark s.merge-2; resolve; until_ok merged c\n");
    project.behave(
        "c",
        "until_ok marked s.merge-2; printf 'C\\nC\\nC\\nC\\n' > shared.txt\n",
    );
    let agents = [("x", None), ("y", None), ("z", None)];
    let instructions = project.instructions("run.md", &agents);
    let mut run = project
        .command(&redis.url(), &instructions, "run.log")
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut run, LIMIT), 1, "{}", project.log("run.log"));
    let mut conn = redis.conn();
    assert_eq!(
        task_field(&mut conn, "s", "status").as_deref(),
        Some("FAILED")
    );
    let error = task_field(&mut conn, "s", "last_error").unwrap();
    assert!(
        error.contains("after 2 merge task(s)") && error.contains("shared.txt"),
        "{error}"
    );
    for merge in ["s.merge", "s.merge-2"] {
        assert_eq!(
            task_field(&mut conn, merge, "status").as_deref(),
            Some("FAILED"),
            "{merge}"
        );
        assert_eq!(project.runs_of(merge), 1, "{merge} ran once");
    }
    assert_eq!(
        task_field(&mut conn, "s.merge-3", "status"),
        None,
        "no third merge task"
    );
    for task in ["a", "b", "c"] {
        assert_eq!(
            task_field(&mut conn, task, "status").as_deref(),
            Some("DONE"),
            "{task}"
        );
    }
    assert_eq!(
        project.merged_tasks(),
        counts(&[("a", 1), ("b", 1), ("c", 1)]),
        "nothing of s reached the goal branch"
    );
    assert_eq!(project.git(&["show", "porki/g:shared.txt"]), "C\nC\nC\nC\n");
}
