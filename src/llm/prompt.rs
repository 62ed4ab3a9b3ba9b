//! Building prompts, and reading their parts back (the offline provider does).
//!
//! The format is defined once, here:
//!
//! ```text
//! porki-phase: execute                      <- first line, always
//! porki-task: goal-001/collect              <- second line of a prompt about one task
//! porki-goal: goal-001                      <- plan and select prompts: the goal instead
//! porki-artifacts: /path/to/artifacts       <- execute and summarize: where files go
//!
//! (instructions in prose)
//!
//! ## Agent research_agent (role: research, kind: builder)  <- a section heading
//! ----- begin agent research_agent -----    <- the block holding the section's text
//! …the agent's instruction file, verbatim…
//! ----- end agent research_agent -----
//! ```
//!
//! Every piece of user text (context, instruction files, task JSON, dependency
//! outputs) sits between a `----- begin LABEL -----` and an `----- end LABEL -----`
//! line, so headings inside that text cannot be mistaken for prompt sections.
//! The writers and the readers stay in this one file, past 500 lines with its
//! tests, so the format cannot drift between them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::{AgentKind, GoalPolicy, Node, TaskKind};

use super::Phase;

// Prompts show agents as the task-list planner reads them: one type for both.
pub use crate::instructions::AgentBrief;

/// Prefix of the first line of every prompt.
pub const PHASE_LINE: &str = "porki-phase: ";
/// Prefix of the second line of a prompt about one task: `<goal>/<task-id>`.
pub const TASK_LINE: &str = "porki-task: ";
/// Prefix of the goal line of plan and select prompts.
pub const GOAL_LINE: &str = "porki-goal: ";
/// Prefix of the line naming the directory a task writes its files into.
pub const ARTIFACTS_LINE: &str = "porki-artifacts: ";
/// Heading of an agent section: `## Agent <name> (role: <role>, kind: <kind>)`, or
/// `## Agent <name> (kind: <kind>)` for an agent without a role.
pub const AGENT_HEADING: &str = "## Agent ";
/// Label of the block holding an agent's instruction text: `agent <name>`.
pub const AGENT_BLOCK: &str = "agent";
/// Label of the block holding the goal context (plan prompt).
pub const CONTEXT_BLOCK: &str = "context";
/// Label of the block holding the task as JSON (execute and summarize prompts).
pub const TASK_BLOCK: &str = "task";
/// Label of the block holding the READY candidates as a JSON list (select prompt).
pub const CANDIDATES_BLOCK: &str = "candidates";
/// Label of the block holding one dependency's output: `dependency <task-id>`.
pub const DEPENDENCY_BLOCK: &str = "dependency";
/// Label of the block holding the agent's memory, one item per line.
pub const MEMORY_BLOCK: &str = "memory";
/// Label of the block holding the validator's message about the previous plan.
pub const PREVIOUS_ERROR_BLOCK: &str = "previous-error";
/// Label of the block holding a [`TeamContext`] as JSON (tasks porki added).
pub const TEAM_BLOCK: &str = "team";
/// Label of the block holding a reviewed commit's diff (worktree isolation).
pub const DIFF_BLOCK: &str = "diff";

const BLOCK_OPEN: &str = "----- begin ";
const BLOCK_CLOSE: &str = "----- end ";
const BLOCK_TAIL: &str = " -----";

/// What the plan prompt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanContext {
    /// The goal to plan.
    pub goal_id: String,
    /// Text of the instructions file outside the agent list (goals, policies, references).
    pub context: String,
    /// The agents working on the goal.
    pub agents: Vec<AgentBrief>,
    /// The goal's review and approval policies.
    pub policy: GoalPolicy,
    /// The validator's message about the previous answer, when asking again.
    pub previous_error: Option<String>,
}

/// What the execute and summarize prompts need.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskContext {
    /// The goal the task belongs to.
    pub goal_id: String,
    /// The agent doing it.
    pub agent: AgentBrief,
    /// The agent's recent actions, oldest first.
    pub memory: Vec<String>,
    /// The task.
    pub task: Node,
    /// Each dependency's id and its recorded progress text.
    pub dependency_outputs: BTreeMap<String, String>,
    /// Where the task writes its files.
    pub artifact_dir: PathBuf,
    /// For a task porki added (review, fix, recovery, escalation): what it is about.
    pub team: Option<TeamContext>,
    /// The task's rank (`TaskState::rank_ms`): its calls' place in the LLM gate's queue.
    pub rank_ms: Option<u64>,
}

/// What a task porki added to a running plan is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamContext {
    /// Review, fix, recovery or escalation.
    pub kind: TaskKind,
    /// A review: how many times it asked for changes before; a fix: its number;
    /// an escalation: how many times the review asked for changes.
    pub cycle: u32,
    /// What to address: the review's notes, a person's reason for rejecting, or
    /// the error the failed task ended with.
    pub notes: Option<String>,
    /// The task this one is about.
    pub subject: Option<Subject>,
    /// A review under worktree isolation: the reviewed work's diff (its stat,
    /// then the patch, capped), shown in a block of its own.
    #[serde(skip)]
    pub diff: Option<String>,
}

/// The task an added task is about, as its prompt shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Task id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Its recorded result (capped).
    pub result: String,
    /// The files it lists.
    pub files: Vec<String>,
}

impl TeamContext {
    /// What the agent is asked to do, in place of the execute prompt's usual words.
    fn what(&self) -> String {
        let subject = self
            .subject
            .as_ref()
            .map(|s| format!("task {} (\"{}\")", s.id, s.title))
            .unwrap_or_else(|| "the task it is about".to_string());
        match self.kind {
            TaskKind::Work => String::new(),
            TaskKind::Review => format!(
                "Review the work of {subject}: its result is below and its files are in the \
                 workspace. Do not change files. Answer with \"verdict\": \"approved\" when the work \
                 does what its task asks, or \"changes_requested\" with what to change in `notes`{again}.",
                again = if self.cycle > 0 {
                    " (changes were asked for before: check that the fixes answer them)"
                } else {
                    ""
                }
            ),
            TaskKind::Escalate => format!(
                "You settle a review that did not pass: the review of {subject} asked for changes \
                 {} time(s); the reviewer's last notes are below. Answer with \"verdict\": \
                 \"approved\" to accept the work as it is, or \"changes_requested\" to reject it for \
                 good (the goal then fails), with your reasons in `notes`. Do not change files.",
                self.cycle
            ),
            TaskKind::Fix => format!(
                "Changes were asked for to {subject}; what to change is below. Make those changes \
                 in the workspace (the task's files are there), write new files into the artifacts \
                 directory, and list every file you changed or wrote in `outputs`."
            ),
            TaskKind::Recover => format!(
                "{subject} failed; the error it ended with is below. Do its work again, avoiding \
                 what went wrong. Write every file you produce into the artifacts directory and \
                 list their paths in `outputs`."
            ),
            TaskKind::Merge => format!(
                "The work of {subject} did not merge into the goal branch: the conflict is below, \
                 and the files it names hold conflict markers in the workspace. Resolve every \
                 conflict so that the files keep what both sides meant, remove the markers, and \
                 list the files you changed in `outputs`."
            ),
        }
    }
}

/// What the select prompt needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectContext {
    /// The goal.
    pub goal_id: String,
    /// The agent choosing.
    pub agent: AgentBrief,
    /// The READY tasks it may claim, best first by priority.
    pub candidates: Vec<Node>,
}

/// The plan prompt: the goal, its context and agents, the answer shape.
pub fn plan_prompt(ctx: &PlanContext) -> String {
    let mut p = String::new();
    header(&mut p, Phase::Plan, &format!("{GOAL_LINE}{}", ctx.goal_id));
    let _ = write!(
        p,
        "\nYou are the planner of goal {goal}. Break the goal into tasks for the agents \
         below and say which task must finish before which.\n\n\
         ## Answer format\n\
         Answer with one JSON object and nothing else:\n\
         {{\"goal_id\": \"{goal}\", \"nodes\": [{{\"id\": \"collect\", \"title\": \"Collect sources\", \
         \"priority\": 0, \"estimate\": 1, \"expected_artifacts\": [\"sources.md\"], \"metadata\": {{}}, \"role\": \"research\"}}], \
         \"edges\": [{{\"source\": \"collect\", \"target\": \"write\"}}]}}\n\
         - ids: 1 to 64 characters from A-Z a-z 0-9 . _ -, unique.\n\
         - an edge means `target` starts only after `source` is done; no cycles.\n\
         - `role` (optional) restricts a task to the agents of that role; use the roles below.\n\
         - `estimate` (optional): the task's rough size beside a typical task of this goal (1): \
         0.5 for half as much work, 3 for three times; porki starts the tasks that hold the \
         most work up first.\n\
         - leave `priority` at 0 unless a task must run before others regardless of its size; \
         higher runs sooner among ready tasks.\n\
         - `review`: true marks a task for review (goals that review marked tasks only); \
         `approval`: true makes it wait for a person's approval after it ran; \
         `assignment`: \"soft\" lets another agent take it when no agent of its role is running.\n",
        goal = ctx.goal_id
    );
    let _ = write!(
        p,
        "\n## Team policies\n\
         - review: {review} (when the goal has a reviewer, porki adds a review task after each \
         reviewed task: do not plan reviews yourself, and do not end ids in .review, .fix-N, \
         .recover or .escalate)\n\
         - approval: {approval}\n",
        review = ctx.policy.review.as_str(),
        approval = ctx.policy.approval.as_str(),
    );
    if let Some(error) = &ctx.previous_error {
        p.push_str("\n## Your previous answer was rejected\nFix this and answer again:\n");
        block(&mut p, PREVIOUS_ERROR_BLOCK, error);
    }
    p.push_str("\n## Context\n");
    block(&mut p, CONTEXT_BLOCK, &ctx.context);
    for agent in &ctx.agents {
        p.push('\n');
        agent_section(&mut p, agent);
    }
    p
}

/// The execute prompt: do one task, write files into the artifact directory.
pub fn execute_prompt(ctx: &TaskContext) -> String {
    const WORK: &str = "Do the task below. Your working directory is the goal's workspace, \
         shared with the goal's other agents: name paths relative to it. Write every file you \
         produce into the artifacts directory (the `porki-artifacts` line above) and list the \
         paths of the files you wrote in `outputs`; put results that are not files in `notes`.";
    match &ctx.team {
        Some(team) if team.kind != TaskKind::Work => task_prompt(ctx, Phase::Execute, &team.what()),
        _ => task_prompt(ctx, Phase::Execute, WORK),
    }
}

/// The summarize prompt: report what a task and its dependencies produced.
pub fn summarize_prompt(ctx: &TaskContext) -> String {
    task_prompt(
        ctx,
        Phase::Summarize,
        "Summarize what the task below and its dependencies produced. Put the summary in \
         `notes` and the most important results in `outputs`; do not write files.",
    )
}

fn task_prompt(ctx: &TaskContext, phase: Phase, what: &str) -> String {
    let mut p = String::new();
    header(
        &mut p,
        phase,
        &format!("{TASK_LINE}{}/{}", ctx.goal_id, ctx.task.id),
    );
    let _ = writeln!(p, "{ARTIFACTS_LINE}{}", ctx.artifact_dir.display());
    let _ = write!(
        p,
        "\nYou are agent {name}, working on goal {goal}. {what}\n\n\
         ## Answer format\n\
         Answer with one JSON object and nothing else:\n\
         {{\"status\": \"done\", \"outputs\": [\"path or result\"], \"notes\": \"what you did\", \"follow_ups\": []{verdict}}}\n\
         Use \"status\": \"failed\" with the reason in `notes` when the task cannot be done.\n",
        name = ctx.agent.name,
        goal = ctx.goal_id,
        verdict = match &ctx.team {
            Some(team) if team.kind.decides() && phase == Phase::Execute => {
                ", \"verdict\": \"approved or changes_requested\""
            }
            _ => "",
        },
    );
    p.push_str("\n## Task\n");
    block(&mut p, TASK_BLOCK, &json_text(&ctx.task));
    if let Some(team) = &ctx.team {
        p.push_str("\n## What this task is about\n");
        block(&mut p, TEAM_BLOCK, &json_text(team));
        if let Some(diff) = &team.diff {
            p.push_str(
                "\n## The reviewed work's changes (git diff against the goal branch before it)\n",
            );
            block(&mut p, DIFF_BLOCK, diff);
        }
    }
    p.push_str("\n## Dependency outputs\n");
    if ctx.dependency_outputs.is_empty() {
        p.push_str("(none: this task depends on nothing)\n");
    }
    for (id, output) in &ctx.dependency_outputs {
        block(&mut p, &format!("{DEPENDENCY_BLOCK} {id}"), output);
    }
    p.push_str("\n## Agent memory\n");
    block(&mut p, MEMORY_BLOCK, &ctx.memory.join("\n"));
    p.push('\n');
    agent_section(&mut p, &ctx.agent);
    p
}

/// The select prompt: choose one of the READY tasks.
pub fn select_prompt(ctx: &SelectContext) -> String {
    let mut p = String::new();
    header(
        &mut p,
        Phase::Select,
        &format!("{GOAL_LINE}{}", ctx.goal_id),
    );
    let _ = write!(
        p,
        "\nYou are agent {name}, working on goal {goal}. Choose the task to do next from \
         the ready candidates below.\n\n\
         ## Answer format\n\
         Answer with one JSON object and nothing else:\n\
         {{\"selected_task_id\": \"<one of the candidate ids>\", \"justification\": \"why\", \"confidence\": 0.8}}\n",
        name = ctx.agent.name,
        goal = ctx.goal_id,
    );
    p.push_str("\n## Candidates\n");
    block(&mut p, CANDIDATES_BLOCK, &json_text(&ctx.candidates));
    p.push('\n');
    agent_section(&mut p, &ctx.agent);
    p
}

fn header(p: &mut String, phase: Phase, second: &str) {
    let _ = writeln!(p, "{PHASE_LINE}{phase}");
    let _ = writeln!(p, "{second}");
}

fn agent_section(p: &mut String, agent: &AgentBrief) {
    p.push_str(AGENT_HEADING);
    p.push_str(&agent.name);
    p.push_str(" (");
    if let Some(role) = &agent.role {
        let _ = write!(p, "role: {role}, ");
    }
    let _ = writeln!(p, "kind: {})", agent.kind);
    block(
        p,
        &format!("{AGENT_BLOCK} {}", agent.name),
        &agent.instructions,
    );
}

fn block(p: &mut String, label: &str, text: &str) {
    let _ = writeln!(p, "{BLOCK_OPEN}{label}{BLOCK_TAIL}");
    p.push_str(text);
    if !text.ends_with('\n') && !text.is_empty() {
        p.push('\n');
    }
    let _ = writeln!(p, "{BLOCK_CLOSE}{label}{BLOCK_TAIL}");
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    // Plain data (strings, numbers, maps): serializing cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The phase named on a prompt's first line.
pub fn prompt_phase(prompt: &str) -> Option<Phase> {
    prompt
        .lines()
        .next()?
        .strip_prefix(PHASE_LINE)?
        .parse()
        .ok()
}

/// The `(goal, task id)` on a prompt's second line, for prompts about one task.
pub fn prompt_task(prompt: &str) -> Option<(&str, &str)> {
    prompt
        .lines()
        .nth(1)?
        .strip_prefix(TASK_LINE)?
        .trim()
        .split_once('/')
}

/// The value of a `porki-…: ` header line (one of the `*_LINE` prefixes) before the first blank line.
pub fn prompt_header<'a>(prompt: &'a str, prefix: &str) -> Option<&'a str> {
    prompt
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// One `----- begin LABEL -----` … `----- end LABEL -----` block of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    /// The last `## ` heading before the block, without the `## `.
    pub heading: &'a str,
    /// The label after `begin`.
    pub label: &'a str,
    /// The text between the markers, with its final newline.
    pub text: String,
}

/// Every block of a prompt, in order. Text inside a block is never read as a heading.
pub fn prompt_blocks(prompt: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut heading = "";
    let mut open: Option<(&str, String)> = None;
    for line in prompt.lines() {
        if let Some((label, text)) = &mut open {
            if line
                .strip_prefix(BLOCK_CLOSE)
                .and_then(|l| l.strip_suffix(BLOCK_TAIL))
                == Some(*label)
            {
                let (label, text) = open.take().unwrap_or_default();
                blocks.push(Block {
                    heading,
                    label,
                    text,
                });
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim();
        } else if let Some(label) = line
            .strip_prefix(BLOCK_OPEN)
            .and_then(|l| l.strip_suffix(BLOCK_TAIL))
        {
            open = Some((label, String::new()));
        }
    }
    blocks
}

/// The agents of a plan or task prompt: name, role and kind from the heading
/// (a heading without a kind gets the one its role names), text from its block.
pub fn prompt_agents(prompt: &str) -> Vec<AgentBrief> {
    let heading_prefix = AGENT_HEADING.trim_start_matches("## ");
    prompt_blocks(prompt)
        .into_iter()
        .filter_map(|b| {
            let name = b.label.strip_prefix(AGENT_BLOCK)?.strip_prefix(' ')?;
            let rest = b.heading.strip_prefix(heading_prefix)?.strip_prefix(name)?;
            // `(role: r, kind: k)`; roles are key parts, so they hold no `,` or `)`.
            let details = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or("");
            let mut role = None;
            let mut kind = None;
            for part in details.split(',') {
                let Some((key, value)) = part.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match key.trim() {
                    "role" if !value.is_empty() => role = Some(value.to_string()),
                    "kind" => kind = AgentKind::parse(value),
                    _ => {}
                }
            }
            let kind = kind.unwrap_or_else(|| AgentKind::from_role(role.as_deref()));
            Some(AgentBrief {
                name: name.to_string(),
                role,
                kind,
                instructions: b.text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::plan::testing::brief as agent;

    fn task_ctx() -> TaskContext {
        TaskContext {
            goal_id: "goal-001".into(),
            agent: agent("writer", Some("writing"), "## Tasks\n- write\n"),
            memory: vec!["did a".into(), "did b".into()],
            task: Node::new("write", "Write the report"),
            dependency_outputs: BTreeMap::from([("collect".into(), "sources.md".into())]),
            artifact_dir: PathBuf::from("/tmp/art"),
            team: None,
            rank_ms: None,
        }
    }

    #[test]
    fn plan_prompt_starts_with_phase_and_goal_and_round_trips_agents() {
        let ctx = PlanContext {
            goal_id: "goal-001".into(),
            context: "# Goals\nShip it.\n## Agent fake (role: x)\n".into(),
            agents: vec![
                agent("research_agent", Some("research"), "## Tasks\n- collect\n"),
                agent("solo", None, ""),
            ],
            policy: GoalPolicy {
                review: crate::domain::ReviewPolicy::Marked,
                ..GoalPolicy::default()
            },
            previous_error: Some("the dependencies form a cycle".into()),
        };
        let p = plan_prompt(&ctx);
        let mut lines = p.lines();
        assert_eq!(lines.next(), Some("porki-phase: plan"));
        assert_eq!(lines.next(), Some("porki-goal: goal-001"));
        assert_eq!(prompt_phase(&p), Some(Phase::Plan));
        assert_eq!(prompt_header(&p, GOAL_LINE), Some("goal-001"));
        assert!(p.contains("the dependencies form a cycle"));
        assert!(p.contains("- review: marked ("), "{p}");
        assert!(p.contains("- approval: marked\n"), "{p}");
        assert!(p.contains("\"estimate\": 1") && p.contains("- `estimate` (optional)"));
        // The fake heading inside the context block is not an agent.
        assert_eq!(prompt_agents(&p), ctx.agents);
    }

    #[test]
    fn agent_headings_show_role_and_kind_and_read_back() {
        let mut manager = agent("lead", Some("writer"), "");
        manager.kind = AgentKind::Manager;
        let ctx = PlanContext {
            goal_id: "g".into(),
            context: String::new(),
            agents: vec![
                agent("reviewer", Some("qa"), "## Tasks\n- check\n"),
                agent("solo", None, ""),
                manager,
            ],
            policy: GoalPolicy::default(),
            previous_error: None,
        };
        let p = plan_prompt(&ctx);
        for heading in [
            "## Agent reviewer (role: qa, kind: reviewer)\n",
            "## Agent solo (kind: builder)\n",
            "## Agent lead (role: writer, kind: manager)\n",
        ] {
            assert!(p.contains(heading), "{heading:?} in {p}");
        }
        assert_eq!(prompt_agents(&p), ctx.agents);
        // A heading without a kind (an older prompt) gets the kind its role names.
        let old = "## Agent r (role: qa)\n----- begin agent r -----\n----- end agent r -----\n";
        assert_eq!(prompt_agents(old)[0].kind, AgentKind::Reviewer);
    }

    #[test]
    fn task_prompts_name_the_task_on_the_second_line() {
        let ctx = task_ctx();
        for (p, phase) in [
            (execute_prompt(&ctx), Phase::Execute),
            (summarize_prompt(&ctx), Phase::Summarize),
        ] {
            assert_eq!(prompt_phase(&p), Some(phase));
            assert_eq!(p.lines().nth(1), Some("porki-task: goal-001/write"));
            assert_eq!(prompt_task(&p), Some(("goal-001", "write")));
            assert_eq!(prompt_header(&p, ARTIFACTS_LINE), Some("/tmp/art"));
            let blocks = prompt_blocks(&p);
            let task = blocks.iter().find(|b| b.label == TASK_BLOCK).unwrap();
            let node: Node = serde_json::from_str(&task.text).unwrap();
            assert_eq!(node, ctx.task);
            let dep = blocks
                .iter()
                .find(|b| b.label == "dependency collect")
                .unwrap();
            assert_eq!(dep.text, "sources.md\n");
            assert_eq!(prompt_agents(&p), vec![ctx.agent.clone()]);
        }
    }

    #[test]
    fn select_prompt_lists_candidates_as_json() {
        let ctx = SelectContext {
            goal_id: "g".into(),
            agent: agent("a", None, ""),
            candidates: vec![Node::new("t1", "One"), Node::new("t2", "Two")],
        };
        let p = select_prompt(&ctx);
        assert_eq!(prompt_phase(&p), Some(Phase::Select));
        let blocks = prompt_blocks(&p);
        let list = blocks.iter().find(|b| b.label == CANDIDATES_BLOCK).unwrap();
        let nodes: Vec<Node> = serde_json::from_str(&list.text).unwrap();
        assert_eq!(nodes, ctx.candidates);
    }
}
