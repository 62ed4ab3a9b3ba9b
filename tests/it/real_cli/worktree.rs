//! Worktree isolation (docs/isolation.md) with the real CLIs: each attempt's
//! CLI works in its own git worktree and porki merges its commit into the goal
//! branch `porki/<goal>`.
//!
//! - Two builders edit the same line of one file at once (claude; codex): one
//!   merges, the other conflicts, and its `.merge` task (told the file and the
//!   tasks of both sides) resolves the markers with the CLI's own tools; the
//!   goal branch holds both edits, each task's commit once.
//! - A reviewer's prompt holds the reviewed commit's diff (codex).
//! - `.worktreeinclude` brings an ignored `.env` into each new worktree and
//!   `--worktree-setup` runs there before the CLI (claude; codex); a failing
//!   setup fails the attempt with its output and runs no CLI (claude).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{GOAL, Setup, status, task, text};
use crate::support::RedisServer;
use crate::support::clis::{self, target_dir};
use crate::support::git_in as git;
use crate::support::model::{ModelCall, ModelServer, Work};

const BRANCH: &str = "porki/cli-goal";

/// A test's folders with `instructions` and a model planning `tasks`.
fn setup(provider: &'static str, name: &str, instructions: &str, tasks: &[&str]) -> Setup {
    let dir = target_dir(&format!("{provider}-wt-{name}"));
    std::fs::write(dir.join("INSTRUCTIONS.md"), instructions).unwrap();
    let model = ModelServer::start(tasks);
    let home = dir.join("home");
    let env = match provider {
        "claude" => clis::claude_env(&home, &model.url()),
        _ => clis::codex_env(&home, &model.url()),
    };
    let workspace_root = dir.join("workspace");
    Setup {
        cli: clis::bin_dir().join(provider),
        dir,
        model,
        env,
        provider,
        workspace_root,
    }
}

/// A user's repository at `dir` holding `files`, committed on `main`.
fn user_repo(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet", "-b", "main"]);
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", "the user's work"]);
    dir.to_path_buf()
}

/// The porki prompt of `task`'s execute calls, as the model received it.
fn execute_request(calls: &[ModelCall], task: &str) -> String {
    let task = format!("{GOAL}/{task}");
    calls
        .iter()
        .find(|c| c.phase.as_deref() == Some("execute") && c.task.as_deref() == Some(&task))
        .unwrap_or_else(|| panic!("no execute call for {task}"))
        .text
        .clone()
}

/// What each tool call the CLIs made returned, by task.
fn tool_results(calls: &[ModelCall]) -> Vec<(Option<String>, String)> {
    calls
        .iter()
        .filter_map(|c| Some((c.task.clone(), c.tool_result.clone()?)))
        .collect()
}

const SHARED: &str = "shared.txt";
const BASE: &str = "alpha\ncolour: grey\nomega\n";

/// Two builders, `amber` and `cobalt`, each changing the one line of
/// `shared.txt` at once in an adopted repository,
/// with `provider`; panics on what went wrong.
fn two_builders_edit_one_line(provider: &'static str) {
    let setup = setup(
        provider,
        "same-line",
        &format!(
            "# Two builders, one file\n\nEach task recolours shared.txt.\n\n\
             ## Agents\n\n### one\n- Goal: {GOAL}\n- Cadence: 1s\n\n\
             ### two\n- Goal: {GOAL}\n- Cadence: 1s\n"
        ),
        &["amber", "cobalt"],
    );
    let repo = user_repo(&setup.dir.join("repo"), &[(SHARED, BASE)]);
    setup.model.set_edges(&[]);
    for colour in ["amber", "cobalt"] {
        setup.model.set_work(
            colour,
            Work::Edit {
                path: SHARED.into(),
                old: "colour: grey".into(),
                new: format!("colour: {colour}"),
            },
        );
    }
    setup.model.set_together(&["amber", "cobalt"]);
    let redis = RedisServer::start();
    let output = setup.run(
        &redis.url(),
        &[
            "--workspace",
            repo.to_str().unwrap(),
            "--isolation",
            "worktree",
        ],
    );
    let log = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{provider}: {log}\ntool results: {:#?}",
        tool_results(&setup.model.calls())
    );

    let goal = status(&redis.url());
    assert_eq!(goal["branch"], BRANCH, "{goal}");
    let merges: Vec<&Value> = goal["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "merge")
        .collect();
    assert_eq!(merges.len(), 1, "{provider}: one merge task: {goal}");
    let merge = merges[0]["id"].as_str().unwrap();
    let ours = merge.strip_suffix(".merge").unwrap();
    let theirs = if ours == "amber" { "cobalt" } else { "amber" };
    for id in ["amber", "cobalt", merge] {
        assert_eq!(task(&goal, id)["state"], "DONE", "{provider}: {goal}");
    }
    // The merge task was told the file and the tasks of both sides.
    let request = execute_request(&setup.model.calls(), merge);
    for words in [
        SHARED,
        &format!("work of {ours}"),
        &format!("conflicted with {theirs}"),
    ] {
        assert!(
            request.contains(words),
            "{provider}: {words:?} not in {request}"
        );
    }

    // Each CLI worked in its task's own worktree: it said so to the model,
    // and its tools' results came back (the merge task: read, then edit).
    let calls = setup.model.calls();
    let worktrees = repo
        .canonicalize()
        .unwrap()
        .join(".porki/worktrees")
        .join(GOAL);
    for id in ["amber", "cobalt", merge] {
        let task = format!("{GOAL}/{id}");
        let mine: Vec<&ModelCall> = calls
            .iter()
            .filter(|c| c.phase.as_deref() == Some("execute") && c.task.as_deref() == Some(&task))
            .collect();
        let cwd = worktrees.join("tasks").join(id);
        for call in &mine {
            assert_eq!(call.cwd.as_deref(), cwd.to_str(), "{provider}: {id}");
        }
        let results: Vec<&str> = mine
            .iter()
            .filter_map(|c| c.tool_result.as_deref())
            .collect();
        let expected = match (provider, id == merge) {
            // claude reads a file before it edits it; codex patches it blind.
            ("claude", _) | (_, true) => 2,
            _ => 1,
        };
        assert_eq!(results.len(), expected, "{provider}: {id}: {results:#?}");
        let edited = results[expected - 1];
        let said = match provider {
            "claude" => format!("{}/{SHARED} has been updated successfully", cwd.display()),
            _ => "Script completed".to_string(),
        };
        assert!(edited.contains(&said), "{provider}: {id}: {edited}");
        if id == merge {
            // The merge task's CLI found the markers in its worktree's file.
            assert!(
                results[0].contains("<<<<<<< HEAD"),
                "{provider}: {results:#?}"
            );
        }
    }

    // Both edits are on the goal branch, the first merged first, no marker left.
    let file = git(&repo, &["show", &format!("{BRANCH}:{SHARED}")]);
    assert_eq!(
        file,
        format!("alpha\ncolour: {theirs}\ncolour: {ours}\nomega\n"),
        "{provider}"
    );
    // Each task's own commit once; the merge task's is the merge commit.
    let tasks = git(
        &repo,
        &[
            "log",
            "--no-merges",
            "--format=%(trailers:key=Porki-Task,valueonly)",
            BRANCH,
        ],
    );
    let mut tasks: Vec<&str> = tasks.split_whitespace().collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["amber", "cobalt"], "{provider}");
    let merged = git(
        &repo,
        &[
            "log",
            "--merges",
            "--format=%(trailers:key=Porki-Task,valueonly)",
            BRANCH,
        ],
    );
    assert_eq!(
        merged.split_whitespace().collect::<Vec<_>>(),
        [merge],
        "{provider}"
    );
    assert_eq!(
        goal["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == ours)
            .unwrap()["commit"],
        git(&repo, &["rev-parse", BRANCH]).trim(),
        "{provider}: the task is DONE with the merge task's commit"
    );
    // The user's branch and files are as they were.
    assert_eq!(
        git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(std::fs::read_to_string(repo.join(SHARED)).unwrap(), BASE);
    git(&repo, &["fsck", "--no-progress"]);
}

/// Runs `test` with claude and with codex at once; panics if either did.
fn both(test: fn(&'static str)) {
    let claude = std::thread::spawn(move || test("claude"));
    let codex = std::thread::spawn(move || test("codex"));
    let (claude, codex) = (claude.join(), codex.join());
    for outcome in [claude, codex] {
        if let Err(e) = outcome {
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn two_builders_editing_one_line_at_once_both_land_through_a_merge_task() {
    both(two_builders_edit_one_line);
}

#[test]
fn a_reviewers_prompt_holds_the_reviewed_commits_diff() {
    let setup = setup(
        "codex",
        "review",
        &format!(
            "# A reviewed goal\n\nWrite one file; a reviewer checks it.\n\n\
             ## Agents\n\n### maker\n- Goal: {GOAL}\n- Cadence: 1s\n\n\
             ### checker\n- Goal: {GOAL}\n- Role: qa\n- Kind: reviewer\n- Cadence: 1s\n"
        ),
        &["t1"],
    );
    let redis = RedisServer::start();
    let output = setup.run(&redis.url(), &["--isolation", "worktree"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let goal = status(&redis.url());
    let reviewed = task(&goal, "t1");
    assert_eq!(reviewed["state"], "DONE", "{goal}");
    assert_eq!(task(&goal, "t1.review")["state"], "DONE", "{goal}");
    let commit = reviewed["commit"].as_str().expect("t1 has its commit");

    let request = execute_request(&setup.model.calls(), "t1.review");
    let repo = setup.workspace();
    // The stat, then the patch, of the reviewed commit.
    let stat = git(&repo, &["show", "--stat", "--format=", commit]);
    let file_line = stat.lines().next().unwrap().trim();
    assert!(file_line.starts_with("artifacts/t1.md |"), "{stat}");
    for line in [
        file_line,
        "diff --git a/artifacts/t1.md b/artifacts/t1.md",
        "+# t1",
        "+Written by the stand-in model for goal cli-goal.",
    ] {
        assert!(
            request.contains(line),
            "{line:?} not in the review's prompt: {request}"
        );
    }
}

/// An adopted repository whose `.worktreeinclude` names its ignored `.env`
/// and an untracked file it does not ignore; `setup.out` is ignored too.
fn repo_with_local_files(setup: &Setup) -> PathBuf {
    let repo = user_repo(
        &setup.dir.join("repo"),
        &[
            (".gitignore", ".env\nsetup.out\n"),
            (".worktreeinclude", ".env\nlocal.conf\n"),
        ],
    );
    std::fs::write(repo.join(".env"), "API_TOKEN=from-the-users-env\n").unwrap();
    std::fs::write(repo.join("local.conf"), "not ignored\n").unwrap();
    repo
}

/// Two chained tasks in their own worktrees with `provider`: `env` copies
/// `.env` and `ready` copies the setup's ignored `setup.out` into committed
/// files; the setup logs where it ran and the `.env` it found there.
fn worktrees_are_prepared(provider: &'static str) {
    let setup = setup(
        provider,
        "include",
        &format!(
            "# A goal needing local files\n\n## Agents\n\n### one\n- Goal: {GOAL}\n- Cadence: 1s\n"
        ),
        &["env", "ready"],
    );
    let repo = repo_with_local_files(&setup);
    for (task, from) in [("env", ".env"), ("ready", "setup.out")] {
        setup.model.set_work(
            task,
            Work::Copy {
                from: from.into(),
                to: format!("seen-{task}.txt"),
            },
        );
    }
    let log = setup.dir.join("setup.log");
    let command = format!(
        "echo \"$PWD $(cat .env)\" >> '{}'; echo \"set up in $PWD\" > setup.out",
        log.display()
    );
    let output = setup.run(
        "memory://",
        &[
            "--workspace",
            repo.to_str().unwrap(),
            "--isolation",
            "worktree",
            "--worktree-setup",
            &command,
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{provider}: {}",
        text(&output)
    );
    let worktree = |task: &str| {
        let repo = repo.canonicalize().unwrap();
        repo.join(".porki/worktrees")
            .join(GOAL)
            .join("tasks")
            .join(task)
    };
    // The setup ran once in each new worktree, the ignored .env already there.
    let ran = std::fs::read_to_string(&log).unwrap();
    let expected: String = ["env", "ready"]
        .iter()
        .map(|t| format!("{} API_TOKEN=from-the-users-env\n", worktree(t).display()))
        .collect();
    assert_eq!(ran, expected, "{provider}");
    // The CLI read the copied .env, and the setup's output (ignored, so not
    // from the goal branch), in its worktree.
    let show = |file: &str| git(&repo, &["show", &format!("{BRANCH}:{file}")]);
    assert_eq!(
        show("seen-env.txt"),
        "API_TOKEN=from-the-users-env\n",
        "{provider}"
    );
    assert_eq!(
        show("seen-ready.txt"),
        format!("set up in {}\n", worktree("ready").display()),
        "{provider}"
    );
    // Only ignored files are copied: an ignored one is never committed, and an
    // untracked one git would commit stays the user's.
    let files = git(&repo, &["ls-tree", "-r", "--name-only", BRANCH]);
    for file in [".env", "setup.out", "local.conf"] {
        assert!(
            !files.lines().any(|f| f == file),
            "{provider}: {file} committed: {files}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(repo.join("local.conf")).unwrap(),
        "not ignored\n"
    );
}

#[test]
fn worktreeinclude_and_the_setup_command_prepare_the_clis_worktree() {
    both(worktrees_are_prepared);
}

#[test]
fn a_failing_worktree_setup_fails_the_attempt_with_its_output_and_runs_no_cli() {
    let setup = setup(
        "claude",
        "setup-fails",
        &format!("# A goal\n\n## Agents\n\n### one\n- Goal: {GOAL}\n- Cadence: 1s\n"),
        &["t1"],
    );
    let repo = repo_with_local_files(&setup);
    let redis = RedisServer::start();
    let output = setup.run(
        &redis.url(),
        &[
            "--workspace",
            repo.to_str().unwrap(),
            "--isolation",
            "worktree",
            "--max-attempts",
            "1",
            "--worktree-setup",
            "echo installing; echo 'npm ERR! missing lockfile' >&2; exit 3",
        ],
    );
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "the goal fails: {log}");
    let goal = status(&redis.url());
    let t1 = task(&goal, "t1");
    assert_eq!(t1["state"], "FAILED", "{goal}");
    let error = t1["last_error"].as_str().unwrap_or_default();
    for words in ["installing", "npm ERR! missing lockfile", "exit status: 3"] {
        assert!(error.contains(words), "{words:?} not in {error}");
    }
    let executed = setup
        .model
        .calls()
        .into_iter()
        .filter(|c| c.phase.as_deref() == Some("execute"))
        .count();
    assert_eq!(executed, 0, "no CLI ran a task");
}
