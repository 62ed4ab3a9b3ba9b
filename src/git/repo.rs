//! A goal's repository: found from its workspace folder (adopted), or made
//! there (owned), with the goal branch ready.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::Mutex;

use super::GitError;
use super::refs::{Branch, CommitId};
use super::runner::Git;
use super::scan::ScanState;
use super::state::check_operations;
use super::trailers::{Identity, start_message, start_of};

/// How porki came to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// The workspace was inside a user's work tree: porki never touches its
    /// checked-out branch, index or files.
    Adopted,
    /// porki made the repository; the workspace's checkout is the goal branch,
    /// brought up to date after every merge.
    Owned,
}

/// Default time limit of `--worktree-setup`.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// One goal's view of its repository: the goal branch, its attempt
/// worktrees, its merges. One per goal per process; share it (`Arc`).
#[derive(Debug)]
pub struct GoalRepo {
    pub(crate) git: Git,
    pub(crate) goal: String,
    pub(crate) kind: RepoKind,
    /// The work tree holding the workspace (the workspace itself when owned).
    pub(crate) top: PathBuf,
    /// `$GIT_COMMON_DIR`, absolute.
    pub(crate) common_dir: PathBuf,
    /// The git folder of the work tree holding the workspace.
    pub(crate) git_dir: PathBuf,
    /// The workspace's place in the work tree (`docs/`; empty at the top).
    pub(crate) subdir: PathBuf,
    pub(crate) branch: Branch,
    /// The `--git-remote` URL.
    pub(crate) remote: Option<String>,
    /// The goal branch's first commit (porki's `Porki-Start:`), when found.
    pub(crate) start: Option<CommitId>,
    pub(crate) committer: Identity,
    pub(crate) setup: Option<String>,
    pub(crate) setup_timeout: Duration,
    pub(crate) scan: Mutex<ScanState>,
}

/// The work tree a folder is in.
struct WorkTree {
    top: PathBuf,
    common_dir: PathBuf,
    git_dir: PathBuf,
    prefix: PathBuf,
}

impl GoalRepo {
    /// Opens the repository of `workspace` for `goal`, making what is missing:
    /// inside a work tree, the goal branch at `base_ref` (default `HEAD`);
    /// elsewhere, a new repository whose checkout is the goal branch. With a
    /// `remote`, the goal branch follows the remote's.
    pub async fn open_or_init(
        git: &Git,
        workspace: &Path,
        goal: &str,
        base_ref: Option<&str>,
        remote: Option<&str>,
    ) -> Result<Self, GitError> {
        let workspace = absolute(workspace)?;
        std::fs::create_dir_all(&workspace).map_err(|source| GitError::NotWritable {
            dir: workspace.clone(),
            source,
        })?;
        let branch = Branch::goal(goal);
        let found = match discover(git, &workspace).await? {
            Some(found) => found,
            None => {
                probe_writable(&workspace)?;
                init(git, &workspace, &branch).await?;
                discover(git, &workspace)
                    .await?
                    .ok_or_else(|| GitError::NoWorkTree {
                        dir: workspace.clone(),
                    })?
            }
        };
        let mut repo = Self::from_found(git, found, goal, remote).await?;
        probe_writable(&repo.common_dir)?;
        let remote_tip = repo.fetch_remote().await?;
        let exists = remote_tip.is_some() || repo.local_tip().await?.is_some();
        // Refused before porki writes anything in the user's repository (as
        // is a missing `--base-ref`, by `create_branch`).
        check_operations(
            &repo.git_dir,
            &repo.top,
            &repo.branch,
            repo.kind,
            !exists && base_ref.is_none(),
        )?;
        if !exists {
            repo.create_branch(base_ref).await?;
        }
        repo.exclude_worktrees()?;
        repo.sync_tip().await?;
        repo.start = repo.find_start().await?;
        Ok(repo)
    }

    /// Opens the repository of `workspace` for `goal` if it has the goal
    /// branch; makes nothing (for `porki gc` and the reaper).
    pub async fn open(
        git: &Git,
        workspace: &Path,
        goal: &str,
        remote: Option<&str>,
    ) -> Result<Option<Self>, GitError> {
        let workspace = absolute(workspace)?;
        if !workspace.is_dir() {
            return Ok(None);
        }
        let Some(found) = discover(git, &workspace).await? else {
            return Ok(None);
        };
        let mut repo = Self::from_found(git, found, goal, remote).await?;
        if repo.local_tip().await?.is_none() {
            return Ok(None);
        }
        repo.start = repo.find_start().await?;
        Ok(Some(repo))
    }

    async fn from_found(
        git: &Git,
        found: WorkTree,
        goal: &str,
        remote: Option<&str>,
    ) -> Result<Self, GitError> {
        let WorkTree {
            top,
            common_dir,
            git_dir,
            prefix,
        } = found;
        let branch = Branch::goal(goal);
        let head = git
            .cmd(&top)
            .args(["symbolic-ref", "--quiet", "HEAD"])
            .output()
            .await?
            .text();
        let kind = if prefix.as_os_str().is_empty() && head == branch.full() {
            RepoKind::Owned
        } else {
            RepoKind::Adopted
        };
        Ok(Self {
            git: git.clone(),
            goal: goal.to_string(),
            kind,
            top,
            common_dir,
            git_dir,
            subdir: prefix,
            branch,
            remote: remote.map(str::to_string),
            start: None,
            committer: Identity::porki(),
            setup: None,
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            scan: Mutex::new(ScanState::default()),
        })
    }

    /// The same repository with `--worktree-setup`: `command` runs (`sh -c`) in
    /// each new worktree, stopped after `timeout`.
    pub fn with_setup(mut self, command: Option<String>, timeout: Duration) -> Self {
        self.setup = command.filter(|c| !c.trim().is_empty());
        self.setup_timeout = timeout;
        self
    }

    /// The same repository committing as `committer` (default: porki).
    pub fn with_committer(mut self, committer: Identity) -> Self {
        self.committer = committer;
        self
    }

    /// Whether porki adopted the repository or made it.
    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// The goal branch.
    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    /// The work tree that holds the workspace (the workspace itself when owned).
    pub fn work_tree(&self) -> &Path {
        &self.top
    }

    /// `$GIT_COMMON_DIR`, where porki keeps its worktrees.
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The goal's id.
    pub fn goal(&self) -> &str {
        &self.goal
    }

    /// The commit at `rev`, if it names one.
    pub(crate) async fn resolve(&self, rev: &str) -> Result<Option<CommitId>, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"))
            .output()
            .await?;
        if out.success() {
            CommitId::parse(&out.text()).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The local goal branch's tip (`None`: no branch yet).
    pub(crate) async fn local_tip(&self) -> Result<Option<CommitId>, GitError> {
        self.resolve(&self.branch.full()).await
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub(crate) async fn is_ancestor(
        &self,
        ancestor: &CommitId,
        descendant: &CommitId,
    ) -> Result<bool, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args(["merge-base", "--is-ancestor"])
            .args([ancestor.as_str(), descendant.as_str()])
            .output()
            .await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(super::runner::failed(
                format!("merge-base --is-ancestor {ancestor} {descendant}"),
                self.top.clone(),
                &out,
                "",
            )),
        }
    }

    /// Makes a commit of `tree` with `parents` and `message`, committed by
    /// porki's committer and authored by `author`.
    pub(crate) async fn commit_tree(
        &self,
        tree: &str,
        parents: &[&CommitId],
        message: &str,
        author: &Identity,
    ) -> Result<CommitId, GitError> {
        let mut cmd = self
            .git
            .cmd(&self.top)
            .args(["commit-tree", "--no-gpg-sign", "-F", "-"]);
        for parent in parents {
            cmd = cmd.arg("-p").arg(parent.as_str());
        }
        let out = self
            .identities(cmd, author)
            .arg(tree)
            .stdin(message)
            .run()
            .await?;
        CommitId::parse(&out.text())
    }

    /// Sets the author and committer of a command that commits.
    pub(crate) fn identities<'g>(
        &self,
        cmd: super::runner::Cmd<'g>,
        author: &Identity,
    ) -> super::runner::Cmd<'g> {
        cmd.env("GIT_AUTHOR_NAME", &author.name)
            .env("GIT_AUTHOR_EMAIL", &author.email)
            .env("GIT_COMMITTER_NAME", &self.committer.name)
            .env("GIT_COMMITTER_EMAIL", &self.committer.email)
    }

    /// Creates the goal branch (it does not exist): at a new empty first
    /// commit when owned or when the repository has no commit, else on top of
    /// `base_ref` (default `HEAD`) with an empty commit marking its start.
    async fn create_branch(&self, base_ref: Option<&str>) -> Result<(), GitError> {
        let base = match (self.kind, base_ref) {
            (RepoKind::Owned, _) => None,
            (RepoKind::Adopted, Some(given)) => match self.resolve(given).await? {
                Some(commit) => Some(commit),
                None => {
                    return Err(GitError::BaseRefMissing {
                        base_ref: given.to_string(),
                        repo: self.top.clone(),
                        message: self.why_not_a_commit(given).await?,
                    });
                }
            },
            // An empty repository (no commit on HEAD yet) starts like an owned one.
            (RepoKind::Adopted, None) => self.resolve("HEAD").await?,
        };
        let tree = match &base {
            Some(commit) => format!("{commit}^{{tree}}"),
            None => self.empty_tree().await?,
        };
        let tree = self.git.run(&self.top, &["rev-parse", &tree]).await?;
        let message = start_message(&self.goal, base.as_ref().map(CommitId::as_str))?;
        let parents: Vec<&CommitId> = base.iter().collect();
        let start = self
            .commit_tree(&tree, &parents, &message, &self.committer.clone())
            .await?;
        // Create only: another process may have made it meanwhile, and wins.
        let made = self
            .git
            .cmd(&self.top)
            .args(["update-ref", "-m", "porki: start the goal branch"])
            .args([self.branch.full().as_str(), start.as_str(), ""])
            .output()
            .await?;
        if !made.success() && self.local_tip().await?.is_none() {
            return Err(super::runner::failed(
                format!("update-ref {} {start}", self.branch.full()),
                self.top.clone(),
                &made,
                "",
            ));
        }
        Ok(())
    }

    /// git's own words for why `rev` names no commit (`rev-parse --verify`
    /// only says it needs a single revision).
    async fn why_not_a_commit(&self, rev: &str) -> Result<String, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args(["log", "-1", "--format=%H", "--end-of-options", rev, "--"])
            .output()
            .await?;
        let message = out.stderr.trim();
        Ok(if out.success() || message.is_empty() {
            "it names no commit".to_string()
        } else {
            message.to_string()
        })
    }

    /// The empty tree's id in this repository's hash (written: `git fsck`
    /// wants every tree a commit names in the object store).
    pub(crate) async fn empty_tree(&self) -> Result<String, GitError> {
        self.git
            .cmd(&self.top)
            .args(["hash-object", "-w", "-t", "tree", "--stdin"])
            .stdin(Vec::new())
            .run()
            .await
            .map(|out| out.text())
    }

    /// The goal branch's first commit: the nearest on its first-parent line
    /// that marks this goal's start.
    async fn find_start(&self) -> Result<Option<CommitId>, GitError> {
        let out = self
            .git
            .cmd(&self.top)
            .args(["log", "--first-parent", "-1", "--format=%H%x1f%B"])
            .arg(format!("--grep=^{}: ", super::trailers::START))
            .arg(self.branch.full())
            .arg("--")
            .run()
            .await?
            .text();
        let Some((id, message)) = out.split_once('\x1f') else {
            return Ok(None);
        };
        if start_of(message).as_deref() != Some(self.goal.as_str()) {
            return Ok(None);
        }
        CommitId::parse(id).map(Some)
    }
}

/// `path` made absolute (from the current directory).
fn absolute(path: &Path) -> Result<PathBuf, GitError> {
    std::path::absolute(path).map_err(|source| GitError::Io {
        action: "find",
        path: path.to_path_buf(),
        source,
    })
}

/// Fails unless a file can be made in `dir`.
fn probe_writable(dir: &Path) -> Result<(), GitError> {
    let probe = dir.join(format!(".porki-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| GitError::NotWritable {
            dir: dir.to_path_buf(),
            source,
        })
}

/// The work tree `dir` is in (`None`: no repository).
/// Tries of `git init` in a folder other processes may be initialising too.
const INIT_TRIES: u32 = 10;

/// `git init` in `dir` on `branch`. Processes started together on a new
/// workspace all find no repository and initialise the same folder: git
/// refuses while another holds its config lock, and once that one is done a
/// rerun succeeds and leaves its repository as it is.
async fn init(git: &Git, dir: &Path, branch: &Branch) -> Result<(), GitError> {
    let mut tries = 1;
    loop {
        let done = git
            .cmd(dir)
            .args(["init", "--quiet", "--initial-branch"])
            .arg(branch.name())
            .run()
            .await;
        match done {
            Err(_) if tries < INIT_TRIES => {
                tokio::time::sleep(Duration::from_millis(10 * u64::from(tries))).await;
                tries += 1;
            }
            done => return done.map(drop),
        }
    }
}

async fn discover(git: &Git, dir: &Path) -> Result<Option<WorkTree>, GitError> {
    let inside = git
        .cmd(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output()
        .await?;
    if !inside.success() {
        if inside.stderr.contains("not a git repository") {
            return Ok(None);
        }
        // git will not work in a repository another user owns: it is not one
        // porki can adopt, so the workspace gets a repository of its own.
        if inside.stderr.contains("dubious ownership") {
            tracing::warn!(
                workspace = %dir.display(),
                "the workspace is inside a git repository another user owns, which git refuses to use; porki keeps a repository of its own in the workspace"
            );
            return Ok(None);
        }
        return Err(super::runner::failed(
            "rev-parse --is-inside-work-tree".into(),
            dir.to_path_buf(),
            &inside,
            "",
        ));
    }
    if inside.text() != "true" {
        return Err(GitError::NoWorkTree {
            dir: dir.to_path_buf(),
        });
    }
    let out = git
        .cmd(dir)
        .args([
            "rev-parse",
            "--path-format=absolute",
            "--show-toplevel",
            "--git-common-dir",
            "--git-dir",
            "--path-format=relative",
            "--show-prefix",
        ])
        .run()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let [top, common, git_dir, rest @ ..] = lines.as_slice() else {
        return Err(GitError::Unexpected {
            command: "rev-parse --show-toplevel".into(),
            output: text.clone(),
        });
    };
    let prefix = rest.first().copied().unwrap_or("").trim_end_matches('/');
    // A folder the enclosing repository ignores (a build or scratch folder) is
    // not its work: porki keeps a repository of its own there instead.
    if !prefix.is_empty() {
        let ignored = git
            .cmd(Path::new(top))
            .args(["check-ignore", "--quiet", "--"])
            .arg(format!("{prefix}/porki-probe"))
            .output()
            .await?;
        if ignored.success() {
            return Ok(None);
        }
    }
    Ok(Some(WorkTree {
        top: PathBuf::from(top),
        common_dir: PathBuf::from(common),
        git_dir: PathBuf::from(git_dir),
        prefix: PathBuf::from(prefix),
    }))
}

impl GoalRepo {
    /// Hides porki's worktree folder from `git status` through the
    /// repository's local exclude file (never the user's `.gitignore`).
    fn exclude_worktrees(&self) -> Result<(), GitError> {
        let pattern = format!("/{}/", super::worktree::WORKTREES_DIR);
        let file = self.common_dir.join("info").join("exclude");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().any(|l| l.trim() == pattern) {
            return Ok(());
        }
        let io = |source| GitError::Io {
            action: "add porki's worktree folder to",
            path: file.clone(),
            source,
        };
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut new = text;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(&format!(
            "# porki's attempt worktrees (docs/isolation.md)\n{pattern}\n"
        ));
        std::fs::write(&file, new).map_err(io)
    }
}
