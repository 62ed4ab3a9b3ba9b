use super::child::KILL_GRACE;
use super::*;
use crate::llm::Phase;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A fresh directory holding a fake CLI written as a shell script.
struct Fake {
    dir: PathBuf,
}

impl Fake {
    fn new(script: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "porki-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fake-cli");
        let script = script.replace("$DIR", &dir.display().to_string());
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fake { dir }
    }

    fn provider(&self, flavor: CliFlavor) -> CliProvider {
        CliProvider::new(flavor, Some(self.dir.join("fake-cli")), Vec::new()).unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Waits for the fake to write the pid of its grandchild.
    async fn grandchild(&self) -> i32 {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(self.file("pid"))
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the fake CLI never wrote its grandchild's pid");
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn request(prompt: &str, timeout: Duration) -> LlmRequest {
    LlmRequest::new(Phase::Execute, prompt.to_string(), timeout)
}

/// Alive and not a zombie (a killed orphan may wait for a reaper that never comes).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

async fn gone_within(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn claude_envelope_gives_text_usage_and_cost() {
    let fake = Fake::new(
        r#"printf '%s' '{"type":"result","subtype":"success","is_error":false,"result":"{\"status\":\"done\"}","usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":5},"total_cost_usd":0.0123}'"#,
    );
    let answer = fake
        .provider(CliFlavor::Claude)
        .call(&request("hi", Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer.text, r#"{"status":"done"}"#);
    assert_eq!(answer.usage.input_tokens, 15);
    assert_eq!(answer.usage.output_tokens, 5);
    assert_eq!(answer.usage.cost_usd, Some(0.0123));
}

#[tokio::test]
async fn a_bare_answer_is_taken_as_is_with_estimated_usage() {
    let fake = Fake::new("echo 'plain answer'");
    let answer = fake
        .provider(CliFlavor::Codex)
        .call(&request("12345678", Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer.text, "plain answer");
    assert_eq!(answer.usage.input_tokens, 2);
    assert_eq!(answer.usage.cost_usd, None);
}

#[tokio::test]
async fn an_error_envelope_is_a_failure() {
    let fake = Fake::new(r#"echo '{"type":"result","subtype":"error_max_turns","is_error":true}'"#);
    let err = fake
        .provider(CliFlavor::Claude)
        .call(&request("hi", Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("error_max_turns"), "{err}");
}

#[tokio::test]
async fn non_zero_exit_carries_code_and_stderr_tail() {
    let fake = Fake::new(
        "i=0; while [ $i -lt 300 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done\necho 'quota exceeded' >&2\nexit 3",
    );
    let err = fake
        .provider(CliFlavor::Claude)
        .call(&request("hi", Duration::from_secs(10)))
        .await
        .unwrap_err();
    match &err {
        LlmError::Exit {
            code, stderr_tail, ..
        } => {
            assert_eq!(*code, Some(3));
            assert!(stderr_tail.trim_end().ends_with("quota exceeded"));
            assert!(stderr_tail.len() <= STDERR_TAIL, "{}", stderr_tail.len());
        }
        other => panic!("expected Exit, got {other}"),
    }
    assert!(err.to_string().contains("exit code 3"), "{err}");
}

#[tokio::test]
async fn the_prompt_reaches_the_program_as_one_literal_argument() {
    let fake =
        Fake::new(r#"for a in "$@"; do printf '%s\n<end>\n' "$a"; done > "$DIR/args"; echo ok"#);
    let marker = fake.file("injected");
    let prompt = format!(
        "porki-phase: execute\n$(touch {m}); rm -rf {d}/nothing `touch {m}` ; echo \"quoted\" 'single' * ?",
        m = marker.display(),
        d = fake.dir.display()
    );
    let mut provider = fake.provider(CliFlavor::Claude);
    provider.extra_args = vec!["--output-format".into(), "json".into()];
    provider
        .call(&request(&prompt, Duration::from_secs(10)))
        .await
        .unwrap();
    let args = std::fs::read_to_string(fake.file("args")).unwrap();
    let args: Vec<&str> = args.split("\n<end>\n").filter(|a| !a.is_empty()).collect();
    // porki's options follow the prompt; the user's --output-format replaced porki's.
    assert_eq!(
        args,
        [
            "-p",
            prompt.as_str(),
            "--permission-mode",
            "acceptEdits",
            "--output-format",
            "json"
        ]
    );
    assert!(!marker.exists(), "the prompt was run by a shell");
}

#[tokio::test]
async fn codex_runs_in_the_workspace_with_the_prompt_last() {
    let fake = Fake::new(
        r#"for a in "$@"; do printf '%s\n<end>\n' "$a"; done > "$DIR/args"; pwd > "$DIR/cwd"; echo ok"#,
    );
    let root = fake.file("ws");
    let workspace = crate::workspace::Workspaces::new(std::path::Path::new("{goal}"), None, &root)
        .for_goal("g");
    let provider = fake
        .provider(CliFlavor::Codex)
        .with_permissions(Permissions::ReadOnly);
    provider
        .call(&request("do it", Duration::from_secs(10)).in_workspace(workspace.clone()))
        .await
        .unwrap();
    let args = std::fs::read_to_string(fake.file("args")).unwrap();
    let args: Vec<&str> = args.split("\n<end>\n").filter(|a| !a.is_empty()).collect();
    let dir = workspace.dir.display().to_string();
    assert_eq!(
        args,
        [
            "exec",
            "--skip-git-repo-check",
            "-C",
            dir.as_str(),
            "--json",
            "--sandbox",
            "read-only",
            "do it"
        ]
    );
    let cwd = std::fs::read_to_string(fake.file("cwd")).unwrap();
    assert_eq!(cwd.trim(), dir, "the CLI runs in the goal's workspace");
    assert!(workspace.artifacts.is_dir(), "the workspace was created");
}

#[tokio::test]
async fn a_command_learns_the_policy_and_workspace_from_its_environment() {
    let fake = Fake::new(r#"echo "$PORKI_LLM_PERMISSIONS $PORKI_WORKSPACE $(pwd)""#);
    let workspace =
        crate::workspace::Workspaces::new(std::path::Path::new("w"), None, &fake.dir).for_goal("g");
    let answer = fake
        .provider(CliFlavor::Command)
        .with_permissions(Permissions::Full)
        .call(&request("x", Duration::from_secs(10)).in_workspace(workspace.clone()))
        .await
        .unwrap();
    let dir = workspace.dir.display().to_string();
    assert_eq!(answer.text, format!("full {dir} {dir}"));
}

#[test]
fn full_permissions_for_claude_are_refused_up_front_as_root() {
    let provider = CliProvider::new(CliFlavor::Claude, None, Vec::new())
        .unwrap()
        .with_permissions(Permissions::Full);
    let problem = provider.preflight();
    if nix::unistd::geteuid().is_root() {
        let problem = problem.expect("refused as root");
        assert!(problem.contains("non-root user"), "{problem}");
    } else {
        assert_eq!(problem, None);
    }
    let edit = CliProvider::new(CliFlavor::Claude, None, Vec::new()).unwrap();
    assert_eq!(edit.preflight(), None);
}

#[tokio::test]
async fn a_large_prompt_goes_on_stdin() {
    let fake = Fake::new(r#"cat > "$DIR/stdin"; echo "$#" > "$DIR/argc"; echo ok"#);
    let prompt = "x".repeat(ARGV_PROMPT_LIMIT + 1);
    let answer = fake
        .provider(CliFlavor::Claude)
        .call(&request(&prompt, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer.text, "ok");
    assert_eq!(std::fs::read_to_string(fake.file("stdin")).unwrap(), prompt);
    // `-p` and porki's four option words; the prompt is not among them.
    assert_eq!(
        std::fs::read_to_string(fake.file("argc")).unwrap().trim(),
        "5"
    );
}

#[tokio::test]
async fn command_gets_the_prompt_on_stdin() {
    let fake = Fake::new("tr a-z A-Z");
    let answer = fake
        .provider(CliFlavor::Command)
        .call(&request("echo me", Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer.text, "ECHO ME");
}

#[tokio::test]
async fn a_missing_program_says_to_install_it_or_pass_llm_cli() {
    let provider = CliProvider::new(
        CliFlavor::Claude,
        Some(PathBuf::from("/nonexistent/porki-no-such-cli")),
        Vec::new(),
    )
    .unwrap();
    let err = provider
        .call(&request("hi", Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::ProgramNotFound { .. }), "{err}");
    assert!(err.to_string().contains("--llm-cli"), "{err}");
}

#[tokio::test]
async fn output_over_the_limit_is_an_error() {
    let fake =
        Fake::new("i=0; while [ $i -lt 2000 ]; do echo 'a line of output'; i=$((i+1)); done");
    let err = fake
        .provider(CliFlavor::Command)
        .with_output_limit(1024)
        .call(&request("", Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::OutputTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let fake = Fake::new(r#"sleep 1000 & echo $! > "$DIR/pid"; wait"#);
    let started = Instant::now();
    let err = fake
        .provider(CliFlavor::Claude)
        .call(&request("hi", Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = fake.grandchild().await;
    assert!(
        gone_within(pid, Duration::from_secs(1)).await,
        "grandchild {pid} survived"
    );
}

#[tokio::test]
async fn dropping_the_call_kills_the_whole_process_group() {
    let fake = Fake::new(r#"trap '' TERM; sleep 1000 & echo $! > "$DIR/pid"; wait"#);
    let provider = fake.provider(CliFlavor::Claude);
    let call =
        tokio::spawn(async move { provider.call(&request("hi", Duration::from_secs(60))).await });
    let pid = fake.grandchild().await;
    assert!(alive(pid));
    call.abort();
    let _ = call.await;
    // The shell ignores SIGTERM, so this also pins the SIGKILL escalation.
    assert!(
        gone_within(pid, KILL_GRACE + Duration::from_secs(3)).await,
        "grandchild {pid} survived"
    );
}

mod temp;
