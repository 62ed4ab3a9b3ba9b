//! The per-goal team policies of an instructions file: which tasks of a goal
//! get a review, and which wait for a person's approval. Both forms fill the
//! same draft (`GoalDraft`), so they are checked alike.
//!
//! ```markdown
//! ## Goals
//! ### goal-001
//! - Review: marked
//! - Approve: none
//! ```
//!
//! ```yaml
//! goals:
//!   - id: goal-001
//!     review: marked
//!     approve: none
//! ```
//!
//! - `Review`: `all` (every task of a builder gets a review, the default),
//!   `none`, or `marked` (only tasks marked `(review)` in a task list, or
//!   `"review": true` in a plan).
//! - `Approve`: `marked` (only tasks marked `(approval)`, the default), `all`,
//!   or `none` (whatever the marks say).
//! - `Isolation`: `worktree` (each attempt in its own git worktree, merged into
//!   the goal branch) or `shared` (one folder); without it, `--isolation`
//!   decides.
//!
//! Values are read in any case. A goal not listed gets [`GoalPolicy::default`].
//! A listed goal that no agent works on is a warning, not an error: it may be a
//! goal whose agents are not declared yet, or a misspelt id.
//!
//! In markdown the section is also planner context: its text stays in
//! [`super::Instructions::context`], so a planner sees the policies and any
//! description written under a goal. Under a goal heading, bullets without a
//! `Key:` and paragraphs are description; an unknown one-word `Key:` is a
//! warning (it is most likely a misspelt policy). In YAML, `goals:` sits in the
//! same document as `agents:`.

use std::collections::BTreeMap;

use super::fields::{Acc, normalize_key};
use crate::domain::{ApprovalPolicy, GoalPolicy, Isolation, ReviewPolicy, check_id};

/// A field of a goal's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoalField {
    /// The goal id: the heading in markdown, `id:` in YAML.
    Id,
    Review,
    Approve,
    Isolation,
}

impl GoalField {
    pub(super) fn from_key(key: &str) -> Option<GoalField> {
        Some(match normalize_key(key).as_str() {
            "id" => GoalField::Id,
            "review" => GoalField::Review,
            "approve" => GoalField::Approve,
            "isolation" => GoalField::Isolation,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            GoalField::Id => "id",
            GoalField::Review => "review",
            GoalField::Approve => "approve",
            GoalField::Isolation => "isolation",
        }
    }
}

/// The policy keys, for messages.
pub(super) const GOAL_KEYS: &str = "review, approve, isolation";

/// A goal's policy being assembled from fields.
#[derive(Debug, Default)]
pub(super) struct GoalDraft {
    id: Option<String>,
    policy: GoalPolicy,
    isolation: Option<Isolation>,
    line: usize,
    /// Fields already given, to report repeats.
    pub(super) seen: Vec<GoalField>,
}

impl GoalDraft {
    /// An empty draft for the goal declared on `line`.
    pub(super) fn at(line: usize) -> Self {
        Self {
            line,
            ..Self::default()
        }
    }
}

/// A goal policy as declared, with its line for later messages.
#[derive(Debug)]
pub(super) struct DeclaredGoal {
    id: String,
    policy: GoalPolicy,
    isolation: Option<Isolation>,
    line: usize,
}

impl Acc<'_> {
    /// Sets one field of a goal's policy from its text value, checking it.
    pub(super) fn set_goal(&mut self, draft: &mut GoalDraft, key: &str, value: &str, line: usize) {
        let Some(field) = GoalField::from_key(key) else {
            self.unknown_goal_key(key, line);
            return;
        };
        let fname = field.name();
        if draft.seen.contains(&field) {
            self.error(line, Some(fname), "given twice for this goal: keep one");
            return;
        }
        draft.seen.push(field);
        let value = value.trim();
        let shown: String = value.chars().take(40).collect();
        match field {
            GoalField::Id => match check_id("goal id", value) {
                Ok(()) => draft.id = Some(value.to_owned()),
                Err(e) => self.error(line, Some(fname), e.to_string()),
            },
            GoalField::Review => match ReviewPolicy::parse(value) {
                Some(p) => draft.policy.review = p,
                None => self.error(
                    line,
                    Some(fname),
                    format!(
                        "{shown:?} is not a review policy: write all (every task is reviewed), \
                         none, or marked (only tasks marked `(review)`)"
                    ),
                ),
            },
            GoalField::Approve => match ApprovalPolicy::parse(value) {
                Some(p) => draft.policy.approval = p,
                None => self.error(
                    line,
                    Some(fname),
                    format!(
                        "{shown:?} is not an approval policy: write marked (only tasks marked \
                         `(approval)` wait for a person), all, or none"
                    ),
                ),
            },
            GoalField::Isolation => match Isolation::parse(value) {
                Some(i) => draft.isolation = Some(i),
                None => self.error(
                    line,
                    Some(fname),
                    format!(
                        "{shown:?} is not an isolation: write worktree (each attempt in its own \
                         git worktree) or shared (one folder for the goal)"
                    ),
                ),
            },
        }
    }

    /// Starts a goal from its markdown heading, whose text is the goal id.
    pub(super) fn goal_heading(&mut self, title: &str, line: usize) -> GoalDraft {
        let mut draft = GoalDraft::at(line);
        draft.seen.push(GoalField::Id);
        match check_id("goal id", title) {
            Ok(()) => draft.id = Some(title.to_owned()),
            Err(e) => self.error(
                line,
                Some("id"),
                format!(
                    "{e}; under `Goals` each heading is one goal's id: put a description \
                     below the heading, or a section of its own outside `Goals`"
                ),
            ),
        }
        draft
    }

    /// Warns about a key that is not a policy field.
    pub(super) fn unknown_goal_key(&mut self, key: &str, line: usize) {
        let key: String = key.trim().chars().take(40).collect();
        self.warn(
            line,
            Some(&key),
            format!("unknown key, ignored (known keys: {GOAL_KEYS})"),
        );
    }

    /// Finishes a goal's policy: checks that it has an id given once in the file.
    pub(super) fn push_goal(&mut self, draft: GoalDraft) {
        let Some(id) = draft.id else {
            if !draft.seen.contains(&GoalField::Id) {
                self.error(
                    draft.line,
                    Some("id"),
                    "the goal has no id: write `id: goal-id` (the id its agents' `goal` names)",
                );
            }
            return;
        };
        if let Some(first) = self.goals.iter().find(|g| g.id == id).map(|g| g.line) {
            self.error(
                draft.line,
                Some("id"),
                format!(
                    "the policy of goal {id:?} is given twice (first on line {first}): \
                     keep one"
                ),
            );
            return;
        }
        self.goals.push(DeclaredGoal {
            id,
            policy: draft.policy,
            isolation: draft.isolation,
            line: draft.line,
        });
    }

    /// The declared policies and isolations by goal id; warns about each goal no
    /// agent works on.
    pub(super) fn goal_policies(
        &mut self,
    ) -> (BTreeMap<String, GoalPolicy>, BTreeMap<String, Isolation>) {
        let goals = std::mem::take(&mut self.goals);
        for g in &goals {
            if !self.agents.iter().any(|a| a.goal == g.id) {
                self.warn(
                    g.line,
                    Some("id"),
                    format!(
                        "no agent works on goal {:?}, so its policy is unused: \
                         check the id against the agents' `goal`",
                        g.id
                    ),
                );
            }
        }
        let isolation = goals
            .iter()
            .filter_map(|g| Some((g.id.clone(), g.isolation?)))
            .collect();
        let policies = goals.into_iter().map(|g| (g.id, g.policy)).collect();
        (policies, isolation)
    }
}
