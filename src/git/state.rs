//! A repository in the middle of something (a rebase, a merge, a bisect…):
//! refused only when it matters to porki.
//!
//! In an adopted repository porki never touches the user's checkout, so a
//! merge or cherry-pick in progress there does not matter; it matters when
//! porki would start the goal branch at `HEAD` while a rebase or bisect has
//! `HEAD` on a commit nobody chose, or when the rebase is rewriting the goal
//! branch itself. In an owned repository the folder's checkout is the goal
//! branch, which porki moves: anything in progress there is refused.

use std::path::Path;

use super::GitError;
use super::refs::Branch;
use super::repo::RepoKind;

/// An operation git records in a work tree's git folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Rebase,
    Bisect,
    Merge,
    CherryPick,
    Revert,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Rebase => "a rebase",
            Self::Bisect => "a bisect",
            Self::Merge => "a merge",
            Self::CherryPick => "a cherry-pick",
            Self::Revert => "a revert",
        }
    }

    fn todo(self) -> &'static str {
        match self {
            Self::Rebase => "finish or abort it (`git rebase --continue` or `git rebase --abort`)",
            Self::Bisect => "end it (`git bisect reset`)",
            Self::Merge => "finish or abort it (`git commit` or `git merge --abort`)",
            Self::CherryPick => {
                "finish or abort it (`git cherry-pick --continue` or `git cherry-pick --abort`)"
            }
            Self::Revert => "finish or abort it (`git revert --continue` or `git revert --abort`)",
        }
    }
}

/// The operations in progress in the work tree whose git folder is `git_dir`,
/// and the branch a rebase is rewriting.
pub(crate) fn operations(git_dir: &Path) -> (Vec<Operation>, Option<String>) {
    let mut found = Vec::new();
    let mut rebased = None;
    for dir in ["rebase-merge", "rebase-apply"] {
        let dir = git_dir.join(dir);
        if dir.is_dir() {
            found.push(Operation::Rebase);
            rebased = std::fs::read_to_string(dir.join("head-name"))
                .ok()
                .map(|s| s.trim().to_string());
        }
    }
    for (file, op) in [
        ("BISECT_LOG", Operation::Bisect),
        ("MERGE_HEAD", Operation::Merge),
        ("CHERRY_PICK_HEAD", Operation::CherryPick),
        ("REVERT_HEAD", Operation::Revert),
    ] {
        if git_dir.join(file).exists() {
            found.push(op);
        }
    }
    (found, rebased)
}

/// Refuses an operation in progress that matters (see the module's doc);
/// `from_head`: the goal branch would be started at `HEAD` now.
pub(crate) fn check_operations(
    git_dir: &Path,
    top: &Path,
    branch: &Branch,
    kind: RepoKind,
    from_head: bool,
) -> Result<(), GitError> {
    let (found, rebased) = operations(git_dir);
    let refuse = |op: Operation, why: String| GitError::OperationInProgress {
        repo: top.to_path_buf(),
        operation: op.name(),
        why,
        todo: op.todo().to_string(),
    };
    for op in found {
        match (kind, op) {
            (RepoKind::Owned, _) => {
                return Err(refuse(
                    op,
                    format!(
                        "this folder's checkout is the goal branch {branch}, which porki moves as tasks merge"
                    ),
                ));
            }
            (_, Operation::Rebase) if rebased.as_deref() == Some(branch.full().as_str()) => {
                return Err(refuse(
                    op,
                    format!(
                        "the rebase is rewriting porki's goal branch {branch} and would overwrite its merges when it ends"
                    ),
                ));
            }
            (_, Operation::Rebase | Operation::Bisect) if from_head => {
                return Err(refuse(
                    op,
                    format!(
                        "HEAD is a commit it is visiting, not one to start the goal branch {branch} at (or pass --base-ref)"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_dir(files: &[&str]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "porki-git-state-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "refs/heads/main\n").unwrap();
        }
        dir
    }

    fn check(files: &[&str], kind: RepoKind, from_head: bool) -> Result<(), GitError> {
        let dir = git_dir(files);
        let result = check_operations(&dir, &dir, &Branch::goal("g"), kind, from_head);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn an_adopted_repository_mid_merge_is_fine_as_porki_never_touches_the_checkout() {
        for files in [&["MERGE_HEAD"][..], &["CHERRY_PICK_HEAD"], &["REVERT_HEAD"]] {
            assert!(check(files, RepoKind::Adopted, true).is_ok(), "{files:?}");
        }
        assert!(check(&["rebase-merge/head-name"], RepoKind::Adopted, false).is_ok());
    }

    #[test]
    fn a_rebase_or_bisect_is_refused_when_the_goal_branch_would_start_at_head() {
        let err = check(&["rebase-merge/head-name"], RepoKind::Adopted, true).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("a rebase") && text.contains("git rebase --abort"),
            "{text}"
        );
        assert!(text.contains("--base-ref"), "{text}");
        let err = check(&["BISECT_LOG"], RepoKind::Adopted, true).unwrap_err();
        assert!(err.to_string().contains("git bisect reset"), "{err}");
    }

    #[test]
    fn a_rebase_of_the_goal_branch_is_always_refused() {
        let dir = git_dir(&[]);
        std::fs::create_dir_all(dir.join("rebase-apply")).unwrap();
        std::fs::write(dir.join("rebase-apply/head-name"), "refs/heads/porki/g\n").unwrap();
        let err =
            check_operations(&dir, &dir, &Branch::goal("g"), RepoKind::Adopted, false).unwrap_err();
        assert!(
            err.to_string().contains("rewriting porki's goal branch"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_owned_checkout_refuses_anything_in_progress() {
        let err = check(&["MERGE_HEAD"], RepoKind::Owned, false).unwrap_err();
        assert!(err.to_string().contains("git merge --abort"), "{err}");
        assert!(check(&[], RepoKind::Owned, true).is_ok());
    }
}
