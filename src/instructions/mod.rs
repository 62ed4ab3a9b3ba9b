//! The instructions file (`INSTRUCTIONS.md`): which agents run, against which
//! goals, and the free text the planner reads. No I/O: callers read the file and
//! pass its text in.
//!
//! Two forms parse to the same [`Instructions`]:
//!
//! - markdown (the seed's form), see [`markdown`]: an `## Agents` heading, one
//!   `### name` heading per agent and `- Key: value` bullets under it, and
//!   optionally a `## Goals` heading with one `### goal-id` heading per goal;
//! - YAML (the Python original's form), see [`yaml`]: the whole file, or a fenced
//!   ```` ```yaml ```` block inside markdown, with `agents:`, optionally `goals:`
//!   and `instruction_schema_version: "2"`.
//!
//! An agent's `Kind` (builder, reviewer, manager) is optional: without it the
//! agent's role words decide ([`AgentSpec::kind`]). A goal's `Review` and
//! `Approve` policies ([`goals`]) are optional too ([`Instructions::policy`]).
//!
//! Every problem found is reported at once, each as a [`Diagnostic`] naming the
//! file, the line and the field.
//!
//! An agent's own instruction file may hold a task list ([`tasks`]); the
//! agents' task lists make a goal's plan ([`plan`]), which loading a project
//! checks and the offline provider runs.

mod fields;
pub mod goals;
pub mod markdown;
pub mod plan;
pub mod tasks;
pub mod template;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use self::fields::Acc;
use crate::domain::{AgentKind, GoalPolicy, Isolation};
pub use plan::{AgentBrief, task_list_plan};
pub use tasks::{TaskItem, task_list};
pub use template::{AgentFileName, agent_template};

/// The declarations read from an instructions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instructions {
    /// The declared agents, in file order.
    pub agents: Vec<AgentSpec>,
    /// The team policies of the goals listed (`## Goals` / `goals:`); see
    /// [`Instructions::policy`] for any goal.
    pub goals: BTreeMap<String, GoalPolicy>,
    /// The goals whose `Isolation` is given; the others follow `--isolation`.
    pub isolation: BTreeMap<String, Isolation>,
    /// Text outside the agent list (goals, policies, docs references), for the
    /// planner prompt. The `## Goals` section stays in it: the planner sees the policies.
    pub context: String,
    /// Problems that do not stop the file from being used (unknown keys and the like).
    pub warnings: Vec<Diagnostic>,
}

impl Instructions {
    /// The team policy of `goal`: as listed, or the default (review all, approve marked).
    pub fn policy(&self, goal: &str) -> GoalPolicy {
        self.goals.get(goal).copied().unwrap_or_default()
    }
}

/// One declared agent. Paths are exactly as written; see [`AgentSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Unique agent name, a valid key part.
    pub name: String,
    /// The goal id the agent works on.
    pub goal: String,
    /// Only tasks of this role (or of no role) are claimed by the agent.
    pub role: Option<String>,
    /// The agent's kind as written (`Kind:`); see [`AgentSpec::kind`] for the one it gets.
    pub kind: Option<AgentKind>,
    /// The agent's heartbeat (control) file, as written.
    pub heartbeat: Option<PathBuf>,
    /// The agent's own instruction file, as written.
    pub instructions: Option<PathBuf>,
    /// The agent's log level, as written (e.g. `INFO`).
    pub log_level: Option<String>,
    /// Fallback poll interval; agents wake on store events, this is the safety net.
    pub cadence: Option<Duration>,
    /// 1-based line where the agent is declared.
    pub line: usize,
}

/// An agent's file paths joined onto the instructions file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPaths {
    /// The heartbeat file, if declared.
    pub heartbeat: Option<PathBuf>,
    /// The agent's instruction file, if declared.
    pub instructions: Option<PathBuf>,
}

impl AgentSpec {
    /// The agent's kind: the one written, else the one its role's words name
    /// ([`AgentKind::from_role`]).
    pub fn kind(&self) -> AgentKind {
        self.kind
            .unwrap_or_else(|| AgentKind::from_role(self.role.as_deref()))
    }

    /// Joins the declared paths onto `base_dir` (the instructions file's folder).
    ///
    /// Pure path arithmetic, no file system access: absolute paths stay as they
    /// are and `.` components are dropped; `..` is kept because resolving it
    /// lexically is wrong across symlinks.
    pub fn resolve(&self, base_dir: &Path) -> ResolvedPaths {
        let join = |p: &PathBuf| -> PathBuf { base_dir.join(p).components().collect() };
        ResolvedPaths {
            heartbeat: self.heartbeat.as_ref().map(join),
            instructions: self.instructions.as_ref().map(join),
        }
    }
}

/// One problem found in an instructions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line of the problem.
    pub line: usize,
    /// The field concerned (`goal`, `cadence`, `name`…), if any.
    pub field: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    fn new(file: &Path, line: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: line.max(1),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why an instructions file cannot be used: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct InstructionsError {
    /// The problems, sorted by line.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for InstructionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// How to declare an agent, appended to "no agents" errors.
const HOW_TO_DECLARE: &str = "declare agents under an `## Agents` heading, one `### agent_name` \
     heading each with a `- Goal: goal-id` bullet (or a ```yaml block with `agents:`)";

/// Parses an instructions file in either form; `file` only names it in messages.
///
/// The YAML form is used when the whole text is YAML with an `agents` or
/// `instruction_schema_version` key, or when the markdown holds a fenced `yaml`
/// block with one; otherwise the markdown form.
pub fn parse(file: &Path, text: &str) -> Result<Instructions, InstructionsError> {
    let fail = |line, message: String| {
        Err(InstructionsError {
            diagnostics: vec![Diagnostic::new(file, line, None, message)],
        })
    };
    if let Some(pos) = text.find('\0') {
        let line = text[..pos].matches('\n').count() + 1;
        return fail(
            line,
            "the file contains NUL bytes, so it is binary, not markdown or YAML: \
             check the --instructions path"
                .to_owned(),
        );
    }
    // Editors on Windows may write a byte order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return fail(1, format!("the file is empty: {HOW_TO_DECLARE}"));
    }
    let mut acc = Acc::new(file);
    let context = if yaml::looks_like_yaml(text) {
        yaml::parse_document(text, 0, &mut acc).unwrap_or_default()
    } else {
        markdown::parse_into(text, &mut acc)
    };
    acc.finish(context)
}

/// A short human summary of `instructions`, for `porki instructions validate`:
/// each agent with its goal, role and kind, then each goal with its policy.
pub fn summary(instructions: &Instructions) -> String {
    use std::fmt::Write as _;
    let mut goals: Vec<&str> = Vec::new();
    for a in &instructions.agents {
        if !goals.contains(&a.goal.as_str()) {
            goals.push(&a.goal);
        }
    }
    let worked_on = goals.len();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut out = format!(
        "{}, {}\n",
        plural(instructions.agents.len(), "agent"),
        plural(worked_on, "goal")
    );
    for a in &instructions.agents {
        let _ = write!(out, "  {}  goal {}", a.name, a.goal);
        if let Some(role) = &a.role {
            let _ = write!(out, "  role {role}");
        }
        let _ = write!(out, "  kind {}", a.kind());
        match (a.kind, &a.role) {
            (Some(_), _) => {}
            (None, Some(_)) => out.push_str(" (from role)"),
            (None, None) => out.push_str(" (default)"),
        }
        if let Some(c) = a.cadence {
            let _ = write!(out, "  cadence {}", format_duration(c));
        }
        if let Some(hb) = &a.heartbeat {
            let _ = write!(out, "  heartbeat {}", hb.display());
        }
        out.push('\n');
    }
    // Then the goals listed under `## Goals` that no agent works on.
    let unused: Vec<&str> = (instructions.goals.keys())
        .map(String::as_str)
        .filter(|g| !goals.contains(g))
        .collect();
    goals.extend(unused);
    out.push_str("goals:\n");
    for (i, goal) in goals.iter().enumerate() {
        let policy = instructions.policy(goal);
        let _ = write!(
            out,
            "  {goal}  review {}  approve {}",
            policy.review.as_str(),
            policy.approval.as_str()
        );
        if i >= worked_on {
            out.push_str("  (no agent works on it)");
        } else if !instructions.goals.contains_key(*goal) {
            out.push_str("  (defaults: not under Goals)");
        }
        out.push('\n');
    }
    if !instructions.warnings.is_empty() {
        let _ = writeln!(out, "{}:", plural(instructions.warnings.len(), "warning"));
        for w in &instructions.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parses a cadence: `500ms`, `30s`, `5m`, `1h`, or a plain number of seconds.
///
/// The message of the error says what is accepted.
pub fn parse_cadence(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let usage = "use a number with an optional unit: 500ms, 30s, 5m, 1h (no unit means seconds)";
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = (&v[..split], v[split..].trim_start());
    let well_formed = !number.is_empty()
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let scale = match unit.to_ascii_lowercase().as_str() {
        "ms" => Some(0.001),
        "" | "s" => Some(1.0),
        "m" => Some(60.0),
        "h" => Some(3600.0),
        _ => None,
    };
    let short: String = v.chars().take(40).collect();
    let (Some(scale), true) = (scale, well_formed) else {
        return Err(format!("{short:?} is not a duration: {usage}"));
    };
    // The number is only digits and at most one dot, so this parse cannot yield NaN.
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{short:?} is not a duration: {usage}"))?;
    let d = Duration::try_from_secs_f64(n * scale)
        .map_err(|_| format!("{short:?} is too long a duration: {usage}"))?;
    if d.is_zero() {
        return Err(format!(
            "{short:?} is zero: the poll interval must be more than 0 ({usage})"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
