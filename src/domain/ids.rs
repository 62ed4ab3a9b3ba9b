//! Validation of names that become parts of Redis keys.

use thiserror::Error;

/// Longest id, name, goal id or role accepted.
pub const MAX_ID_LEN: usize = 64;

/// Longest suffix porki appends to a planned task's id for a task it adds:
/// `.fix-` and the largest fix number, or `.merge-` and the largest merge
/// number (`.review`, `.recover`, `.escalate` and `.merge` are shorter).
pub const LONGEST_ADDED_SUFFIX: usize = ".fix-4294967295".len();

/// Longest id of a planned task: the ids porki adds (`<id>.review`,
/// `<id>.fix-<n>`…) then stay within [`MAX_ID_LEN`], so every command accepts them.
pub const MAX_PLANNED_ID_LEN: usize = MAX_ID_LEN - LONGEST_ADDED_SUFFIX;

/// A name that cannot be used as a part of a Redis key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{kind} {value:?} is not allowed: use 1 to {max} characters from A-Z a-z 0-9 . _ - ({reason})"
)]
pub struct InvalidId {
    /// What the name names ("task id", "goal id", "agent name", "role").
    pub kind: &'static str,
    /// The rejected value, truncated to keep messages short.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
    /// The longest length allowed.
    pub max: usize,
}

/// Checks that `value` matches `[A-Za-z0-9._-]{1,64}`; `kind` names it in the error.
pub fn check_id(kind: &'static str, value: &str) -> Result<(), InvalidId> {
    check_within(kind, value, MAX_ID_LEN, "it is too long")
}

/// Checks the id of a planned task: as [`check_id`], and at most
/// [`MAX_PLANNED_ID_LEN`] characters.
pub fn check_planned_id(value: &str) -> Result<(), InvalidId> {
    check_within(
        "task id",
        value,
        MAX_PLANNED_ID_LEN,
        "it is too long for a planned task: porki appends up to 15 characters (.fix-N, .review, .recover, .escalate, .merge-N) to it for the tasks it adds",
    )
}

fn check_within(
    kind: &'static str,
    value: &str,
    max: usize,
    too_long: &'static str,
) -> Result<(), InvalidId> {
    let reject = |reason| InvalidId {
        kind,
        value: value.chars().take(80).collect(),
        reason,
        max,
    };
    if value.is_empty() {
        return Err(reject("it is empty"));
    }
    if value.len() > max {
        return Err(reject(too_long));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(reject("it has a character outside the allowed set"));
    }
    // Ids name folders (a goal's workspace, a task's report): never a path step.
    if value == "." || value == ".." {
        return Err(reject("`.` and `..` are path steps"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(check_id("task id", "task-001_a.b").is_ok());
        assert!(check_id("task id", &"a".repeat(64)).is_ok());
    }

    #[test]
    fn a_planned_id_leaves_room_for_the_longest_suffix_porki_adds() {
        assert_eq!(MAX_PLANNED_ID_LEN, 49);
        assert!(check_planned_id(&"a".repeat(49)).is_ok());
        let err = check_planned_id(&"a".repeat(50)).unwrap_err().to_string();
        assert!(err.contains("use 1 to 49 characters"), "{err}");
        assert!(err.contains("porki appends"), "{err}");
        assert!(check_planned_id("a b").is_err());
        let err = check_id("task id", &"a".repeat(65))
            .unwrap_err()
            .to_string();
        assert!(err.contains("use 1 to 64 characters"), "{err}");
    }

    #[test]
    fn rejects_characters_that_would_break_redis_keys() {
        for bad in ["", "a b", "a:b", "{g}", "a*", "é", &"a".repeat(65)] {
            let err = check_id("goal id", bad).unwrap_err();
            assert!(err.to_string().starts_with("goal id"), "{err}");
        }
    }
}
