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
//!
//! `child.rs` holds the child's pipes and process group, `envelope.rs` the
//! reading of its answer.

mod child;
mod envelope;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use self::child::{GroupGuard, ReadError, feed, read_capped, read_tail, stop_group};
use self::envelope::cli_answer;
use super::{LlmError, LlmProvider, LlmRequest, LlmResponse};

/// Largest prompt passed as an argument; larger ones go on stdin.
pub const ARGV_PROMPT_LIMIT: usize = 100 * 1024;

/// Default cap on captured stdout.
pub const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How much of stderr an [`LlmError::Exit`] keeps.
const STDERR_TAIL: usize = 2 * 1024;

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
        let mut guard = GroupGuard::new(pgid);
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

#[cfg(test)]
mod tests;
