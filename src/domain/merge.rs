//! Merging a task's work into its goal branch (docs/isolation.md): what a
//! conflict carries to the merge task porki adds, and the bounds of that loop.

use serde::{Deserialize, Serialize};

/// Merge tasks a task may get: `<id>.merge`, then one more; its next conflict
/// fails it.
pub const MAX_MERGES_PER_TASK: u32 = 2;

/// The largest number a merge task's id carries (`<id>.merge-99999999`): the
/// longest suffix porki appends, so the id stays within the id limit. A task
/// whose next merge task would need a larger one fails as if past its bound.
pub const MAX_MERGE_NUMBER: u32 = 99_999_999;

/// Longest diffstat kept on a task (bytes); a longer one is cut.
pub const DIFFSTAT_CAP: usize = 4096;

/// Most conflicting files a conflict keeps, and the longest name kept (bytes):
/// the names come from files an LLM wrote.
pub const MAX_CONFLICT_FILES: usize = 200;
const MAX_FILE_NAME: usize = 512;

/// Files named in a message (the rest are counted).
const FILES_NAMED: usize = 10;

/// A merge into the goal branch that conflicted, as its merge task gets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeConflict {
    /// The commit that did not merge (the attempt's work): the merge task
    /// merges it into the goal branch's tip.
    pub commit: String,
    /// The files both sides changed, as git names them.
    pub files: Vec<String>,
    /// The tasks whose work that commit carries (the conflicting task).
    pub ours: Vec<String>,
    /// The tasks already on the goal branch whose work changed those files.
    pub theirs: Vec<String>,
}

impl MergeConflict {
    /// The conflict as the store keeps it: at most [`MAX_CONFLICT_FILES`] files,
    /// each name at most 512 bytes, task ids that are not ids left out.
    pub fn capped(&self) -> Self {
        let ids = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter(|id| super::check_id("task id", id).is_ok())
                .take(MAX_CONFLICT_FILES)
                .cloned()
                .collect()
        };
        Self {
            commit: cut(&self.commit, 64),
            files: self
                .files
                .iter()
                .take(MAX_CONFLICT_FILES)
                .map(|f| cut(f, MAX_FILE_NAME))
                .collect(),
            ours: ids(&self.ours),
            theirs: ids(&self.theirs),
        }
    }

    /// The files, the first ten named and the rest counted: `a.txt, b.txt and 3 more`.
    pub fn files_text(&self) -> String {
        let mut text = self
            .files
            .iter()
            .take(FILES_NAMED)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.files.len() > FILES_NAMED {
            text.push_str(&format!(" and {} more", self.files.len() - FILES_NAMED));
        }
        if text.is_empty() {
            text.push_str("no file named");
        }
        text
    }

    /// What the merge task is asked to address (its notes): which work
    /// conflicted with which, in which files.
    pub fn describe(&self) -> String {
        let list = |ids: &[String], none: &str| match ids {
            [] => none.to_string(),
            ids => ids.join(", "),
        };
        format!(
            "merging the work of {} (commit {}) into the goal branch conflicted with {} in: {}",
            list(&self.ours, "the task"),
            short(&self.commit),
            list(&self.theirs, "work merged meanwhile"),
            self.files_text()
        )
    }

    /// Why the task whose work this is fails when this conflict is one more
    /// than its merge tasks allow (its `last_error`).
    pub fn failure(&self) -> String {
        format!(
            "its work conflicted with the goal branch again after {MAX_MERGES_PER_TASK} merge task(s), the most a task gets; conflicting files: {}",
            self.files_text()
        )
    }
}

/// A commit's short form, as `git log --oneline` shows it.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// A diffstat as a task keeps it: at most [`DIFFSTAT_CAP`] bytes.
pub fn capped_diffstat(diffstat: &str) -> String {
    if diffstat.len() <= DIFFSTAT_CAP {
        return diffstat.to_string();
    }
    let mut text = cut(diffstat, DIFFSTAT_CAP - 16);
    text.push_str("\n… (cut)");
    text
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{LONGEST_ADDED_SUFFIX, MAX_ID_LEN};
    use crate::domain::{MAX_PLANNED_ID_LEN, check_id, merge_id};

    fn conflict(files: usize) -> MergeConflict {
        MergeConflict {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            files: (0..files).map(|i| format!("f{i}.txt")).collect(),
            ours: vec!["b".into()],
            theirs: vec!["a".into(), "c".into()],
        }
    }

    #[test]
    fn merge_ids_count_up_and_the_largest_number_fits_the_id_limit() {
        assert_eq!(merge_id("x", 1), "x.merge");
        assert_eq!(merge_id("x", 2), "x.merge-2");
        let base = "a".repeat(MAX_PLANNED_ID_LEN);
        let longest = merge_id(&base, MAX_MERGE_NUMBER);
        assert!(check_id("task id", &longest).is_ok(), "{longest}");
        assert_eq!(longest.len() - base.len(), LONGEST_ADDED_SUFFIX);
        let past = merge_id(&base, MAX_MERGE_NUMBER + 1);
        assert!(past.len() > MAX_ID_LEN, "{past}");
    }

    #[test]
    fn a_conflict_names_its_files_and_both_sides() {
        let text = conflict(2).describe();
        assert_eq!(
            text,
            "merging the work of b (commit 0123456) into the goal branch conflicted with a, c in: f0.txt, f1.txt"
        );
        let many = conflict(13);
        assert!(many.files_text().ends_with("f9.txt and 3 more"));
        let failure = many.failure();
        assert!(failure.contains("conflicting files: f0.txt"), "{failure}");
        assert!(failure.contains("after 2 merge task(s)"), "{failure}");
    }

    #[test]
    fn what_a_conflict_keeps_is_capped() {
        let mut big = conflict(MAX_CONFLICT_FILES + 5);
        big.files[0] = "é".repeat(400);
        big.theirs.push("not an id".into());
        let kept = big.capped();
        assert_eq!(kept.files.len(), MAX_CONFLICT_FILES);
        assert!(kept.files[0].len() <= 512 && kept.files[0].starts_with('é'));
        assert_eq!(kept.theirs, ["a", "c"]);
        let long = "x".repeat(DIFFSTAT_CAP * 2);
        let diffstat = capped_diffstat(&long);
        assert!(diffstat.len() <= DIFFSTAT_CAP && diffstat.ends_with("(cut)"));
        assert_eq!(capped_diffstat("a | 1 +"), "a | 1 +");
    }
}
