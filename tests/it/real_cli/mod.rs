//! `porki run` driving the real `claude` and `codex` CLIs (pinned, from npm)
//! against a stand-in model on loopback (`support::model`), with no network.
//!
//! The model plans a three-task chain and, on execute, writes
//! `artifacts/<task>.md` with the CLI's own file tool. What porki must get right
//! is what the CLIs do to that write: under the default policy it lands in the
//! goal's workspace; under read-only the CLI refuses it while exiting 0, and
//! porki must not call the task done.
//!
//! - `limits`: rate limits (429) from each CLI make the whole goal wait, then finish.
//! - `edit`: under the default policy codex writes in the workspace (even one
//!   under `/tmp`) and its call's private `$TMPDIR`, and nowhere else, not `/tmp`.
//! - `prompts`: a prompt over 100 KiB and one starting with `-` reach the model whole.
//! - `secrets`: under `--llm-permissions full`, as an ordinary user, the agent
//!   finds none of porki's secrets; a workspace holding the instructions is refused.
//! - `worktree`: under worktree isolation, two CLIs editing one line at once both
//!   land through a merge task; a review's prompt holds the reviewed diff;
//!   `.worktreeinclude` and `--worktree-setup` prepare the CLI's worktree.

mod edit;
mod limits;
mod prompts;
mod secrets;
mod worktree;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::clis::{self, target_dir};
use crate::support::model::{Fault, ModelServer};
use crate::support::{RedisServer, porki};

const GOAL: &str = "cli-goal";
const TASKS: [&str; 3] = ["t1", "t2", "t3"];
/// Longest a whole run may take (each CLI call starts a Node.js process).
const LIMIT: Duration = Duration::from_secs(240);

/// One test's folders: instructions, the goal's workspace root, the CLI's home.
struct Setup {
    dir: PathBuf,
    model: ModelServer,
    env: Vec<(String, String)>,
    cli: PathBuf,
    provider: &'static str,
    /// Where the goals' workspaces go (`<root>/<goal>`).
    workspace_root: PathBuf,
}

impl Setup {
    fn new(provider: &'static str, name: &str) -> Self {
        let dir = target_dir(&format!("{provider}-{name}"));
        std::fs::write(
            dir.join("INSTRUCTIONS.md"),
            format!(
                "# A goal for a real CLI\n\nWrite three short files, one per task.\n\n\
                 ## Agents\n\n### writer\n- Goal: {GOAL}\n- Cadence: 1s\n"
            ),
        )
        .unwrap();
        let model = ModelServer::start(&TASKS);
        let home = dir.join("home");
        let env = match provider {
            "claude" => clis::claude_env(&home, &model.url()),
            _ => clis::codex_env(&home, &model.url()),
        };
        let cli = clis::bin_dir().join(provider);
        let workspace_root = dir.join("workspace");
        Self {
            dir,
            model,
            env,
            cli,
            provider,
            workspace_root,
        }
    }

    /// The goal's workspace (not a git repository: the test folder is under target/,
    /// unless [`Setup::workspaces_under`] moved it).
    fn workspace(&self) -> PathBuf {
        self.workspace_root.join(GOAL)
    }

    /// Puts the goals' workspaces under `root`.
    fn workspaces_under(mut self, root: PathBuf) -> Self {
        self.workspace_root = root;
        self
    }

    /// `porki run … --until-done` with `extra` flags; its output once it exits.
    fn run(&self, redis_url: &str, extra: &[&str]) -> Output {
        let mut command = self.command(extra);
        command.args(["--redis-url", redis_url]);
        finish(command)
    }

    /// `porki run … --until-done` with `extra` flags (the workspace below the
    /// test's folder unless they name one), not started, with no store URL.
    fn command(&self, extra: &[&str]) -> Command {
        let mut command = porki();
        command
            .args(["run", "--until-done", "--log-style", "concise"])
            .arg("--instructions")
            .arg(self.dir.join("INSTRUCTIONS.md"))
            .args(["--llm-provider", self.provider])
            .arg("--llm-cli")
            .arg(&self.cli)
            .args(["--lease-ttl", "120s", "--llm-timeout", "90s"])
            .args(extra)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !extra.contains(&"--workspace") {
            command
                .arg("--workspace")
                .arg(self.workspace_root.join("{goal}"));
        }
        command
    }
}

/// Runs `command` to its end, within [`LIMIT`].
fn finish(mut command: Command) -> Output {
    let started = Instant::now();
    let output = command.output().expect("run porki");
    assert!(
        started.elapsed() < LIMIT,
        "the run took {:?}",
        started.elapsed()
    );
    output
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `porki status --json` of the goal, once the store has it.
fn try_status(redis_url: &str) -> Option<Value> {
    let output = porki()
        .args(["status", "--json", "--goal", GOAL, "--redis-url", redis_url])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(json["goals"][0].clone())
}

/// `porki status --json` of a goal the store has.
fn status(redis_url: &str) -> Value {
    try_status(redis_url).expect("porki status shows the goal")
}

fn task<'a>(goal: &'a Value, id: &str) -> &'a Value {
    goal["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {goal}"))
}

/// Every task DONE on its first attempt and its file written in the workspace.
fn assert_every_file_written(setup: &Setup, goal: &Value) {
    assert_eq!(goal["state"], "complete", "{goal}");
    for id in TASKS {
        let t = task(goal, id);
        assert_eq!(t["state"], "DONE", "{t}");
        assert_eq!(t["attempt"], 1, "{t}");
        let file = setup.workspace().join("artifacts").join(format!("{id}.md"));
        let content = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", file.display()));
        assert!(content.contains(&format!("# {id}")), "{content}");
    }
}

#[test]
fn claude_writes_every_file_under_the_default_policy_and_reports_its_cost() {
    let redis = RedisServer::start();
    let setup = Setup::new("claude", "default");
    let output = setup.run(&redis.url(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let goal = status(&redis.url());
    assert_every_file_written(&setup, &goal);
    // Tokens and cost come from claude's own JSON (its price for the model it
    // asked for), not from porki's estimate: the cost is above zero.
    assert!(goal["tokens"].as_u64().unwrap() > 0, "{goal}");
    assert!(goal["cost_usd"].as_f64().unwrap() > 0.0, "{goal}");
    // claude asked the model to execute each task, and got its Write's result back.
    let calls = setup.model.calls();
    assert!(calls.iter().all(|c| c.api == "anthropic"));
    for id in TASKS {
        let task = format!("{GOAL}/{id}");
        assert!(
            calls
                .iter()
                .any(|c| c.phase.as_deref() == Some("execute") && c.task.as_deref() == Some(&task)),
            "no execute call for {task}"
        );
    }
    let results: Vec<String> = calls.into_iter().filter_map(|c| c.tool_result).collect();
    assert_eq!(results.len(), TASKS.len(), "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.contains("File created successfully")),
        "{results:?}"
    );
}

/// Under read-only the CLI refuses the model's write (and exits 0): the attempt
/// fails with the denial, the goal fails, no task is done and no file written.
fn read_only_is_denied(provider: &'static str, denial: &[&str]) {
    let setup = Setup::new(provider, "read-only");
    let output = setup.run(
        "memory://",
        &["--llm-permissions", "read-only", "--max-attempts", "1"],
    );
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "the goal fails: {log}");
    for words in denial
        .iter()
        .chain(&["--llm-permissions edit allows", "task FAILED"])
    {
        assert!(log.contains(words), "{words:?} missing from {log}");
    }
    assert!(!log.contains("task done"), "no task may be done: {log}");
    assert!(!setup.workspace().join("artifacts/t1.md").exists());
}

#[test]
fn claude_under_read_only_is_denied_and_no_task_is_done() {
    read_only_is_denied(
        "claude",
        &["claude was denied Write on", "--llm-permissions read-only"],
    );
}

#[test]
fn claude_with_a_refused_key_fails_the_goal_at_once() {
    let setup = Setup::new("claude", "401");
    setup.model.set_fault(Fault {
        status: 401,
        body: json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        execute_only: false,
        lasting: None,
        retry_after: None,
    });
    let started = Instant::now();
    let output = setup.run("memory://", &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("not authenticated"), "{log}");
    assert!(log.contains("ANTHROPIC_API_KEY"), "{log}");
    // One plan call, not porki's retries on top of claude's.
    let calls = setup.model.calls().len();
    assert!(
        (1..=3).contains(&calls),
        "{calls} model calls for a refused key"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn codex_outside_a_git_repository_writes_every_file() {
    let redis = RedisServer::start();
    let setup = Setup::new("codex", "default");
    assert!(!setup.dir.join(".git").exists());
    let output = setup.run(&redis.url(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let goal = status(&redis.url());
    assert_every_file_written(&setup, &goal);
    assert!(goal["tokens"].as_u64().unwrap() > 0, "{goal}");
    let calls = setup.model.calls();
    assert!(calls.iter().all(|c| c.api == "openai"));
    let applied = calls.iter().filter_map(|c| c.tool_result.as_deref());
    assert_eq!(
        applied.filter(|r| r.contains("Script completed")).count(),
        TASKS.len()
    );
}

#[test]
fn codex_under_read_only_is_denied_and_no_task_is_done() {
    read_only_is_denied(
        "codex",
        &[
            "codex was denied",
            "patch rejected",
            "--llm-permissions read-only",
        ],
    );
}

#[test]
fn codex_with_a_refused_key_fails_the_goal_at_once() {
    let setup = Setup::new("codex", "401");
    setup.model.set_fault(Fault {
        status: 401,
        body: json!({"error": {"type": "invalid_request_error", "message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        execute_only: false,
        lasting: None,
        retry_after: None,
    });
    let started = Instant::now();
    let output = setup.run("memory://", &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("not authenticated"), "{log}");
    assert!(log.contains("OPENAI_API_KEY"), "{log}");
    // The plan call reached the model and was not retried by porki for long
    // (codex's own retries of a 401 end within seconds).
    assert!(!setup.model.calls().is_empty(), "codex asked the model");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
