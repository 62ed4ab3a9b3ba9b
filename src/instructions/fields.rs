//! The fields of an agent declaration, and the accumulator both forms parse
//! into, so that markdown and YAML declarations are checked alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::goals::DeclaredGoal;
use super::{
    AgentSpec, Diagnostic, HOW_TO_DECLARE, Instructions, InstructionsError, parse_cadence,
};
use crate::domain::{AgentKind, check_id};

/// Normalizes a key: case-insensitive, `_` and spaces same as `-`.
pub(super) fn normalize_key(key: &str) -> String {
    key.trim()
        .to_ascii_lowercase()
        .split(|c: char| c == '-' || c == '_' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A field of an agent declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Name,
    Goal,
    Role,
    Kind,
    Heartbeat,
    Instructions,
    LogLevel,
    Cadence,
}

impl Field {
    pub(super) fn from_key(key: &str) -> Option<Field> {
        Some(match normalize_key(key).as_str() {
            "name" => Field::Name,
            "goal" => Field::Goal,
            "role" => Field::Role,
            "kind" => Field::Kind,
            "heartbeat" => Field::Heartbeat,
            "instructions" => Field::Instructions,
            "log-level" => Field::LogLevel,
            "cadence" => Field::Cadence,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Goal => "goal",
            Field::Role => "role",
            Field::Kind => "kind",
            Field::Heartbeat => "heartbeat",
            Field::Instructions => "instructions",
            Field::LogLevel => "log-level",
            Field::Cadence => "cadence",
        }
    }
}

const KNOWN_KEYS: &str = "goal, role, kind, heartbeat, instructions, log-level, cadence";

/// The message for a `Kind:` value that names no kind.
fn bad_kind(value: &str) -> String {
    let shown: String = value.chars().take(40).collect();
    let kinds: Vec<&str> = AgentKind::ALL.iter().map(|k| k.as_str()).collect();
    format!(
        "{shown:?} is not an agent kind: write one of {} (any case), or leave `Kind` out \
         to take the kind from the role",
        kinds.join(", ")
    )
}

/// An agent being assembled from fields, shared by both forms so they check alike.
#[derive(Debug, Default)]
pub(super) struct Draft {
    name: Option<(String, usize)>,
    goal: Option<String>,
    role: Option<String>,
    kind: Option<AgentKind>,
    heartbeat: Option<PathBuf>,
    instructions: Option<PathBuf>,
    log_level: Option<String>,
    cadence: Option<Duration>,
    line: usize,
    /// Fields already set, to report repeats.
    pub(super) seen: Vec<Field>,
}

impl Draft {
    /// An empty draft for the agent declared on `line`.
    pub(super) fn at(line: usize) -> Self {
        Self {
            line,
            ..Self::default()
        }
    }
}

/// Collects agents, errors and warnings while a form is parsed.
pub(super) struct Acc<'a> {
    file: &'a Path,
    pub(super) agents: Vec<AgentSpec>,
    /// Goal policies, in file order (see [`super::goals`]).
    pub(super) goals: Vec<DeclaredGoal>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Line of an agents section or block that was found, for the "no agents" message.
    pub(super) section_line: Option<usize>,
}

impl<'a> Acc<'a> {
    pub(super) fn new(file: &'a Path) -> Self {
        Self {
            file,
            agents: Vec::new(),
            goals: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            section_line: None,
        }
    }

    pub(super) fn error(&mut self, line: usize, field: Option<&str>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::new(self.file, line, field, message));
    }

    pub(super) fn warn(&mut self, line: usize, field: Option<&str>, message: impl Into<String>) {
        self.warnings
            .push(Diagnostic::new(self.file, line, field, message));
    }

    /// Sets one field of `draft` from its text value, checking it.
    pub(super) fn set(&mut self, draft: &mut Draft, key: &str, value: &str, line: usize) {
        let Some(field) = Field::from_key(key) else {
            let key: String = key.chars().take(40).collect();
            self.warn(
                line,
                Some(key.trim()),
                format!("unknown key, ignored (known keys: {KNOWN_KEYS})"),
            );
            return;
        };
        let fname = field.name();
        if draft.seen.contains(&field) {
            self.error(
                line,
                Some(fname),
                "given twice for this agent: keep one".to_owned(),
            );
            return;
        }
        draft.seen.push(field);
        let value = value.trim();
        if value.is_empty() {
            self.error(
                line,
                Some(fname),
                "has no value: write one after the colon or remove the line",
            );
            return;
        }
        let what = match field {
            Field::Name => "agent name",
            Field::Goal => "goal id",
            Field::Role => "role",
            _ => "",
        };
        match field {
            Field::Name | Field::Goal | Field::Role => {
                if let Err(e) = check_id(what, value) {
                    self.error(line, Some(fname), e.to_string());
                    return;
                }
                let v = value.to_owned();
                match field {
                    Field::Name => draft.name = Some((v, line)),
                    Field::Goal => draft.goal = Some(v),
                    _ => draft.role = Some(v),
                }
            }
            Field::Kind => match AgentKind::parse(value) {
                Some(k) => draft.kind = Some(k),
                None => self.error(line, Some(fname), bad_kind(value)),
            },
            Field::Heartbeat => draft.heartbeat = Some(PathBuf::from(value)),
            Field::Instructions => draft.instructions = Some(PathBuf::from(value)),
            Field::LogLevel => {
                const LEVELS: [&str; 7] = [
                    "trace", "debug", "info", "warn", "warning", "error", "critical",
                ];
                if !LEVELS.contains(&value.to_ascii_lowercase().as_str()) {
                    self.warn(
                        line,
                        Some(fname),
                        format!("{value:?} is not a known level (trace, debug, info, warn, error)"),
                    );
                }
                draft.log_level = Some(value.to_owned());
            }
            Field::Cadence => match parse_cadence(value) {
                Ok(d) => draft.cadence = Some(d),
                Err(m) => self.error(line, Some(fname), m),
            },
        }
    }

    /// Finishes an agent: checks required fields and name uniqueness.
    ///
    /// A draft with errors already reported is still checked for a missing goal,
    /// so one pass reports every problem.
    pub(super) fn push(&mut self, draft: Draft) {
        let Some((name, name_line)) = draft.name else {
            if !draft.seen.contains(&Field::Name) {
                self.error(
                    draft.line,
                    Some("name"),
                    "the agent has no name: give each agent a unique `name`",
                );
            }
            if draft.goal.is_none() && !draft.seen.contains(&Field::Goal) {
                self.error(
                    draft.line,
                    Some("goal"),
                    "missing: add the goal id this agent works on",
                );
            }
            return;
        };
        let duplicate = self.agents.iter().find(|a| a.name == name).map(|a| a.line);
        if let Some(first_line) = duplicate {
            self.error(
                name_line,
                Some("name"),
                format!(
                    "duplicate agent name {name:?} (first declared on line {first_line}): \
                     agent names must be unique"
                ),
            );
        }
        let Some(goal) = draft.goal else {
            if !draft.seen.contains(&Field::Goal) {
                self.error(
                    draft.line,
                    Some("goal"),
                    format!("agent {name:?} has no goal: add the goal id it works on"),
                );
            }
            return;
        };
        if duplicate.is_some() {
            return;
        }
        self.agents.push(AgentSpec {
            name,
            goal,
            role: draft.role,
            kind: draft.kind,
            heartbeat: draft.heartbeat,
            instructions: draft.instructions,
            log_level: draft.log_level,
            cadence: draft.cadence,
            line: draft.line,
        });
    }

    pub(super) fn finish(mut self, context: String) -> Result<Instructions, InstructionsError> {
        if self.agents.is_empty() && self.errors.is_empty() {
            let (line, what) = match self.section_line {
                Some(l) => (l, "the agents section declares no agent"),
                None => (1, "no agents declared"),
            };
            self.error(line, None, format!("{what}: {HOW_TO_DECLARE}"));
        }
        let (goals, isolation) = self.goal_policies();
        if !self.errors.is_empty() {
            // Stable: problems on one line keep the order they were found in.
            self.errors.sort_by_key(|d| d.line);
            return Err(InstructionsError {
                diagnostics: self.errors,
            });
        }
        self.warnings.sort_by_key(|d| d.line);
        Ok(Instructions {
            agents: self.agents,
            goals,
            isolation,
            context,
            warnings: self.warnings,
        })
    }
}
