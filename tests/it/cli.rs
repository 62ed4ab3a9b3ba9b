//! The `porki` binary as a user runs it.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{
    RedisServer, exit_stderr, hget, porki, signal, success_stdout, temp_dir, wait_exit, wait_until,
    write_script,
};

#[test]
fn demo_runs_the_bundled_example_to_the_end() {
    let dir = temp_dir("demo");
    let output = porki()
        .args(["demo", "--delay", "10ms", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = success_stdout(&output);
    assert!(stdout.contains("goal demo-001: complete"), "{stdout}");
    // The last progress line is the goal's end, its table's columns line up.
    let last_progress = stdout
        .lines()
        .rfind(|l| l.starts_with("demo-001 ["))
        .unwrap();
    assert!(
        last_progress.contains("[##############################] 14/14 done"),
        "{stdout}"
    );
    // Either research agent may take it; the columns line up whichever did.
    assert!(
        stdout.contains("\nscope              research     DONE       ")
            || stdout.contains("\nscope              research_2   DONE       "),
        "{stdout}"
    );
    // The marked draft is reviewed: changes asked once, a fix by the writer, then approved.
    assert!(
        stdout.contains(
            "review of draft by reviewer: asked for changes 1 time(s) (draft.fix-1), then approved"
        ),
        "{stdout}"
    );
    // With git: each task in its own worktree, merged into porki/demo-001; the
    // goal's folder is that branch's checkout.
    assert!(stdout.contains("isolation: worktree (git "), "{stdout}");
    let work = dir.join("workspace/demo-001");
    for task in ["scope", "outline", "publish", "draft.fix-1"] {
        assert!(stdout.contains(task), "summary lists {task}: {stdout}");
        assert!(
            work.join(format!("artifacts/{task}.md")).is_file(),
            "{task} report merged into the goal's folder"
        );
    }
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(&work)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        stdout.contains("git log --oneline porki/demo-001"),
        "{stdout}"
    );
    assert_eq!(
        git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "porki/demo-001"
    );
    assert_eq!(
        git(&["status", "--porcelain"]),
        "",
        "the checkout is the branch"
    );
    // Every task that writes a report is on the branch exactly once (the
    // review writes none); the worktrees are gone and the repository is sound.
    // (A merge commit names the task it merged in the same trailers.)
    for commits in ["--no-merges", "--merges"] {
        let format = "--format=%(trailers:key=Porki-Task,valueonly)";
        let tasks = git(&["log", commits, format, "porki/demo-001"]);
        let mut tasks: Vec<&str> = tasks.lines().filter(|l| !l.is_empty()).collect();
        tasks.sort();
        let mut once = tasks.clone();
        once.dedup();
        assert_eq!(tasks, once, "a task on the branch twice ({commits})");
        if commits == "--no-merges" {
            assert_eq!(tasks.len(), 13, "{tasks:?}");
        }
    }
    assert_eq!(git(&["worktree", "list"]).lines().count(), 1);
    git(&["fsck", "--strict"]);
}

#[test]
fn demo_without_git_runs_every_task_in_one_folder() {
    let dir = temp_dir("demo-shared");
    let output = porki()
        .args(["demo", "--delay", "10ms", "--dir"])
        .arg(&dir)
        .env("PATH", dir.join("no-git-here"))
        .output()
        .unwrap();
    let stdout = success_stdout(&output);
    assert!(stdout.contains("isolation: shared"), "{stdout}");
    assert!(stdout.contains("git was not found"), "{stdout}");
    assert!(stdout.contains("goal demo-001: complete"), "{stdout}");
    for task in ["scope", "outline", "publish", "draft.fix-1"] {
        assert!(
            dir.join(format!("artifacts/demo-001/{task}.md")).is_file(),
            "{task} report written"
        );
    }
}

#[test]
fn instructions_validate_summarises_a_good_file_and_names_errors_in_a_bad_one() {
    let dir = temp_dir("validate");
    let good = dir.join("good.md");
    std::fs::write(
        &good,
        "## Agents\n### research\n- Goal: goal-001\n- Role: research\n- Colour: blue\n",
    )
    .unwrap();
    let output = porki()
        .args(["instructions", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("research"), "{said}");
    assert_eq!(
        said.matches("Colour: unknown key, ignored").count(),
        1,
        "the warning, once: {said}"
    );

    let bad = dir.join("bad.md");
    std::fs::write(&bad, "## Agents\n### research\n- Role: research\n").unwrap();
    let output = porki()
        .args(["instructions", "validate"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "validate bad.md");
    assert!(
        stderr.contains("bad.md:2") && stderr.contains("goal"),
        "{stderr}"
    );
}

#[test]
fn instructions_create_writes_a_template_and_refuses_to_overwrite() {
    let dir = temp_dir("create");
    let run = || {
        porki()
            .args(["instructions", "create", "--name", "research", "--path"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let text = std::fs::read_to_string(dir.join("RESEARCH.md")).unwrap();
    assert!(
        text.contains("selected_task_id") && text.contains("\"status\""),
        "{text}"
    );
    let again = run();
    let stderr = exit_stderr(&again, 2, "create over an existing file");
    assert!(stderr.contains("--force"), "{stderr}");
}

#[test]
fn instructions_create_names_the_file_as_the_python_porki_did() {
    let dir = temp_dir("create-words");
    let output = porki()
        .args([
            "instructions",
            "create",
            "--name",
            "Core infra dev",
            "--path",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = success_stdout(&output);
    assert!(stdout.contains("CORE_INFRA_DEV.md"), "{stdout}");
    let text = std::fs::read_to_string(dir.join("CORE_INFRA_DEV.md")).unwrap();
    assert!(text.starts_with("# Core infra dev\n"), "{text}");
    // The declaration it suggests is valid as it stands.
    let instructions = text
        .split("```markdown\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    std::fs::write(dir.join("INSTRUCTIONS.md"), instructions).unwrap();
    let validate = porki()
        .args(["instructions", "validate"])
        .arg(dir.join("INSTRUCTIONS.md"))
        .output()
        .unwrap();
    let summary = success_stdout(&validate);
    assert!(summary.contains("core_infra_dev"), "{summary}");
    let none = porki()
        .args(["instructions", "create", "--name=--", "--path"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = exit_stderr(&none, 2, "a name without letters");
    assert!(stderr.contains("no letter or digit"), "{stderr}");
}

#[test]
fn a_malformed_redis_url_exits_2_at_once() {
    let dir = temp_dir("badurl");
    std::fs::write(dir.join("I.md"), "## Agents\n### a\n- Goal: g\n").unwrap();
    let started = Instant::now();
    let output = porki()
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--redis-url",
            "redis://[::1",
            "--instructions",
        ])
        .arg(dir.join("I.md"))
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "run with a malformed URL");
    assert!(stderr.contains("redis://[::1"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retry for a malformed URL"
    );
}

/// Runs `porki run` on one goal with the `command` provider `script` (and
/// `extra` flags), sends SIGTERM once `ready` holds, and checks that it exits 0
/// within a few seconds having given its task back (READY, attempt not
/// counted), deregistered, and freed the agent name.
fn sigterm_gives_everything_back(
    name: &str,
    script: &str,
    extra: &[&str],
    ready: impl Fn(&Path) -> bool,
) {
    let server = RedisServer::start();
    let dir = temp_dir(name);
    std::fs::write(dir.join("I.md"), "## Agents\n### worker\n- Goal: g1\n").unwrap();
    let provider = dir.join("llm.sh");
    write_script(
        &provider,
        script.replace("$DIR", &dir.display().to_string()),
    );
    let mut child = porki()
        // Goals' workspaces in the test's folder, not the crate's.
        .current_dir(&dir)
        .args([
            "--role",
            "orchestrator",
            "--llm-provider",
            "command",
            "--llm-cli",
        ])
        .arg(&provider)
        .args(["--redis-url", &server.url(), "--instructions"])
        .arg(dir.join("I.md"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "the moment to stop comes", || {
        ready(&dir)
    });
    let stopped = std::time::Instant::now();
    signal(&child, Signal::SIGTERM);
    let code = wait_exit(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, 0, "exit 0 after SIGTERM\n{stderr}");
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "stopped at once, not after the shutdown margin: {:?}\n{stderr}",
        stopped.elapsed()
    );
    let mut conn = server.conn();
    let (task_status, attempt): (String, u32) = redis::cmd("HMGET")
        .arg("task:{g1}:slow")
        .arg("status")
        .arg("attempt")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        (task_status.as_str(), attempt),
        ("READY", 0),
        "released without counting the attempt\n{stderr}"
    );
    let state: String = hget(&mut conn, "agent:{worker}:registered", "state");
    assert_eq!(state, "stopped");
    let guard: Option<String> = redis::cmd("GET")
        .arg("agent:{worker}:active")
        .query(&mut conn)
        .unwrap();
    assert_eq!(guard, None, "the single-active guard is given back");
}

/// Plans one task, `slow`; `$EXECUTE` and `$SUMMARIZE` are what the other phases do.
const ONE_TASK: &str = "#!/bin/sh\nread first\ncase \"$first\" in\n  *plan*) echo '{\"nodes\":[{\"id\":\"slow\",\"title\":\"Slow\"}],\"edges\":[]}' ;;\n  *summarize*) $SUMMARIZE ;;\n  *) $EXECUTE ;;\nesac\n";

#[test]
fn sigterm_releases_the_held_task_deregisters_and_exits_0() {
    let script = ONE_TASK
        .replace(
            "$EXECUTE",
            "touch \"$DIR/executing\"; sleep 30; echo '{\"status\":\"done\"}'",
        )
        .replace("$SUMMARIZE", "true");
    sigterm_gives_everything_back("sigterm", &script, &[], |dir| {
        dir.join("executing").exists()
    });
}

#[test]
fn sigterm_during_a_summary_gives_the_task_back_at_once() {
    // Regression: a summarize call ran outside the race with stop, so a shutdown
    // during it waited out the margin and left the lease held until it expired.
    let script = ONE_TASK
        .replace(
            "$EXECUTE",
            "echo '{\"status\":\"done\",\"notes\":\"did it\"}'",
        )
        .replace(
            "$SUMMARIZE",
            "touch \"$DIR/summarizing\"; sleep 30; echo '{\"status\":\"done\"}'",
        );
    sigterm_gives_everything_back("sigterm-summary", &script, &["--llm-summarize"], |dir| {
        dir.join("summarizing").exists()
    });
}

#[test]
fn a_redis_password_never_shows_in_logs_or_errors() {
    // Regression: the store URL, password included, was logged on every
    // connection retry and shown in error messages.
    let url = format!(
        "redis://porki:hunter2@127.0.0.1:{}/0",
        crate::support::free_port()
    );
    let status = porki()
        .args(["status", "--redis-url", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!status.status.success());
    assert!(stderr.contains("porki:***@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let dir = temp_dir("password");
    std::fs::write(dir.join("I.md"), "## Agents\n### worker\n- Goal: g1\n").unwrap();
    let mut run = porki()
        .current_dir(&dir)
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--redis-url",
            &url,
            "--instructions",
        ])
        .arg(dir.join("I.md"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    signal(&run, Signal::SIGKILL);
    let _ = run.wait();
    let mut stderr = String::new();
    run.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("cannot reach the store"),
        "it retried: {stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn json_logs_carry_goal_task_agent_and_attempt_on_task_lines() {
    let dir = temp_dir("json-logs");
    let output = porki()
        .args([
            "demo",
            "--delay",
            "5ms",
            "--log-style",
            "json",
            "--log-level",
            "info",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "task done")
        .collect();
    // The 12 planned tasks and the fix the draft's review asked for.
    assert_eq!(done.len(), 13);
    for line in done {
        for field in ["goal", "task", "agent", "attempt"] {
            assert!(!line["span"][field].is_null(), "{field} missing: {line}");
        }
    }
    let calls: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "LLM call done")
        .collect();
    assert_eq!(
        calls.len(),
        16,
        "one plan call, twelve executions, the draft's two reviews and its fix"
    );
    for line in calls {
        assert!(
            !line["fields"]["elapsed_ms"].is_null() && !line["fields"]["input_tokens"].is_null(),
            "{line}"
        );
        assert!(
            !line["span"]["phase"].is_null() && !line["span"]["provider"].is_null(),
            "{line}"
        );
    }
}

#[test]
fn run_prompt_sends_one_prompt_and_prints_the_answer() {
    let dir = temp_dir("one-shot");
    let script = dir.join("echo-llm.sh");
    // The fake CLI answers with its input upper-cased, to prove the round trip.
    write_script(&script, "#!/bin/sh\ntr 'a-z' 'A-Z'\n");
    let output = porki()
        .args([
            "run",
            "-p",
            "hello; $(rm -rf /) `x`",
            "--llm-provider",
            "command",
            "--llm-cli",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(success_stdout(&output).trim(), "HELLO; $(RM -RF /) `X`");
}

#[test]
fn run_isolated_in_worktrees_without_git_stops_at_start_and_shared_runs_without_it() {
    let dir = temp_dir("run-no-git");
    let instructions = |more: &str| {
        let file = dir.join(format!("INSTRUCTIONS{}.md", more.len()));
        std::fs::write(
            &file,
            format!("# Test\n\n## Agents\n\n### writer\n- Goal: g\n- Cadence: 1s\n\n## Goals\n\n### g\n- Description: one task{more}\n"),
        )
        .unwrap();
        file
    };
    // Shell builtins only: nothing on PATH, git least of all.
    let script = dir.join("provider.sh");
    write_script(
        &script,
        "#!/bin/sh\nread phase\ncase \"$phase\" in *plan*) echo '{\"goal_id\":\"g\",\"nodes\":[{\"id\":\"t1\",\"title\":\"One\"}],\"edges\":[]}'; exit 0;; esac\necho '{\"status\":\"done\",\"notes\":\"ok\"}'\n",
    );
    let run = |instructions: &Path, extra: &[&str], env: &[(&str, &str)]| {
        let mut command = porki();
        command
            .args(["run", "--until-done", "--llm-provider", "command"])
            .arg("--llm-cli")
            .arg(&script)
            .args(["--redis-url", "memory://", "--instructions"])
            .arg(instructions)
            .arg("--workspace")
            .arg(dir.join("work"))
            .args(extra)
            .env("PATH", dir.join("no-git-here"));
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let plain = instructions("");

    // The command provider writes files: worktrees by default, which need git.
    let refused = run(&plain, &[], &[]);
    let stderr = exit_stderr(&refused, 2, "worktree isolation without git");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("git was not found"), "{stderr}");
    assert!(stderr.contains("install git"), "{stderr}");
    assert!(stderr.contains("--isolation shared"), "{stderr}");
    assert!(!dir.join("work").exists(), "nothing made: {stderr}");

    // Shared isolation, from the flag, the environment or the goal, needs no git.
    let in_goal = instructions("\n- Isolation: shared");
    for (file, extra, env) in [
        (&plain, &["--isolation", "shared"][..], &[][..]),
        (&plain, &[], &[("PORKI_ISOLATION", "shared")][..]),
        (&in_goal, &[], &[]),
    ] {
        let output = run(file, extra, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.contains("goal finished goal=g state=Complete"),
            "{extra:?} {env:?} {}: {stderr}",
            file.display(),
        );
    }
}
