//! What a CLI agent can reach of porki: not the store's password nor the
//! dashboard's token, even under `--llm-permissions full`; and not the files
//! that steer the run.
//!
//! The runs here are porki as an ordinary user (claude refuses full permissions
//! as root, and root may read any process's `/proc/<pid>/environ`), with the
//! secrets where a user puts them: `PORKI_REDIS_URL` naming a Redis that needs a
//! password, `PORKI_HTTP_TOKEN`, and copies under other names. The stand-in model
//! has the CLI print its environment and every environment it may read in
//! `/proc` (porki's too) before it writes each task's file.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Setup, TASKS, assert_every_file_written, finish, status, text};
use crate::support::clis::{User, ordinary_user, target_dir};
use crate::support::{PORKI, RedisServer, porki, write_script};

const PASSWORD: &str = "store-password-4711";
const TOKEN: &str = "dashboard-token-4711";
/// A variable of the user's that children must still get.
const MARK: &str = "PROBE_MARK=visible-to-agents";
/// What the model has the CLI run.
const PROBE: &str = "env; for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < \"$f\"; done 2>/dev/null; echo probe-done";

/// porki's environment: the PATH, the secrets where users keep them, a mark.
fn secret_env(store_url: &str) -> Vec<(String, String)> {
    let (mark, value) = MARK.split_once('=').unwrap();
    [
        ("PATH", std::env::var("PATH").unwrap_or_default().as_str()),
        ("NO_COLOR", "1"),
        ("PORKI_REDIS_URL", store_url),
        ("PORKI_HTTP_TOKEN", TOKEN),
        ("REDISCLI_AUTH", PASSWORD),
        ("DASHBOARD_TOKEN_COPY", TOKEN),
        (mark, value),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fails the test if `seen` (what an agent printed) shows a secret, or does not
/// show the agent's own environment in full.
fn assert_no_secret(seen: &str) {
    for secret in [PASSWORD, TOKEN, "PORKI_REDIS_URL", "PORKI_HTTP_TOKEN"] {
        assert!(!seen.contains(secret), "the agent found {secret}:\n{seen}");
    }
    assert!(
        seen.contains(MARK),
        "the user's variable is missing:\n{seen}"
    );
    assert!(
        seen.contains("probe-done"),
        "the probe did not finish:\n{seen}"
    );
    assert!(!seen.contains("truncated"), "the output was cut:\n{seen}");
}

/// Runs porki as `user` with only `env`.
fn as_user(command: &mut Command, user: User, env: &[(String, String)]) {
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .uid(user.uid)
        .gid(user.gid);
}

#[test]
fn a_command_provider_sees_none_of_porkis_secrets() {
    let user = ordinary_user();
    user.assert_can_run(&[PathBuf::from(PORKI)]);
    let dir = target_dir("command-secrets");
    let agent = dir.join("agent.sh");
    // Its parent is porki: it reads porki's environment through /proc too.
    write_script(
        &agent,
        "#!/bin/sh\nenv\necho \"== porki\"\ntr '\\0' '\\n' < /proc/$PPID/environ\necho probe-done\n",
    );
    user.own(&dir);
    let mut command = porki();
    as_user(
        &mut command,
        user,
        &secret_env(&format!("redis://:{PASSWORD}@127.0.0.1:1")),
    );
    let output = command
        .args(["run", "--llm-provider", "command", "--prompt", "hi"])
        .arg("--llm-cli")
        .arg(&agent)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let seen = String::from_utf8_lossy(&output.stdout);
    assert_no_secret(&seen);
    // What porki sets for a command, it still sets.
    assert!(seen.contains("PORKI_LLM_PERMISSIONS=edit"), "{seen}");
}

/// A run under `--llm-permissions full` as an ordinary user whose model probes
/// for secrets before each write: every file written, no secret found.
fn full_run_finds_no_secret(provider: &'static str) {
    let user = ordinary_user();
    let setup = Setup::new(provider, "full-user");
    user.assert_can_run(&[PathBuf::from(PORKI), setup.cli.clone()]);
    let redis = RedisServer::start();
    let mut conn = redis.conn();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .exec(&mut conn)
        .expect("set the store's password");
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    setup.model.set_probe(PROBE);
    user.own(&setup.dir);
    let mut env = setup.env.clone();
    env.extend(secret_env(&url));
    let mut command = setup.command(&["--llm-permissions", "full"]);
    as_user(&mut command, user, &env);
    let output = finish(command);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_every_file_written(&setup, &status(&url));
    let probes: Vec<String> = setup
        .model
        .calls()
        .into_iter()
        .filter_map(|c| c.tool_result)
        .filter(|r| r.contains("probe-done"))
        .collect();
    assert_eq!(probes.len(), TASKS.len(), "one probe per task: {probes:?}");
    for seen in &probes {
        assert_no_secret(seen);
    }
}

#[test]
fn claude_under_full_as_an_ordinary_user_writes_every_file_and_its_agent_finds_no_secret() {
    full_run_finds_no_secret("claude");
}

#[test]
fn codex_under_full_as_an_ordinary_user_writes_every_file_and_its_agent_finds_no_secret() {
    full_run_finds_no_secret("codex");
}

/// A workspace (here the folder of the instructions, and so of the heartbeat
/// files) where an agent allowed to edit could rewrite what steers it.
#[test]
fn a_workspace_holding_the_instructions_is_refused_at_start() {
    let setup = Setup::new("claude", "workspace-holds-instructions");
    let instructions = setup.dir.join("INSTRUCTIONS.md");
    let text_before = std::fs::read_to_string(&instructions).unwrap();
    std::fs::write(
        &instructions,
        format!("{text_before}- Heartbeat: heartbeat/writer.md\n"),
    )
    .unwrap();
    let workspace: &Path = &setup.dir;
    let mut command = setup.command(&["--workspace", workspace.to_str().unwrap()]);
    command.args(["--redis-url", "memory://"]);
    let output = finish(command);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!("holds {}", instructions.display())) && log.contains("--workspace"),
        "{log}"
    );
    assert!(setup.model.calls().is_empty(), "no call was made");
}
