//! CLI providers: `claude`, `codex` or any `command`, run as a child process.
//!
//! The child leads its own process group, so everything it starts can be stopped
//! with one `killpg`: on timeout (here), and when the caller drops the future (a
//! guard in the future's state sends SIGTERM, then SIGKILL after a short
//! grace). Programs are executed directly, never through a shell, so a prompt is
//! always one literal argument. stdin is closed unless it carries the prompt.
//!
//! A call runs in the goal's workspace with porki's options for the CLI
//! (`policy.rs`: the permission policy, machine-readable output, codex's
//! `--skip-git-repo-check -C <workspace>`), then the user's extra arguments, which
//! replace porki's options they name. `claude` gets `-p PROMPT OPTIONS… EXTRA…`
//! (the prompt right after `-p`: claude's list-valued options would swallow it
//! later), `codex` gets `exec OPTIONS… EXTRA… PROMPT`. A prompt over
//! [`ARGV_PROMPT_LIMIT`] bytes (Linux refuses single arguments over 128 KiB) or
//! starting with `-` goes on stdin instead (`claude -p …`, `codex exec … -`).
//! `command` always gets the prompt on stdin, and the policy and workspace as
//! `PORKI_LLM_PERMISSIONS` and `PORKI_WORKSPACE`. Every child gets porki's
//! environment minus porki's own settings and secrets (`env.rs`); codex under
//! edit also gets a private temp folder as `TMPDIR`, removed when the call ends
//! (`temp.rs`).
//!
//! A run is judged from what it printed, never from its exit code alone:
//! `claude.rs` reads claude's JSON result (denied tools fail the attempt),
//! `codex.rs` codex's JSONL events and stderr (rejected patches fail it),
//! `classify.rs` sorts failures (authentication, limits, passing faults), and
//! `envelope.rs` reads a bare answer or a claude-style envelope for `command`.
//! `child.rs` holds the child's pipes and process group.

mod child;
mod classify;
mod claude;
mod codex;
mod env;
mod envelope;
mod policy;
mod temp;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

pub use self::env::Secrets;
pub(crate) use self::env::child_env;
pub use self::policy::Permissions;

use self::child::{GroupGuard, ReadError, Stderr, feed, read_capped, read_stderr, stop_group};
use self::claude::claude_answer;
use self::codex::codex_answer;
use self::envelope::envelope_answer;
use self::temp::PrivateTemp;
use super::{LlmError, LlmProvider, LlmRequest, LlmResponse};
use crate::workspace::GoalWorkspace;

/// Largest prompt passed as an argument; larger ones go on stdin.
pub const ARGV_PROMPT_LIMIT: usize = 100 * 1024;

/// Default cap on captured stdout.
pub const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How much of stderr an [`LlmError::Exit`] keeps.
const STDERR_TAIL: usize = 2 * 1024;

/// claude's own API retries when the user set none: it retries for minutes by
/// default, and porki already retries a failed task after a backoff.
const CLAUDE_MAX_RETRIES: &str = "2";

/// Which command line to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliFlavor {
    /// `claude -p PROMPT OPTIONS… EXTRA…`.
    Claude,
    /// `codex exec OPTIONS… EXTRA… PROMPT`.
    Codex,
    /// `PROGRAM EXTRA…`, prompt on stdin.
    Command,
}

impl CliFlavor {
    /// The provider's name in logs and errors.
    pub fn name(self) -> &'static str {
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
    permissions: Permissions,
    output_limit: usize,
    secrets: Secrets,
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
            permissions: Permissions::default(),
            output_limit: DEFAULT_OUTPUT_LIMIT,
            secrets: Secrets::default(),
        })
    }

    /// What the CLI agent may do in the workspace (default: edit).
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Keeps `secrets` out of the children's environment (`PORKI_*` variables are always kept out).
    pub fn with_secrets(mut self, secrets: Secrets) -> Self {
        self.secrets = secrets;
        self
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

    /// The arguments for `prompt` in `workspace` with the private temp folder
    /// `temp`, and the text to write on stdin, if any.
    fn invocation<'p>(
        &self,
        prompt: &'p str,
        workspace: Option<&GoalWorkspace>,
        temp: Option<&Path>,
    ) -> (Vec<OsString>, Option<&'p str>) {
        let on_stdin = prompt.len() > ARGV_PROMPT_LIMIT || prompt.starts_with('-');
        let own = policy::own_options(
            self.flavor,
            self.permissions,
            workspace,
            temp,
            &self.extra_args,
        );
        let extra = self.extra_args.iter().map(OsString::from);
        let mut args: Vec<OsString> = Vec::new();
        match self.flavor {
            CliFlavor::Claude => {
                args.push("-p".into());
                if !on_stdin {
                    args.push(prompt.into());
                }
                args.extend(own);
                args.extend(extra);
            }
            CliFlavor::Codex => {
                args.push("exec".into());
                args.extend(own);
                args.extend(extra);
                args.push(if on_stdin { "-".into() } else { prompt.into() });
            }
            CliFlavor::Command => {
                args.extend(extra);
                return (args, Some(prompt));
            }
        }
        (args, on_stdin.then_some(prompt))
    }

    fn program_text(&self) -> String {
        self.program.display().to_string()
    }

    fn spawn(
        &self,
        args: &[OsString],
        with_stdin: bool,
        workspace: Option<&GoalWorkspace>,
        temp: Option<&Path>,
    ) -> Result<Child, LlmError> {
        env::hide_own_process();
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .envs(env::child_env(std::env::vars_os(), &self.secrets));
        if let Some(ws) = workspace {
            command.current_dir(&ws.dir).env("PORKI_WORKSPACE", &ws.dir);
        }
        command.env("PORKI_LLM_PERMISSIONS", self.permissions.as_str());
        if let Some(temp) = temp {
            command
                .env("TMPDIR", temp)
                .env("TMP", temp)
                .env("TEMP", temp);
        }
        if self.flavor == CliFlavor::Claude && std::env::var_os("CLAUDE_CODE_MAX_RETRIES").is_none()
        {
            command.env("CLAUDE_CODE_MAX_RETRIES", CLAUDE_MAX_RETRIES);
        }
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
        let workspace = request.workspace.as_ref();
        if let Some(ws) = workspace {
            ws.create().await.map_err(|source| LlmError::Spawn {
                program: self.program_text(),
                source: std::io::Error::other(format!(
                    "cannot create the workspace {}: {source}",
                    ws.dir.display()
                )),
            })?;
        }
        let temp = policy::private_temp(self.flavor, self.permissions)
            .then(PrivateTemp::create)
            .transpose()
            .map_err(|source| LlmError::Spawn {
                program: self.program_text(),
                source: std::io::Error::other(format!(
                    "cannot create a private temp folder in {}: {source}; set TMPDIR to a folder porki may write",
                    std::env::temp_dir().display()
                )),
            })?;
        let temp_path = temp.as_ref().map(PrivateTemp::path);
        let (args, input) = self.invocation(&request.prompt, workspace, temp_path);
        let mut child = self.spawn(&args, input.is_some(), workspace, temp_path)?;
        let Some(pgid) = child.id().map(|id| Pid::from_raw(id as i32)) else {
            return Err(LlmError::Spawn {
                program: self.program_text(),
                source: std::io::Error::other("the child exited before porki saw its pid"),
            });
        };
        let mut guard = GroupGuard::new(pgid, temp);
        let collected =
            tokio::time::timeout(request.timeout, self.collect(&mut child, pgid, input)).await;
        let (status, stdout, stderr) = match collected {
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
        let exit_error = || LlmError::Exit {
            program: self.program_text(),
            code: status.code(),
            stderr_tail: stderr.tail.clone(),
        };
        match self.flavor {
            // A run killed by a signal printed nothing worth judging.
            _ if status.code().is_none() => Err(exit_error()),
            CliFlavor::Claude if !status.success() && stdout.trim().is_empty() => Err(exit_error()),
            CliFlavor::Claude => claude_answer(
                &request.prompt,
                &stdout,
                status.success(),
                self.permissions,
                workspace,
            ),
            CliFlavor::Codex => codex_answer(
                &request.prompt,
                &stdout,
                &stderr,
                status.success(),
                self.permissions,
            ),
            CliFlavor::Command if !status.success() => Err(exit_error()),
            CliFlavor::Command => envelope_answer(self.flavor.name(), &request.prompt, &stdout),
        }
    }

    /// Feeds stdin and reads both pipes concurrently (no pipe deadlock) until the
    /// child exits; then stops whatever it left behind in its group.
    async fn collect(
        &self,
        child: &mut Child,
        pgid: Pid,
        input: Option<&str>,
    ) -> Result<(ExitStatus, String, Stderr), LlmError> {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.output_limit;
        let io = async move {
            let (_, out, err) = tokio::join!(
                feed(stdin, input),
                read_capped(stdout, limit),
                read_stderr(stderr, STDERR_TAIL)
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

    fn writes_files(&self) -> bool {
        true
    }

    fn preflight(&self) -> Option<String> {
        let refused_as_root = self.flavor == CliFlavor::Claude
            && self.permissions == Permissions::Full
            && nix::unistd::geteuid().is_root()
            && !self
                .extra_args
                .iter()
                .any(|a| a.starts_with("--permission-mode"));
        refused_as_root.then(|| {
            "claude refuses --dangerously-skip-permissions (what --llm-permissions full needs) when it runs as root, and porki runs as root: run porki as a non-root user for full, or use --llm-permissions edit".to_string()
        })
    }
}

#[cfg(test)]
mod tests;
