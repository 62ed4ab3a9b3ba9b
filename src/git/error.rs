//! What can go wrong driving git, each error saying what the user should do.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// The oldest git porki drives: `git merge-tree --write-tree` came in 2.38.
pub const MIN_GIT: (u32, u32) = (2, 38);

/// A failure of a git operation (or of the worktree setup command).
#[derive(Debug, Error)]
pub enum GitError {
    /// The git program could not be started.
    #[error(
        "git was not found ({program}): install git 2.38 or newer (Debian: `apt-get install git`) or pass --isolation shared"
    )]
    NotInstalled {
        /// The program porki tried to run.
        program: String,
    },
    /// The installed git lacks what porki needs.
    #[error(
        "git {found} is too old: porki needs git 2.38 or newer (for `git merge-tree --write-tree`); install a newer git (Debian bookworm has 2.39) or pass --isolation shared"
    )]
    TooOld {
        /// The version `git --version` printed.
        found: String,
    },
    /// A git command exited with an error.
    #[error("`git {command}` failed in {dir} ({status}): {message}{hint}")]
    Failed {
        /// The command's arguments, as typed.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit status.
        status: String,
        /// git's own message (the end of its stderr).
        message: String,
        /// What to do, when porki knows better than git's message.
        hint: String,
    },
    /// A git command did not finish in time.
    #[error(
        "`git {command}` in {dir} did not finish within {timeout:?} and was stopped: if it talks to a remote, check that the remote answers and needs no password (use an ssh agent or a credential helper)"
    )]
    TimedOut {
        /// The command's arguments.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The limit.
        timeout: Duration,
    },
    /// A git command printed more than porki reads.
    #[error(
        "`git {command}` in {dir} printed more than {limit} bytes: the repository is larger than porki expects here; report this with the command"
    )]
    OutputTooLarge {
        /// The command's arguments.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The limit in bytes.
        limit: usize,
    },
    /// A file operation porki does itself failed.
    #[error("cannot {action} {path}: {source}; check the folder's permissions and free space")]
    Io {
        /// What porki was doing ("create", "copy to"…).
        action: &'static str,
        /// The path it acted on.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The workspace (or the repository's git folder) cannot be written.
    #[error(
        "cannot write in {dir}: {source}; make it writable for this user or choose another --workspace"
    )]
    NotWritable {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The workspace is inside a git folder or a bare repository: there is no
    /// work tree to branch from.
    #[error(
        "{dir} is inside a git folder or a bare repository, not a work tree: choose a --workspace inside a checkout, or outside any repository"
    )]
    NoWorkTree {
        /// The workspace.
        dir: PathBuf,
    },
    /// `--base-ref` names nothing.
    #[error(
        "--base-ref {base_ref:?} is not a commit in {repo}: {message}; pass a branch, tag or commit that exists (`git log -1 {base_ref}` shows it), or leave --base-ref out to start from HEAD"
    )]
    BaseRefMissing {
        /// The ref as given.
        base_ref: String,
        /// The repository.
        repo: PathBuf,
        /// git's message.
        message: String,
    },
    /// The repository is in the middle of an operation that porki's start
    /// point or branch depends on.
    #[error("{repo} is in the middle of {operation}: {why}; {todo}")]
    OperationInProgress {
        /// The work tree.
        repo: PathBuf,
        /// "a rebase", "a bisect"…
        operation: &'static str,
        /// Why it matters to porki.
        why: String,
        /// What the user should do.
        todo: String,
    },
    /// The remote cannot be fetched from.
    #[error(
        "cannot fetch from the git remote {remote}: {message}; check --git-remote (any URL `git fetch` accepts) and that this machine can reach it without a password prompt"
    )]
    RemoteUnreachable {
        /// The remote's URL.
        remote: String,
        /// git's message.
        message: String,
    },
    /// The remote refused a push for another reason than a moved branch.
    #[error(
        "the git remote {remote} refused the push of {branch}: {message}; allow this machine to push there (permissions, branch protection, hooks) or use another --git-remote"
    )]
    PushRejected {
        /// The remote's URL.
        remote: String,
        /// The branch pushed.
        branch: String,
        /// git's message.
        message: String,
    },
    /// The goal branch was deleted after porki made it.
    #[error(
        "the goal branch {branch} is gone from {repo}: restore it (`git reflog` shows where it was) or start the goal again"
    )]
    BranchGone {
        /// The branch.
        branch: String,
        /// The work tree.
        repo: PathBuf,
    },
    /// A commit message or trailer value that git cannot hold.
    #[error("cannot commit: {0}")]
    BadCommit(String),
    /// A merge commit was asked for while conflict markers are still in files.
    #[error(
        "conflict markers are still in {files:?}: resolve every conflict (no `<<<<<<<` or `>>>>>>>` lines left) before the merge is committed"
    )]
    UnresolvedConflict {
        /// The files still holding markers.
        files: Vec<String>,
    },
    /// `--worktree-setup` failed.
    #[error(
        "the worktree setup command {command:?} failed in {dir} ({status}); fix it or the project's setup, its output:\n{output}"
    )]
    SetupFailed {
        /// The command.
        command: String,
        /// The worktree folder it ran in.
        dir: PathBuf,
        /// Its exit status, or that it timed out.
        status: String,
        /// Its output (stdout then stderr), capped.
        output: String,
    },
    /// git printed something porki does not understand.
    #[error(
        "unexpected output from `git {command}`: {output:?}; report this with your git version"
    )]
    Unexpected {
        /// The command.
        command: String,
        /// What it printed (truncated).
        output: String,
    },
}
