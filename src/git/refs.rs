//! The names porki gives git things: branch names made from goal and task ids,
//! and commit ids.
//!
//! Branches (git cannot hold both `porki/g` and `porki/g/t`, a file and a
//! folder of the same name, so task branches live in their own namespace):
//! the goal branch `porki/<goal>`, a task's `porki-task/<goal>/<task>`.

use std::fmt;

use sha2::{Digest, Sha256};

use super::GitError;

/// Longest id used as it is in a ref name (porki's ids are at most 64 characters).
const MAX_PLAIN: usize = 64;

/// Longest readable part kept of an id that must be changed.
const MAX_KEPT: usize = 40;

/// Hex digits of the hash that makes a changed id unique.
const HASH_DIGITS: usize = 12;

/// An id as one valid ref component (`git check-ref-format` rules), and a
/// safe folder name: ids made of `A-Z a-z 0-9 . _ -` that git accepts stay
/// as they are; any other id becomes its letters, digits, `_` and `-` (others
/// replaced by `_`), then `+` and a hash of the whole id. Since no id kept as
/// it is holds a `+`, no two ids share a component (but for a 48-bit hash
/// collision).
pub fn ref_component(id: &str) -> String {
    if is_plain(id) {
        return id.to_string();
    }
    let kept: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_KEPT)
        .collect();
    let hash = hex::encode(Sha256::digest(id.as_bytes()));
    format!("{kept}+{}", &hash[..HASH_DIGITS])
}

/// Whether `id` can be used as it is: the id alphabet, and none of the forms
/// git refuses in a component (a leading `.`, `..`, a trailing `.` or `.lock`).
fn is_plain(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PLAIN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.starts_with('.')
        && !id.contains("..")
        && !id.ends_with('.')
        && !id.ends_with(".lock")
}

/// A local branch, by its short name (`porki/g`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Branch(String);

impl Branch {
    /// The goal branch of `goal`: `porki/<goal>`.
    pub fn goal(goal: &str) -> Self {
        Self(format!("porki/{}", ref_component(goal)))
    }

    /// The branch of `task`'s attempts: `porki-task/<goal>/<task>`.
    pub fn task(goal: &str, task: &str) -> Self {
        Self(format!(
            "{}/{}",
            Self::task_prefix(goal),
            ref_component(task)
        ))
    }

    /// The folder of `goal`'s task branches: `porki-task/<goal>`.
    pub(crate) fn task_prefix(goal: &str) -> String {
        format!("porki-task/{}", ref_component(goal))
    }

    /// The short name (`porki/g`).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The full ref (`refs/heads/porki/g`).
    pub fn full(&self) -> String {
        format!("refs/heads/{}", self.0)
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A commit's full id (40 hex digits, or 64 in a SHA-256 repository).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

impl CommitId {
    /// Checks that `text` (trimmed) is a full commit id.
    pub fn parse(text: &str) -> Result<Self, GitError> {
        let text = text.trim();
        let hex = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex && (text.len() == 40 || text.len() == 64) {
            Ok(Self(text.to_string()))
        } else {
            Err(GitError::Unexpected {
                command: "rev-parse".into(),
                output: text.chars().take(200).collect(),
            })
        }
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CommitId {
    type Err = GitError;

    fn from_str(s: &str) -> Result<Self, GitError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_git_accepts_are_kept_as_they_are() {
        for id in [
            "t1",
            "build-site",
            "a.review",
            "a.fix-3",
            "A_b.c-d",
            "-x",
            "x.lock2",
        ] {
            assert_eq!(ref_component(id), id);
        }
        assert_eq!(Branch::goal("g").full(), "refs/heads/porki/g");
        assert_eq!(Branch::task("g", "t.merge").name(), "porki-task/g/t.merge");
    }

    #[test]
    fn ids_git_refuses_become_valid_components_with_a_hash() {
        for id in [
            "",
            ".",
            "..",
            ".hidden",
            "a..b",
            "end.",
            "x.lock",
            "a/b",
            "a b",
            "@",
            "a@{1}",
            "x~1",
            "q?",
            "c*",
            "[",
            "back\\slash",
            "colon:",
            "caret^",
            "é",
            "tab\t",
            &"a".repeat(65),
        ] {
            let c = ref_component(id);
            assert!(valid_component(&c), "{id:?} -> {c:?}");
            assert!(c.contains('+'), "{id:?} -> {c:?}");
            assert!(c.len() <= MAX_KEPT + 1 + HASH_DIGITS, "{c}");
        }
        assert!(ref_component("a..b").starts_with("a__b+"));
    }

    #[test]
    fn no_two_ids_share_a_component() {
        let ids = [
            "a..b", "a_.b", "a__b", "a.-b", "x.lock", "x_lock", "x.lock.", ".x", "_x", "a/b",
            "a b", "a:b",
        ];
        let mut seen = std::collections::HashMap::new();
        for id in ids {
            if let Some(other) = seen.insert(ref_component(id), id) {
                panic!("{id:?} and {other:?} share {:?}", ref_component(id));
            }
        }
        // An id shaped like a changed one is itself changed (it holds a `+`).
        let changed = ref_component("a..b");
        assert_ne!(ref_component(&changed), changed);
    }

    #[test]
    fn commit_ids_are_full_lowercase_hex() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(CommitId::parse(&format!("{id}\n")).unwrap().as_str(), id);
        assert_eq!(CommitId::parse(id).unwrap().short(), "0123456789ab");
        assert!(CommitId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "HEAD", &id[..39], &id.to_uppercase(), "-h"] {
            assert!(CommitId::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// `git check-ref-format`'s rules for one component (tested against the
    /// real git in the repository tests).
    fn valid_component(c: &str) -> bool {
        !c.is_empty()
            && !c.starts_with('.')
            && !c.ends_with('.')
            && !c.ends_with(".lock")
            && !c.contains("..")
            && !c.contains("@{")
            && c != "@"
            && !c
                .chars()
                .any(|ch| ch.is_ascii_control() || " ~^:?*[\\/".contains(ch) || ch == '\u{7f}')
    }
}
