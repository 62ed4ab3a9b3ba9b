//! Running the `git` program: one child per command, in its own process group,
//! with bounded output, a time limit and an environment without porki's
//! settings or secrets.
//!
//! Every command gets `-c core.hooksPath=/dev/null` (porki's own commits,
//! checkouts and merges run no user hook: `--worktree-setup` is the way to run
//! something in a new worktree), `GIT_TERMINAL_PROMPT=0` (nothing waits for a
//! password), `LC_ALL=C` (git's messages, which porki reads in a few places and
//! shows in errors, are the same everywhere) and no variable that would point
//! git at another repository (`GIT_DIR`…, set when porki itself runs from a git
//! hook).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::error::{GitError, MIN_GIT};
use crate::llm::cli::{Secrets, child_env};

/// Default time limit of one git command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Most bytes of stdout a command may print (more is an error, unless the
/// command is [`Cmd::capped`]).
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// Bytes of stderr kept (the end).
const STDERR_KEEP: usize = 4096;

/// Options every porki git command runs with.
const CONFIG: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "color.ui=false",
    "-c",
    "core.quotePath=false",
    "-c",
    "log.showSignature=false",
    "-c",
    "commit.gpgSign=false",
];

/// Variables that would make git work on another repository than the folder's.
const REPOSITORY_VARS: [&str; 13] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_CONFIG_PARAMETERS",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_DATE",
];

/// A git version: major, minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion(pub u32, pub u32);

/// Parses `git --version`'s line (`git version 2.39.5`, `git version 2.39.3 (Apple Git-146)`).
pub fn parse_version(line: &str) -> Option<GitVersion> {
    let number = line.trim().strip_prefix("git version ")?;
    let mut parts = number.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(GitVersion(major, minor))
}

/// The git program with porki's options: cheap to clone, shared by every goal.
#[derive(Debug, Clone)]
pub struct Git {
    inner: Arc<Inner>,
    timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    program: PathBuf,
    version: GitVersion,
    /// Every git child's environment (computed once: porki's own does not change).
    env: Vec<(OsString, OsString)>,
    /// The environment of other children (the setup command): porki's without
    /// its settings and secrets.
    child_env: Vec<(OsString, OsString)>,
}

impl Git {
    /// Finds `program` (`git` on `PATH` when `None`), checks once that it is
    /// 2.38 or newer, and hides `secrets` and every `PORKI_*` variable from it.
    pub async fn detect(program: Option<&Path>, secrets: &Secrets) -> Result<Self, GitError> {
        let program = program.unwrap_or(Path::new("git")).to_path_buf();
        let base = child_env(std::env::vars_os(), secrets);
        let mut env = base.clone();
        env.retain(|(name, _)| {
            let name = name.to_string_lossy();
            !REPOSITORY_VARS.contains(&name.as_ref())
                && !name.starts_with("GIT_AUTHOR_")
                && !name.starts_with("GIT_COMMITTER_")
                && name != "LC_ALL"
        });
        env.extend(
            [
                ("GIT_TERMINAL_PROMPT", "0"),
                ("GCM_INTERACTIVE", "never"),
                ("GIT_EDITOR", "true"),
                ("LC_ALL", "C"),
            ]
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let mut git = Self {
            inner: Arc::new(Inner {
                program,
                version: GitVersion(0, 0),
                env,
                child_env: base,
            }),
            timeout: DEFAULT_TIMEOUT,
        };
        let line = match git.cmd(Path::new("/")).arg("--version").run().await {
            Ok(out) => out.text(),
            Err(GitError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(GitError::NotInstalled {
                    program: git.inner.program.display().to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        let version = parse_version(&line).ok_or_else(|| GitError::Unexpected {
            command: "--version".into(),
            output: line.clone(),
        })?;
        if version < GitVersion(MIN_GIT.0, MIN_GIT.1) {
            return Err(GitError::TooOld { found: line });
        }
        Arc::get_mut(&mut git.inner)
            .expect("not shared yet")
            .version = version;
        Ok(git)
    }

    /// The same git with another time limit per command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The version found by [`Git::detect`].
    pub fn version(&self) -> GitVersion {
        self.inner.version
    }

    /// The environment of porki's other children (secrets and `PORKI_*` removed).
    pub(crate) fn child_env(&self) -> &[(OsString, OsString)] {
        &self.inner.child_env
    }

    /// Runs `git args…` in `dir` and returns its stdout, trimmed; a failure
    /// carries git's message (e.g. `git.run(dir, &["log", "--oneline"])`).
    pub async fn run(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        Ok(self.cmd(dir).args(args).run().await?.text())
    }

    /// A command to run in `dir`.
    pub(crate) fn cmd(&self, dir: &Path) -> Cmd<'_> {
        Cmd {
            git: self,
            dir: dir.to_path_buf(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            cap: None,
        }
    }
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub(crate) struct Output {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout (up to the cap).
    pub stdout: Vec<u8>,
    /// The end of stderr.
    pub stderr: String,
    /// stdout was cut at the cap of a [`Cmd::capped`] command.
    pub truncated: bool,
}

impl Output {
    /// stdout as text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// Whether git exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// One git command being built.
pub(crate) struct Cmd<'g> {
    git: &'g Git,
    dir: PathBuf,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
    cap: Option<usize>,
}

impl Cmd<'_> {
    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Feeds `input` to the command's stdin.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets a variable for this command only.
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((OsString::from(name), value.as_ref().to_os_string()));
        self
    }

    /// Keeps the first `limit` bytes of stdout and stops the command there
    /// (instead of failing).
    pub fn capped(mut self, limit: usize) -> Self {
        self.cap = Some(limit);
        self
    }

    /// The arguments as a user would type them (for messages).
    fn shown(&self) -> String {
        self.args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command; a non-zero exit is [`GitError::Failed`].
    pub async fn run(self) -> Result<Output, GitError> {
        let command = self.shown();
        let dir = self.dir.clone();
        let out = self.output().await?;
        if out.success() || out.truncated {
            return Ok(out);
        }
        Err(failed(command, dir, &out, ""))
    }

    /// Runs the command; any exit status is returned (errors: it could not
    /// run, timed out or printed too much).
    pub async fn output(self) -> Result<Output, GitError> {
        let command = self.shown();
        let timeout = self.git.timeout;
        let mut child = Command::new(&self.git.inner.program);
        child
            .args(CONFIG)
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.git.inner.env.iter().map(|(k, v)| (k, v)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = child.spawn().map_err(|source| GitError::Io {
            action: "run git in",
            path: self.dir.clone(),
            source,
        })?;
        let guard = GroupKill(child.id().map(|id| Pid::from_raw(id as i32)));
        let limit = self.cap.unwrap_or(MAX_OUTPUT);
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let input = self.stdin;
        let work = async {
            let feed = async {
                if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                    // A command that stops reading early fails with its own message.
                    let _ = pipe.write_all(&bytes).await;
                    let _ = pipe.shutdown().await;
                }
            };
            let ((), (stdout, over), stderr) = tokio::join!(
                feed,
                read_limited(stdout, limit, &guard),
                read_tail(stderr, STDERR_KEEP)
            );
            let status = child.wait().await;
            (stdout, over, stderr, status)
        };
        let (stdout, over, stderr, status) =
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| GitError::TimedOut {
                    command: command.clone(),
                    dir: self.dir.clone(),
                    timeout,
                })?;
        // Reaped: its pid (the group's id) may be reused from now on.
        guard.disarm();
        let status = status.map_err(|source| GitError::Io {
            action: "wait for git in",
            path: self.dir.clone(),
            source,
        })?;
        if over && self.cap.is_none() {
            return Err(GitError::OutputTooLarge {
                command,
                dir: self.dir,
                limit,
            });
        }
        Ok(Output {
            code: status.code(),
            stdout,
            stderr,
            truncated: over,
        })
    }
}

/// [`GitError::Failed`] for a finished command, with `hint` after git's message.
pub(crate) fn failed(command: String, dir: PathBuf, out: &Output, hint: &str) -> GitError {
    let message = out.stderr.trim();
    let message = if message.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        message.to_string()
    };
    GitError::Failed {
        command,
        dir,
        status: match out.code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".into(),
        },
        message,
        hint: hint.to_string(),
    }
}

/// Kills the command's process group when dropped armed (a timeout, a
/// dropped future, too much output).
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads up to `limit` bytes; past it, kills the group and says so.
async fn read_limited<R: AsyncRead + Unpin>(
    reader: Option<R>,
    limit: usize,
    group: &GroupKill,
) -> (Vec<u8>, bool) {
    let Some(mut reader) = reader else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return (out, false),
            Ok(n) if out.len() + n > limit => {
                out.extend_from_slice(&chunk[..limit - out.len()]);
                group.kill();
                return (out, true);
            }
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads to the end, keeping the last `keep` bytes.
pub(crate) async fn read_tail<R: AsyncRead + Unpin>(reader: Option<R>, keep: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_every_known_form() {
        assert_eq!(
            parse_version("git version 2.39.5\n"),
            Some(GitVersion(2, 39))
        );
        assert_eq!(
            parse_version("git version 2.39.3 (Apple Git-146)"),
            Some(GitVersion(2, 39))
        );
        assert_eq!(
            parse_version("git version 2.47.0.windows.1"),
            Some(GitVersion(2, 47))
        );
        assert_eq!(parse_version("git version 3.0"), Some(GitVersion(3, 0)));
        assert_eq!(parse_version("hub version 2.14"), None);
        assert!(GitVersion(2, 37) < GitVersion(MIN_GIT.0, MIN_GIT.1));
        assert!(GitVersion(3, 0) > GitVersion(MIN_GIT.0, MIN_GIT.1));
    }
}
