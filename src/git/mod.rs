//! Driving the real `git` (2.38 or newer) for `--isolation worktree`: a goal's
//! repository and branch, a worktree per attempt, commits with porki's
//! trailers, merges into the goal branch without a checkout, and their
//! cleanup. `docs/isolation.md` is the design; this module is its git side,
//! called by the agent (when each step runs) and the store (the merge lock).
//!
//! One attempt, as the agent drives it:
//!
//! ```text
//! Git::detect ─ GoalRepo::open_or_init ─┬─ merged(task)?          → complete with that commit
//!                                       ├─ task_commit(task)?     → merge it (no CLI)
//!                                       ├─ create_worktree(task, tip)   (or conflict_worktree for a `.merge`)
//!                                       │    CLI runs in worktree.cli_dir
//!                                       ├─ commit(worktree, agent, message, attempt)  → None: nothing changed
//!                                       ├─ merge(commit, task, attempt) under the store's merge lock
//!                                       │    → Merged | AlreadyMerged | Conflict | TipMoved (scan, retry)
//!                                       └─ remove_worktree(task); commit_diff(commit) for the store and reviews
//! ```
//!
//! Files, one job each: `runner` (the git child: output caps, time limit,
//! environment), `error`, `refs` (branch names from ids, commit ids),
//! `trailers` (commit messages and identities), `repo` (adopted or owned,
//! the goal branch), `state` (a rebase or merge in progress), `remote` (fetch
//! and leased push), `worktree`, `setup` (`.worktreeinclude`,
//! `--worktree-setup`), `commit`, `merge`, `checkout` (an owned folder
//! following its branch), `conflict`, `scan` (merged tasks from trailers),
//! `diff`, `gc`.

mod checkout;
mod commit;
mod conflict;
mod diff;
mod error;
mod gc;
mod merge;
mod refs;
mod remote;
mod repo;
mod runner;
mod scan;
mod setup;
mod state;
mod trailers;
mod worktree;

#[cfg(test)]
mod tests;

pub use self::checkout::Checkout;
pub use self::conflict::Conflicted;
pub use self::diff::CommitDiff;
pub use self::error::{GitError, MIN_GIT};
pub use self::gc::GcReport;
pub use self::merge::MergeOutcome;
pub use self::refs::{Branch, CommitId, ref_component};
pub use self::remote::shown_remote;
pub use self::repo::{DEFAULT_SETUP_TIMEOUT, GoalRepo, RepoKind};
pub use self::runner::{DEFAULT_TIMEOUT, Git, GitVersion, parse_version};
pub use self::scan::{Merged, TaskCommit};
pub use self::setup::INCLUDE_FILE;
pub use self::trailers::{Identity, Trailers, message_with_trailers};
pub use self::worktree::Worktree;
