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

/// What a task is for: planned work, or one of the tasks porki adds to a running
/// plan (a review after a task, a fix a review asked for, a recovery of a failed
/// task, an escalation of a review that could not settle, a merge of work whose
/// merge into the goal branch conflicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Planned work (the default).
    #[default]
    Work,
    /// Reviews the task it is `of`: approves it or asks for changes.
    Review,
    /// Makes the changes a review (or a person rejecting it) asked for.
    Fix,
    /// Does again, differently, the work of a task that failed.
    Recover,
    /// A manager settles a review that did not pass within its cycles.
    Escalate,
    /// Resolves the conflicts of merging the work of the task it is `of` into
    /// the goal branch; when it is DONE, so is that task.
    Merge,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [TaskKind; 6] = [
        TaskKind::Work,
        TaskKind::Review,
        TaskKind::Fix,
        TaskKind::Recover,
        TaskKind::Escalate,
        TaskKind::Merge,
    ];

    /// The name in the store and in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Work => "work",
            TaskKind::Review => "review",
            TaskKind::Fix => "fix",
            TaskKind::Recover => "recover",
            TaskKind::Escalate => "escalate",
            TaskKind::Merge => "merge",
        }
    }

    /// Reads a kind name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Planned work, the default.
    pub fn is_work(&self) -> bool {
        *self == TaskKind::Work
    }

    /// A review or an escalation: its answer carries a verdict.
    pub fn decides(self) -> bool {
        matches!(self, TaskKind::Review | TaskKind::Escalate)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the review task of `task`.
pub fn review_id(task: &str) -> String {
    format!("{task}.review")
}

/// The id of the `n`th fix of `task`.
pub fn fix_id(task: &str, n: u32) -> String {
    format!("{task}.fix-{n}")
}

/// The id of the escalation of `task`'s review.
pub fn escalation_id(task: &str) -> String {
    format!("{task}.escalate")
}

/// The id of the recovery of `task`.
pub fn recovery_id(task: &str) -> String {
    format!("{task}.recover")
}

/// The id of the `n`th merge task named after planned task `task`: `<task>.merge`,
/// then `<task>.merge-2`, `<task>.merge-3`…
pub fn merge_id(task: &str, n: u32) -> String {
    if n <= 1 {
        format!("{task}.merge")
    } else {
        format!("{task}.merge-{n}")
    }
}

/// The suffix of `id` that porki keeps for the tasks it adds, if it has one:
/// a plan may not use such ids, so that no added id ever nests suffixes.
pub fn reserved_suffix(id: &str) -> Option<&str> {
    let (_, last) = id.rsplit_once('.')?;
    let numbered = |prefix: &str| {
        last.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    (matches!(last, "review" | "escalate" | "recover" | "merge")
        || numbered("fix-")
        || numbered("merge-"))
    .then_some(last)
}

/// The bounds of a goal's review loops and who takes escalations, as agents
/// pass them to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamLimits {
    /// Reviews that may ask for changes before a further rejection escalates.
    pub max_review_cycles: u32,
    /// The role a manager of the goal claims, when the goal has a manager.
    pub manager_role: Option<String>,
}

impl Default for TeamLimits {
    /// Two review cycles, no manager.
    fn default() -> Self {
        Self {
            max_review_cycles: DEFAULT_MAX_REVIEW_CYCLES,
            manager_role: None,
        }
    }
}

/// Review cycles before escalation, unless `--max-review-cycles` says otherwise.
pub const DEFAULT_MAX_REVIEW_CYCLES: u32 = 2;

/// The role an agent claims with: its declared role, or, for a reviewer or a
/// manager without one, its kind's name (the role porki gives the tasks it adds
/// for them). A builder without a role claims tasks any agent may take.
pub fn claim_role(kind: AgentKind, role: Option<&str>) -> Option<String> {
    match (role, kind) {
        (Some(role), _) => Some(role.to_string()),
        (None, AgentKind::Builder) => None,
        (None, kind) => Some(kind.as_str().to_string()),
    }
}

/// Whether an agent of `kind` and `role` claims READY tasks of `ready_role`
/// (`""`: tasks of no role, which only builders take).
pub fn takes(kind: AgentKind, role: Option<&str>, ready_role: &str) -> bool {
    if ready_role.is_empty() {
        kind == AgentKind::Builder
    } else {
        claim_role(kind, role).as_deref() == Some(ready_role)
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
        for kind in TaskKind::ALL {
            assert_eq!(TaskKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TaskKind::parse("Work"), None);
    }

    #[test]
    fn added_ids_end_in_a_reserved_suffix_and_planned_ones_may_not() {
        assert_eq!(reserved_suffix(&review_id("a")), Some("review"));
        assert_eq!(reserved_suffix(&fix_id("a", 12)), Some("fix-12"));
        assert_eq!(reserved_suffix(&escalation_id("a.b")), Some("escalate"));
        assert_eq!(reserved_suffix(&recovery_id("a")), Some("recover"));
        assert_eq!(reserved_suffix(&merge_id("a", 1)), Some("merge"));
        assert_eq!(reserved_suffix(&merge_id("a.b", 2)), Some("merge-2"));
        for planned in [
            "review",
            "a.fix-",
            "a.fix-x",
            "a.reviewed",
            "a_review",
            "fix-1",
            "merge",
            "a.merge-",
            "a.merged",
            "a.merge-two",
        ] {
            assert_eq!(reserved_suffix(planned), None, "{planned}");
        }
    }

    #[test]
    fn every_id_porki_adds_to_the_longest_planned_id_is_a_valid_id() {
        let base = "a".repeat(crate::domain::MAX_PLANNED_ID_LEN);
        let added = [
            review_id(&base),
            escalation_id(&base),
            recovery_id(&base),
            fix_id(&base, u32::MAX),
            merge_id(&base, 1),
            merge_id(&base, crate::domain::merge::MAX_MERGE_NUMBER),
        ];
        for id in &added {
            assert!(crate::domain::check_id("task id", id).is_ok(), "{id}");
        }
        assert_eq!(added[3].len(), crate::domain::ids::MAX_ID_LEN);
    }

    #[test]
    fn reviewers_and_managers_without_a_role_claim_their_kind() {
        assert_eq!(claim_role(AgentKind::Builder, None), None);
        assert_eq!(
            claim_role(AgentKind::Reviewer, None).as_deref(),
            Some("reviewer")
        );
        assert_eq!(
            claim_role(AgentKind::Manager, None).as_deref(),
            Some("manager")
        );
        assert_eq!(
            claim_role(AgentKind::Reviewer, Some("qa")).as_deref(),
            Some("qa")
        );
    }
}
