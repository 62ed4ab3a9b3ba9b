//! CLI providers: `claude`, `codex` or any `command`, run as a child process.
//!
//! The child leads its own process group, so everything it starts can be stopped
//! with one `killpg`: on timeout (here), and when the caller drops the future (a
//! guard in the future's state sends SIGTERM, then SIGKILL after a short
//! grace). Programs are executed directly, never through a shell, so a prompt is
//! always one literal argument.
//!
//! `claude` gets `-p PROMPT` and `codex` gets `exec PROMPT`, followed by the extra
//! arguments. A prompt over [`ARGV_PROMPT_LIMIT`] bytes (Linux refuses single
//! arguments over 128 KiB) or starting with `-` (it would read as an option) goes
//! on stdin instead: `claude -p EXTRA…` and `codex exec - EXTRA…` read it there.
//! `command` always gets the prompt on stdin.
//!
//! The answer is stdout: either bare text, or the CLI's JSON result envelope
//! (`claude --output-format json`: `{"type":"result","result":"…","usage":{…},
//! "total_cost_usd":…}`, also as the last line of `stream-json` output), whose
//! usage and cost are recorded. Without an envelope usage is estimated.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use super::{LlmError, LlmProvider, LlmRequest, LlmResponse, Usage};

/// Largest prompt passed as an argument; larger ones go on stdin.
pub const ARGV_PROMPT_LIMIT: usize = 100 * 1024;

/// Default cap on captured stdout.
pub const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How much of stderr an [`LlmError::Exit`] keeps.
const STDERR_TAIL: usize = 2 * 1024;

/// Time between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Which command line to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliFlavor {
    /// `claude -p PROMPT EXTRA…`.
    Claude,
    /// `codex exec PROMPT EXTRA…`.
    Codex,
    /// `PROGRAM EXTRA…`, prompt on stdin.
    Command,
}

impl CliFlavor {
    fn name(self) -> &'static str {
        match self {
            CliFlavor::Claude => "claude",
            CliFlavor::Codex => "codex",
            CliFlavor::Command => "command",
        }
    }
}

/// A provider that runs a program per call.
#[derive(Debug, Clone)]
pub struct CliProvider {
    flavor: CliFlavor,
    program: PathBuf,
    extra_args: Vec<String>,
    output_limit: usize,
}

impl CliProvider {
    /// A provider running `program` (default `claude` or `codex`; required for `command`).
    pub fn new(
        flavor: CliFlavor,
        program: Option<PathBuf>,
        extra_args: Vec<String>,
    ) -> Result<Self, LlmError> {
        let program = match (flavor, program) {
            (_, Some(program)) => program,
            (CliFlavor::Command, None) => {
                return Err(LlmError::Config(
                    "the command provider needs the program to run: pass it with --llm-cli PATH"
                        .to_string(),
                ));
            }
            (flavor, None) => PathBuf::from(flavor.name()),
        };
        Ok(Self {
            flavor,
            program,
            extra_args,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        })
    }

    /// Caps the captured stdout at `bytes`; more is an [`LlmError::OutputTooLarge`].
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// The program this provider runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments for `prompt`, and the text to write on stdin, if any.
    fn invocation<'p>(&self, prompt: &'p str) -> (Vec<OsString>, Option<&'p str>) {
        let on_stdin = prompt.len() > ARGV_PROMPT_LIMIT || prompt.starts_with('-');
        let mut args: Vec<OsString> = Vec::new();
        let stdin = match self.flavor {
            CliFlavor::Claude => {
                args.push("-p".into());
                if !on_stdin {
                    args.push(prompt.into());
                }
                on_stdin.then_some(prompt)
            }
            CliFlavor::Codex => {
                args.push("exec".into());
                args.push(if on_stdin { "-".into() } else { prompt.into() });
                on_stdin.then_some(prompt)
            }
            CliFlavor::Command => Some(prompt),
        };
        args.extend(self.extra_args.iter().map(OsString::from));
        (args, stdin)
    }

    fn program_text(&self) -> String {
        self.program.display().to_string()
    }

    fn spawn(&self, args: &[OsString], with_stdin: bool) -> Result<Child, LlmError> {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The child leads a new group: one killpg reaches everything it starts.
            .process_group(0);
        let mut attempts = 0;
        loop {
            match command.spawn() {
                Ok(child) => return Ok(child),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LlmError::ProgramNotFound {
                        program: self.program_text(),
                    });
                }
                // A script that was just written can be "busy" while another thread's
                // fork still holds its write handle; that clears in a moment.
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(LlmError::Spawn {
                        program: self.program_text(),
                        source,
                    });
                }
            }
        }
    }

    async fn run(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let (args, input) = self.invocation(&request.prompt);
        let mut child = self.spawn(&args, input.is_some())?;
        let Some(pgid) = child.id().map(|id| Pid::from_raw(id as i32)) else {
            return Err(LlmError::Spawn {
                program: self.program_text(),
                source: std::io::Error::other("the child exited before porki saw its pid"),
            });
        };
        let mut guard = GroupGuard { pgid: Some(pgid) };
        let collected =
            tokio::time::timeout(request.timeout, self.collect(&mut child, pgid, input)).await;
        let (status, stdout, stderr_tail) = match collected {
            Ok(result) => {
                guard.disarm();
                result?
            }
            Err(_) => {
                stop_group(pgid, &mut child).await;
                guard.disarm();
                return Err(LlmError::Timeout {
                    provider: self.flavor.name().to_string(),
                    after: request.timeout,
                });
            }
        };
        if !status.success() {
            return Err(LlmError::Exit {
                program: self.program_text(),
                code: status.code(),
                stderr_tail,
            });
        }
        cli_answer(self.flavor.name(), &request.prompt, &stdout)
    }

    /// Feeds stdin and reads both pipes concurrently (no pipe deadlock) until the
    /// child exits; then stops whatever it left behind in its group.
    async fn collect(
        &self,
        child: &mut Child,
        pgid: Pid,
        input: Option<&str>,
    ) -> Result<(ExitStatus, String, String), LlmError> {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.output_limit;
        let io = async move {
            let (_, out, err) = tokio::join!(
                feed(stdin, input),
                read_capped(stdout, limit),
                read_tail(stderr, STDERR_TAIL)
            );
            (out, err)
        };
        tokio::pin!(io);
        let mut early = None;
        let waited = tokio::select! {
            status = child.wait() => status,
            done = &mut io => {
                if done.0.is_err() {
                    stop_group(pgid, child).await;
                }
                early = Some(done);
                child.wait().await
            }
        };
        let (out, err_tail) = match early {
            Some(done) => {
                stop_group(pgid, child).await;
                done
            }
            // The program exited; anything left in its group could hold the pipes
            // open forever, so it is stopped while the pipes drain.
            None => tokio::join!(stop_group(pgid, child), &mut io).1,
        };
        let status = waited.map_err(|source| LlmError::Spawn {
            program: self.program_text(),
            source,
        })?;
        let out = match out {
            Ok(out) => out,
            Err(ReadError::TooLarge) => {
                return Err(LlmError::OutputTooLarge {
                    provider: self.flavor.name().to_string(),
                    limit,
                });
            }
            Err(ReadError::Io(source)) => {
                return Err(LlmError::Spawn {
                    program: self.program_text(),
                    source,
                });
            }
        };
        Ok((status, String::from_utf8_lossy(&out).into_owned(), err_tail))
    }
}

#[async_trait]
impl LlmProvider for CliProvider {
    fn name(&self) -> &str {
        self.flavor.name()
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.run(request).await
    }
}

async fn feed(stdin: Option<ChildStdin>, input: Option<&str>) {
    if let (Some(mut stdin), Some(text)) = (stdin, input) {
        // A program that stops reading early gets EPIPE here; its exit status says more.
        let _ = stdin.write_all(text.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let Some(mut reader) = reader else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Reads to the end, keeping only the last `keep` bytes.
async fn read_tail<R: AsyncRead + Unpin>(reader: Option<R>, keep: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * keep {
            tail.drain(..tail.len() - keep);
        }
    }
    let start = tail.len().saturating_sub(keep);
    String::from_utf8_lossy(&tail[start..]).into_owned()
}

/// Sends `signal` to the group; `false` when the group is gone.
fn signal_group(pgid: Pid, signal: Option<Signal>) -> bool {
    !matches!(killpg(pgid, signal), Err(Errno::ESRCH))
}

/// SIGTERM to the group, SIGKILL to whatever is left after [`KILL_GRACE`].
async fn stop_group(pgid: Pid, child: &mut Child) {
    if !signal_group(pgid, Some(Signal::SIGTERM)) {
        return;
    }
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        // Reap the leader, so its zombie does not keep the group "alive".
        let _ = child.try_wait();
        if !signal_group(pgid, None) {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    signal_group(pgid, Some(Signal::SIGKILL));
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

/// Kills the process group when the call's future is dropped before it finished.
///
/// Drop cannot await, so SIGTERM is sent at once and a short-lived thread sends
/// SIGKILL if the group outlives the grace (a thread, not a task: the runtime may
/// be shutting down when the drop happens).
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        if !signal_group(pgid, Some(Signal::SIGTERM)) {
            return;
        }
        std::thread::spawn(move || {
            let deadline = Instant::now() + KILL_GRACE;
            while Instant::now() < deadline {
                if !signal_group(pgid, None) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            signal_group(pgid, Some(Signal::SIGKILL));
        });
    }
}

/// The answer in a CLI's stdout: its result envelope when there is one, else the bare text.
fn cli_answer(provider: &str, prompt: &str, stdout: &str) -> Result<LlmResponse, LlmError> {
    let trimmed = stdout.trim();
    let envelope = serde_json::from_str::<Value>(trimmed)
        .ok()
        .filter(is_envelope)
        .or_else(|| {
            // `--output-format stream-json` prints one event per line, the result last.
            let last = trimmed.lines().rev().find(|l| !l.trim().is_empty())?;
            serde_json::from_str::<Value>(last).ok().filter(is_envelope)
        });
    let Some(envelope) = envelope else {
        return Ok(LlmResponse {
            text: trimmed.to_string(),
            usage: Usage::estimate(prompt, trimmed),
        });
    };
    let text = envelope
        .get("result")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if envelope.get("is_error").and_then(Value::as_bool) == Some(true) {
        let subtype = envelope.get("subtype").and_then(Value::as_str);
        return Err(LlmError::Failed {
            provider: provider.to_string(),
            message: if text.is_empty() {
                subtype.unwrap_or("no message").to_string()
            } else {
                text
            },
        });
    }
    let mut usage = Usage::estimate(prompt, &text);
    if let Some(u) = envelope.get("usage") {
        let count = |key: &str| u.get(key).and_then(Value::as_u64).unwrap_or(0);
        // Cached prompt tokens are still prompt tokens for the budget.
        usage.input_tokens = count("input_tokens")
            + count("cache_creation_input_tokens")
            + count("cache_read_input_tokens");
        usage.output_tokens = count("output_tokens");
    }
    usage.cost_usd = envelope
        .get("total_cost_usd")
        .or_else(|| envelope.get("cost_usd"))
        .and_then(Value::as_f64);
    Ok(LlmResponse { text, usage })
}

fn is_envelope(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("result")
        && (value.get("result").is_some_and(Value::is_string) || value.get("is_error").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Phase;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        LlmRequest {
            phase: Phase::Execute,
            prompt: prompt.to_string(),
            timeout,
        }
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
        let fake =
            Fake::new(r#"echo '{"type":"result","subtype":"error_max_turns","is_error":true}'"#);
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
        let fake = Fake::new(
            r#"for a in "$@"; do printf '%s\n<end>\n' "$a"; done > "$DIR/args"; echo ok"#,
        );
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
        assert_eq!(args, ["-p", prompt.as_str(), "--output-format", "json"]);
        assert!(!marker.exists(), "the prompt was run by a shell");
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
        assert_eq!(
            std::fs::read_to_string(fake.file("argc")).unwrap().trim(),
            "1"
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
            tokio::spawn(
                async move { provider.call(&request("hi", Duration::from_secs(60))).await },
            );
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
}
