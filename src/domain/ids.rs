//! Validation of names that become parts of Redis keys.

use thiserror::Error;

/// Longest id, name, goal id or role accepted.
pub const MAX_ID_LEN: usize = 64;

/// A name that cannot be used as a part of a Redis key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{kind} {value:?} is not allowed: use 1 to {MAX_ID_LEN} characters from A-Z a-z 0-9 . _ - ({reason})"
)]
pub struct InvalidId {
    /// What the name names ("task id", "goal id", "agent name", "role").
    pub kind: &'static str,
    /// The rejected value, truncated to keep messages short.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Checks that `value` matches `[A-Za-z0-9._-]{1,64}`; `kind` names it in the error.
pub fn check_id(kind: &'static str, value: &str) -> Result<(), InvalidId> {
    let reject = |reason| InvalidId {
        kind,
        value: value.chars().take(80).collect(),
        reason,
    };
    if value.is_empty() {
        return Err(reject("it is empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(reject("it is too long"));
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
    fn rejects_characters_that_would_break_redis_keys() {
        for bad in ["", "a b", "a:b", "{g}", "a*", "é", &"a".repeat(65)] {
            let err = check_id("goal id", bad).unwrap_err();
            assert!(err.to_string().starts_with("goal id"), "{err}");
        }
    }
}
