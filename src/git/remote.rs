//! The goal branch shared through a remote (`--git-remote`): the remote's
//! goal branch is the truth, the local one follows it, and a merge lands by a
//! push that succeeds only if the remote still has the tip the merge started
//! from (`--force-with-lease`).
//!
//! The URL may carry a password or token (`https://user:TOKEN@host/…`): git
//! gets it through its environment (`GIT_CONFIG_*`, as a remote of porki's
//! own name), never on a command line other users can read (`ps`), and
//! porki's messages and the store show it with the secret hidden.

use std::time::Duration;

use super::GitError;
use super::checkout::Checkout;
use super::refs::CommitId;
use super::repo::GoalRepo;
use super::runner::{Cmd, failed};

/// Tries of a fetch that lost a race for its ref with another process.
const FETCH_TRIES: u32 = 3;

/// The name porki's commands give the remote (its URL set in their
/// environment only).
const REMOTE_NAME: &str = "porki-goal-remote";

/// `url` as porki shows it (messages, the store, the dashboard): a password
/// or token in its user info hidden.
pub fn shown_remote(url: &str) -> String {
    crate::store::redact(url)
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The remote's goal branch is now the pushed commit.
    Done,
    /// The remote's goal branch was not where the push expected.
    Moved,
}

impl GoalRepo {
    /// The ref holding the remote's goal branch as last fetched.
    fn tracking_ref(&self) -> String {
        format!("refs/porki-remote/{}", self.branch.name())
    }

    /// A command talking to the remote at `url`, known to it as [`REMOTE_NAME`].
    fn remote_cmd(&self, url: &str) -> Cmd<'_> {
        self.git
            .cmd(&self.top)
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("remote.{REMOTE_NAME}.url"))
            .env("GIT_CONFIG_VALUE_0", url)
    }

    /// Fetches the remote's goal branch; `None` when the remote has none.
    pub(crate) async fn fetch_remote(&self) -> Result<Option<CommitId>, GitError> {
        let Some(url) = &self.remote else {
            return Ok(None);
        };
        let refspec = format!("+{}:{}", self.branch.full(), self.tracking_ref());
        for tries in 1.. {
            let out = self
                .remote_cmd(url)
                .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
                .args(["--end-of-options", REMOTE_NAME, refspec.as_str()])
                .output()
                .await?;
            if out.success() {
                return self.remote_tip().await;
            }
            if out.stderr.contains("couldn't find remote ref") {
                self.git
                    .cmd(&self.top)
                    .args(["update-ref", "-d", &self.tracking_ref()])
                    .run()
                    .await?;
                return Ok(None);
            }
            // Another process of this repository fetching the same ref.
            if out.stderr.contains("cannot lock ref") && tries < FETCH_TRIES {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
                continue;
            }
            return Err(GitError::RemoteUnreachable {
                remote: shown_remote(url),
                message: out.stderr.trim().to_string(),
            });
        }
        unreachable!("the loop returns")
    }

    /// The remote's goal branch as last fetched (`None`: no remote, or no branch there).
    pub(crate) async fn remote_tip(&self) -> Result<Option<CommitId>, GitError> {
        if self.remote.is_none() {
            return Ok(None);
        }
        self.resolve(&self.tracking_ref()).await
    }

    /// The goal branch's tip: with a remote, fetched from it first (the local
    /// branch then follows it; a remote without the branch gets the local one).
    pub async fn tip(&self) -> Result<CommitId, GitError> {
        self.sync_tip().await
    }

    pub(crate) async fn sync_tip(&self) -> Result<CommitId, GitError> {
        if self.remote.is_some() {
            for _ in 0..FETCH_TRIES {
                if let Some(remote) = self.fetch_remote().await? {
                    self.follow(&remote).await?;
                    return Ok(remote);
                }
                let local = self.require_local_tip().await?;
                if self.push(&local, None).await? == Pushed::Done {
                    self.set_tracking(&local).await?;
                    return Ok(local);
                }
            }
        }
        self.require_local_tip().await
    }

    /// The local goal branch's tip; an error if someone deleted it.
    pub(crate) async fn require_local_tip(&self) -> Result<CommitId, GitError> {
        self.local_tip().await?.ok_or_else(|| GitError::BranchGone {
            branch: self.branch.to_string(),
            repo: self.top.clone(),
        })
    }

    /// Moves the local goal branch to `target` (the remote's), bringing an
    /// owned folder's checkout along.
    async fn follow(&self, target: &CommitId) -> Result<(), GitError> {
        let local = self.local_tip().await?;
        if local.as_ref() == Some(target) {
            return Ok(());
        }
        self.git
            .cmd(&self.top)
            .args(["update-ref", "-m", "porki: follow the remote goal branch"])
            .args([self.branch.full().as_str(), target.as_str()])
            .run()
            .await?;
        if let Checkout::Behind { message } = self.update_checkout(local.as_ref(), target).await? {
            tracing::warn!(branch = %self.branch, %message, "the folder's checkout could not follow the goal branch");
        }
        Ok(())
    }

    /// Records `commit` as the remote's goal branch after a push of it.
    pub(crate) async fn set_tracking(&self, commit: &CommitId) -> Result<(), GitError> {
        self.git
            .cmd(&self.top)
            .args(["update-ref", &self.tracking_ref(), commit.as_str()])
            .run()
            .await
            .map(drop)
    }

    /// Pushes `new` as the remote's goal branch if the remote's is still `old`
    /// (`None`: if it has none).
    pub(crate) async fn push(
        &self,
        new: &CommitId,
        old: Option<&CommitId>,
    ) -> Result<Pushed, GitError> {
        let Some(url) = &self.remote else {
            return Ok(Pushed::Done);
        };
        let full = self.branch.full();
        let lease = format!(
            "--force-with-lease={full}:{}",
            old.map(CommitId::as_str).unwrap_or("")
        );
        let refspec = format!("{new}:{full}");
        let out = self
            .remote_cmd(url)
            .args(["push", "--porcelain", "--no-verify", lease.as_str()])
            .args(["--end-of-options", REMOTE_NAME, refspec.as_str()])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout.lines().find(|l| l.contains(&format!(":{full}\t")));
        match (out.success(), line) {
            (true, _) => Ok(Pushed::Done),
            (false, Some(line)) if line.starts_with('!') => {
                let reason = line.rsplit('\t').next().unwrap_or(line);
                if ["stale info", "fetch first", "non-fast-forward"]
                    .iter()
                    .any(|r| reason.contains(r))
                {
                    Ok(Pushed::Moved)
                } else {
                    Err(GitError::PushRejected {
                        remote: shown_remote(url),
                        branch: self.branch.to_string(),
                        message: format!("{reason}; {}", out.stderr.trim()),
                    })
                }
            }
            _ => Err(failed(
                format!("push {} {refspec}", shown_remote(url)),
                self.top.clone(),
                &out,
                "; check that the remote answers and accepts pushes from this machine",
            )),
        }
    }
}
