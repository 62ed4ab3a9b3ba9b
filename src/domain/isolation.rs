//! Where a goal's tasks do their work: each attempt in its own git worktree,
//! merged into the goal branch in the order of the plan, or all in one shared
//! folder (docs/isolation.md).

/// How a goal's attempts are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum Isolation {
    /// Each attempt in its own git worktree; DONE means merged into the goal branch.
    Worktree,
    /// Every task of the goal in one folder, as it is.
    Shared,
}

impl Isolation {
    /// The name used on the command line and in the instructions.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Worktree => "worktree",
            Isolation::Shared => "shared",
        }
    }

    /// Reads a name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "worktree" => Some(Isolation::Worktree),
            "shared" => Some(Isolation::Shared),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_in_any_case() {
        for isolation in [Isolation::Worktree, Isolation::Shared] {
            assert_eq!(Isolation::parse(isolation.as_str()), Some(isolation));
            assert_eq!(
                Isolation::parse(&isolation.as_str().to_uppercase()),
                Some(isolation)
            );
        }
        assert_eq!(Isolation::parse("worktrees"), None);
    }
}
