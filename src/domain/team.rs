//! A goal's team: what kind of agent each is, what kind of task each is, and
//! the per-goal policies for reviews and human approval.

use serde::{Deserialize, Serialize};

/// What an agent does in its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Does the planned work, and the fixes reviews ask for.
    #[default]
    Builder,
    /// Reviews builders' work: approves it or asks for changes.
    Reviewer,
    /// Decides what reviews cannot settle (escalations), and may recover failed work.
    Manager,
}

impl AgentKind {
    /// Every kind.
    pub const ALL: [AgentKind; 3] = [AgentKind::Builder, AgentKind::Reviewer, AgentKind::Manager];

    /// The name in instruction files and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Builder => "builder",
            AgentKind::Reviewer => "reviewer",
            AgentKind::Manager => "manager",
        }
    }

    /// Reads a kind name, any case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The kind an agent without an explicit `Kind:` gets from the words of its
    /// role (whole words, any case): qa, review(er), test(er), audit(or) →
    /// reviewer; lead, manager, owner, head, chief → manager; anything else (or
    /// no role) → builder.
    pub fn from_role(role: Option<&str>) -> Self {
        let Some(role) = role else {
            return AgentKind::Builder;
        };
        let words: Vec<String> = role
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        // Whole words only: `headline_writer` is no head, `testimonials` no tester.
        let has = |names: &[&str]| words.iter().any(|w| names.contains(&w.as_str()));
        if has(&[
            "qa",
            "review",
            "reviewer",
            "reviewers",
            "test",
            "tester",
            "testers",
            "testing",
            "audit",
            "auditor",
            "checker",
        ]) {
            AgentKind::Reviewer
        } else if has(&[
            "lead",
            "leader",
            "manager",
            "management",
            "owner",
            "head",
            "chief",
            "pm",
        ]) {
            AgentKind::Manager
        } else {
            AgentKind::Builder
        }
    }
}

impl std::fmt::Display for AgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which builder tasks of a goal get a review task, when the goal has a reviewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewPolicy {
    /// Every task (the default).
    #[default]
    All,
    /// None.
    None,
    /// Only tasks the plan or task list marks for review.
    Marked,
}

/// Which tasks of a goal wait for a person's approval after they ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalPolicy {
    /// Only tasks the plan or task list marks `(approval)` (the default).
    #[default]
    Marked,
    /// Every task.
    All,
    /// None, whatever the marks say.
    None,
}

macro_rules! named_policy {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The name in instruction files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a name, any case.
            pub fn parse(text: &str) -> Option<Self> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

named_policy!(ReviewPolicy { All => "all", None => "none", Marked => "marked" });
named_policy!(ApprovalPolicy { All => "all", None => "none", Marked => "marked" });

/// A goal's team policies, as declared in the instructions (`## Goals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GoalPolicy {
    /// Which tasks get reviews.
    pub review: ReviewPolicy,
    /// Which tasks wait for a person's approval.
    pub approval: ApprovalPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_role_words_unless_given() {
        for (role, kind) in [
            (Some("qa"), AgentKind::Reviewer),
            (Some("code-reviewer"), AgentKind::Reviewer),
            (Some("Tester"), AgentKind::Reviewer),
            (Some("tech_lead"), AgentKind::Manager),
            (Some("product owner"), AgentKind::Manager),
            (Some("manager"), AgentKind::Manager),
            (Some("writer"), AgentKind::Builder),
            (Some("research"), AgentKind::Builder),
            (Some("headline_writer"), AgentKind::Builder),
            (Some("testimonials"), AgentKind::Builder),
            (Some("head-of-qa"), AgentKind::Reviewer),
            (None, AgentKind::Builder),
        ] {
            assert_eq!(AgentKind::from_role(role), kind, "{role:?}");
        }
    }

    #[test]
    fn names_read_back_in_any_case() {
        for kind in AgentKind::ALL {
            assert_eq!(AgentKind::parse(&kind.as_str().to_uppercase()), Some(kind));
        }
        assert_eq!(AgentKind::parse("boss"), None);
        assert_eq!(ReviewPolicy::parse("Marked"), Some(ReviewPolicy::Marked));
        assert_eq!(ApprovalPolicy::parse(" all "), Some(ApprovalPolicy::All));
        assert_eq!(ApprovalPolicy::parse("some"), None);
    }
}
