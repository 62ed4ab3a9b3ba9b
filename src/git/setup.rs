//! Making a new worktree ready: the ignored files a task needs (`.env`,
//! local config) copied from the work tree by the patterns of its
//! `.worktreeinclude` (gitignore syntax, the file Claude Code reads too: like
//! Claude Code, only files git ignores are copied), then
//! `--worktree-setup` (e.g. `npm ci`), whose failure fails the attempt with
//! its output.
//!
//! A file the worktree already has (the goal branch holds it) is not
//! overwritten: the committed version wins. Symbolic links are copied as links.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::GitError;
use super::repo::GoalRepo;
use super::runner::read_tail;
use super::worktree::Worktree;

/// The file naming what to copy into each worktree.
pub const INCLUDE_FILE: &str = ".worktreeinclude";

/// Bytes kept of each of the setup command's stdout and stderr (their ends).
const SETUP_OUTPUT: usize = 8 * 1024;

impl GoalRepo {
    /// Copies the `.worktreeinclude` files into `worktree`, then runs the setup command.
    pub(crate) async fn prepare(&self, worktree: &Worktree) -> Result<(), GitError> {
        self.copy_included(&worktree.path).await?;
        if let Some(command) = &self.setup {
            self.run_setup(command, &worktree.cli_dir).await?;
        }
        Ok(())
    }

    /// Copies the ignored files of the work tree matching `.worktreeinclude`
    /// into `dest`; returns how many.
    pub(crate) async fn copy_included(&self, dest: &Path) -> Result<usize, GitError> {
        let patterns = self.top.join(INCLUDE_FILE);
        if !patterns.is_file() {
            return Ok(0);
        }
        let out = self
            .git
            .cmd(&self.top)
            .args(["ls-files", "-z", "--others", "--ignored"])
            .arg(format!("--exclude-from={}", patterns.display()))
            .run()
            .await?;
        let named: Vec<&[u8]> = out
            .stdout
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .collect();
        if named.is_empty() {
            return Ok(0);
        }
        // Only what git ignores, as Claude Code copies: an untracked file git
        // would commit is the user's to add, and copied it would land in the
        // attempt's commit (`git add --all`) and on the goal branch.
        let checked = self
            .git
            .cmd(&self.top)
            .args(["check-ignore", "-z", "--stdin"])
            .stdin(named.join(&0u8))
            .output()
            .await?;
        if !matches!(checked.code, Some(0 | 1)) {
            return Err(super::runner::failed(
                "check-ignore --stdin".into(),
                self.top.clone(),
                &checked,
                "",
            ));
        }
        let mut copied = 0;
        for name in checked.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let relative = Path::new(std::ffi::OsStr::from_bytes(name));
            let (from, to) = (self.top.join(relative), dest.join(relative));
            if to.symlink_metadata().is_ok() {
                continue;
            }
            copy_one(&from, &to)?;
            copied += 1;
        }
        Ok(copied)
    }

    /// Runs `sh -c command` in `dir` with porki's child environment; a
    /// failure (or running past the setup time limit) carries its output.
    pub(crate) async fn run_setup(&self, command: &str, dir: &Path) -> Result<(), GitError> {
        let failed = |status: String, output: String| GitError::SetupFailed {
            command: command.to_string(),
            dir: dir.to_path_buf(),
            status,
            output,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .env_clear()
            .envs(self.git.child_env().iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("could not start `sh`".into(), e.to_string()))?;
        let pgid = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let work = async {
            let (stdout, stderr) = tokio::join!(
                read_tail(stdout, SETUP_OUTPUT),
                read_tail(stderr, SETUP_OUTPUT)
            );
            (child.wait().await, format!("{stdout}{stderr}"))
        };
        let result = tokio::time::timeout(self.setup_timeout, work).await;
        // Whatever the command left running in its group goes with it.
        if let Some(pgid) = pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        match result {
            Err(_) => Err(failed(
                format!("stopped after {:?}", self.setup_timeout),
                String::new(),
            )),
            Ok((Err(e), output)) => Err(failed(e.to_string(), output)),
            Ok((Ok(status), _)) if status.success() => Ok(()),
            Ok((Ok(status), output)) => Err(failed(status.to_string(), output)),
        }
    }
}

/// Copies a file (its permissions too) or a symbolic link, making its folders.
fn copy_one(from: &Path, to: &Path) -> Result<(), GitError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let meta = from.symlink_metadata().map_err(io("read", from))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(io("read", from))?;
        std::os::unix::fs::symlink(target, to).map_err(io("create", to))?;
    } else {
        std::fs::copy(from, to).map_err(io("copy to", to))?;
    }
    Ok(())
}
