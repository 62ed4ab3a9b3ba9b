//! The offline provider: deterministic answers, no network, no model.
//!
//! It reads porki's own prompts (see [`super::prompt`]) and answers them so a new
//! user sees the whole pipeline with nothing installed:
//!
//! - **plan**: the agents named in the prompt, with their instruction texts, are
//!   planned by [`task_list_plan`] (its module docs say how task lists become
//!   nodes and edges, and what a goal without tasks gets).
//! - **execute**: writes a markdown report to `<porki-artifacts>/<task-id>.md`
//!   (fixes and recoveries too). A review asks for changes the first time it
//!   reviews a task and approves after that; an escalation approves. So a demo
//!   shows one review asking for changes once, then passing.
//! - **summarize**: summarizes the dependency outputs, writes nothing.
//! - **select**: picks the first candidate.
//!
//! Token usage is an estimate (prompt and answer characters / 4).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::answer::PlanAnswer;
use super::prompt::{
    self, AgentBrief, Block, CANDIDATES_BLOCK, DEPENDENCY_BLOCK, GOAL_LINE, TASK_BLOCK, TEAM_BLOCK,
    TeamContext,
};
use super::{LlmError, LlmProvider, LlmRequest, LlmResponse, Phase, Usage};
use crate::domain::{Node, TaskKind, check_id};
use crate::instructions::task_list_plan;
use crate::instructions::tasks::slug;

const NAME: &str = "offline";

/// Deterministic provider for demos and tests; see the module docs for what it answers.
#[derive(Debug, Clone, Default)]
pub struct OfflineProvider {
    delay: Duration,
}

impl OfflineProvider {
    /// A provider that answers at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits `delay` before each answer, so demos show tasks in progress.
    pub fn with_delay(delay: Duration) -> Self {
        Self { delay }
    }

    async fn answer(&self, request: &LlmRequest) -> Result<String, LlmError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let prompt = &request.prompt;
        match request.phase {
            Phase::Plan => Ok(plan_answer(prompt)),
            Phase::Select => select_answer(prompt),
            Phase::Execute => execute_answer(request).await,
            Phase::Summarize => summarize_answer(prompt),
        }
    }
}

#[async_trait]
impl LlmProvider for OfflineProvider {
    fn name(&self) -> &str {
        NAME
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let text = tokio::time::timeout(request.timeout, self.answer(request))
            .await
            .map_err(|_| LlmError::Timeout {
                provider: NAME.to_string(),
                after: request.timeout,
            })??;
        let usage = Usage::estimate(&request.prompt, &text);
        Ok(LlmResponse { text, usage })
    }

    fn writes_files(&self) -> bool {
        true
    }

    fn is_local(&self) -> bool {
        true
    }
}

fn failed(message: impl Into<String>) -> LlmError {
    LlmError::Failed {
        provider: NAME.to_string(),
        message: message.into(),
    }
}

fn plan_answer(prompt: &str) -> String {
    let goal_id = prompt::prompt_header(prompt, GOAL_LINE).unwrap_or_default();
    let dag = task_list_plan(goal_id, &prompt::prompt_agents(prompt));
    let answer = PlanAnswer {
        goal_id: dag.goal_id,
        nodes: dag.nodes,
        edges: dag.edges,
    };
    serde_json::to_string_pretty(&answer).unwrap_or_default()
}

fn select_answer(prompt: &str) -> Result<String, LlmError> {
    let blocks = prompt::prompt_blocks(prompt);
    let candidates: Vec<Node> = blocks
        .iter()
        .find(|b| b.label == CANDIDATES_BLOCK)
        .and_then(|b| serde_json::from_str(&b.text).ok())
        .unwrap_or_default();
    let first = candidates
        .first()
        .ok_or_else(|| failed("the select prompt lists no candidates"))?;
    Ok(json!({
        "selected_task_id": first.id,
        "justification": "the offline provider picks the first candidate",
        "confidence": 1.0,
    })
    .to_string())
}

/// The parts of an execute or summarize prompt the offline provider uses.
struct TaskPrompt {
    goal: String,
    task: Node,
    agent: Option<AgentBrief>,
    dependencies: BTreeMap<String, String>,
    team: Option<TeamContext>,
}

fn read_task_prompt(prompt: &str) -> Result<TaskPrompt, LlmError> {
    let (goal, task_id) = prompt::prompt_task(prompt)
        .ok_or_else(|| failed("the prompt has no `porki-task: <goal>/<task>` second line"))?;
    let blocks = prompt::prompt_blocks(prompt);
    let task = blocks
        .iter()
        .find(|b| b.label == TASK_BLOCK)
        .and_then(|b| serde_json::from_str(&b.text).ok())
        .unwrap_or_else(|| Node::new(task_id, task_id));
    let dependencies = blocks
        .iter()
        .filter_map(|b: &Block<'_>| {
            let id = b.label.strip_prefix(DEPENDENCY_BLOCK)?.strip_prefix(' ')?;
            Some((id.to_string(), b.text.trim_end().to_string()))
        })
        .collect();
    Ok(TaskPrompt {
        goal: goal.to_string(),
        task,
        agent: prompt::prompt_agents(prompt).into_iter().next(),
        dependencies,
        team: blocks
            .iter()
            .find(|b| b.label == TEAM_BLOCK)
            .and_then(|b| serde_json::from_str(&b.text).ok()),
    })
}

/// A review's or escalation's answer: changes asked for on a task's first
/// review, approval after that and on escalations.
fn verdict_answer(team: &TeamContext) -> String {
    let subject = team.subject.as_ref().map_or("the task", |s| s.id.as_str());
    let (verdict, notes) = if team.kind == TaskKind::Review && team.cycle == 0 {
        (
            "changes_requested",
            format!("offline review of {subject}: add a line saying which inputs the report used"),
        )
    } else {
        (
            "approved",
            format!("offline review of {subject}: the changes asked for are in; approved"),
        )
    };
    json!({"status": "done", "verdict": verdict, "outputs": [], "notes": notes}).to_string()
}

async fn execute_answer(request: &LlmRequest) -> Result<String, LlmError> {
    let prompt = &request.prompt;
    let parts = read_task_prompt(prompt)?;
    if let Some(team) = parts.team.as_ref().filter(|t| t.kind.decides()) {
        return Ok(verdict_answer(team));
    }
    let named = prompt::prompt_header(prompt, prompt::ARTIFACTS_LINE)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| failed("the execute prompt has no `porki-artifacts: <dir>` line"))?;
    // A relative artifacts folder is named from the workspace, as a CLI agent would.
    let dir = match &request.workspace {
        Some(ws) => ws.dir.join(&named),
        None => named.clone(),
    };
    // The id is validated when the plan is, but the file name must never leave `dir`.
    let file = if check_id("task id", &parts.task.id).is_ok() && parts.task.id != ".." {
        format!("{}.md", parts.task.id)
    } else {
        format!("{}.md", slug(&parts.task.id))
    };
    let path = dir.join(file);
    let write_error = |e: std::io::Error| {
        failed(format!(
            "could not write the report {}: {e} (check that the artifacts directory is writable)",
            path.display()
        ))
    };
    tokio::fs::create_dir_all(&dir).await.map_err(write_error)?;
    tokio::fs::write(&path, report(&parts))
        .await
        .map_err(write_error)?;
    let path_text = named
        .join(path.file_name().expect("a file name"))
        .display()
        .to_string();
    Ok(json!({
        "status": "done",
        "outputs": [path_text],
        "notes": format!("offline report for task {} written to {path_text}", parts.task.id),
        "follow_ups": [],
    })
    .to_string())
}

fn report(parts: &TaskPrompt) -> String {
    let task = &parts.task;
    let mut text = format!(
        "# {}\n\n- goal: {}\n- task: {}\n- priority: {}\n",
        if task.title.is_empty() {
            &task.id
        } else {
            &task.title
        },
        parts.goal,
        task.id,
        task.priority
    );
    if let Some(agent) = &parts.agent {
        text.push_str(&format!("- agent: {}", agent.name));
        if let Some(role) = &agent.role {
            text.push_str(&format!(" (role: {role})"));
        }
        text.push('\n');
    }
    if !task.expected_artifacts.is_empty() {
        text.push_str(&format!(
            "- expected artifacts: {}\n",
            task.expected_artifacts.join(", ")
        ));
    }
    if let Some(team) = &parts.team {
        let subject = team.subject.as_ref().map_or("", |s| s.id.as_str());
        text.push_str(&format!("- {} of: {subject}\n", team.kind));
        if let Some(notes) = &team.notes {
            text.push_str(&format!("- addresses: {notes}\n"));
        }
    }
    text.push_str("\n## Inputs from dependencies\n\n");
    if parts.dependencies.is_empty() {
        text.push_str("None: this task depends on nothing.\n");
    }
    for (id, output) in &parts.dependencies {
        text.push_str(&format!("### {id}\n\n{output}\n\n"));
    }
    text.push_str("\n_Written by porki's offline provider: no LLM was called._\n");
    text
}

fn summarize_answer(prompt: &str) -> Result<String, LlmError> {
    let parts = read_task_prompt(prompt)?;
    let notes = if parts.dependencies.is_empty() {
        format!(
            "offline summary of task {}: it has no dependencies",
            parts.task.id
        )
    } else {
        format!(
            "offline summary of task {}: {} dependency outputs ({})",
            parts.task.id,
            parts.dependencies.len(),
            parts
                .dependencies
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let outputs: Vec<&str> = parts.dependencies.values().map(String::as_str).collect();
    Ok(json!({"status": "done", "outputs": outputs, "notes": notes, "follow_ups": []}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::plan::testing::{brief as agent, ids, sorted_edges};
    use crate::llm::answer::{SelectAnswer, TaskAnswer, TaskAnswerStatus, parse_answer};
    use crate::llm::prompt::{PlanContext, SelectContext, TaskContext};

    async fn ask(phase: Phase, prompt: String) -> String {
        let request = LlmRequest::new(phase, prompt, Duration::from_secs(5));
        OfflineProvider::new().call(&request).await.unwrap().text
    }

    async fn plan(agents: Vec<AgentBrief>) -> crate::domain::ValidatedDag {
        let ctx = PlanContext {
            goal_id: "goal-001".into(),
            context: "# Goal\n## Tasks\n- not an agent task\n".into(),
            agents,
            policy: Default::default(),
            previous_error: None,
        };
        let text = ask(Phase::Plan, prompt::plan_prompt(&ctx)).await;
        let answer: PlanAnswer = parse_answer(&text).unwrap();
        assert_eq!(answer.goal_id, "goal-001");
        answer.into_dag("goal-001").validate().unwrap()
    }

    #[tokio::test]
    async fn plans_from_task_lists_with_ids_after_and_priority() {
        let research = "# Research\nSome prose.\n\n## Tasks\n\
            - [collect] Collect sources (priority: 5)\n\
            - Read the `docs`\n  - a nested note, not a task\n\
            - Summarize findings\n\n## Notes\n- not a task\n";
        let writer = "### My tasks\n1. [draft] Write the draft; after: collect, summarize-findings\n2. Polish\n";
        let dag = plan(vec![
            agent("researcher", Some("research"), research),
            agent("writer", None, writer),
        ])
        .await;
        assert_eq!(
            ids(dag.dag()),
            [
                "collect",
                "read-the-docs",
                "summarize-findings",
                "draft",
                "polish"
            ]
        );
        let collect = &dag.dag().nodes[0];
        assert_eq!(collect.title, "Collect sources");
        assert_eq!(collect.priority, 5);
        assert_eq!(collect.role.as_deref(), Some("research"));
        assert_eq!(dag.dag().nodes[3].role, None);
        assert_eq!(dag.dag().nodes[3].metadata["agent"], "writer");
        assert_eq!(
            sorted_edges(dag.dag()),
            [
                ("collect", "draft"),
                ("collect", "read-the-docs"),
                ("draft", "polish"),
                ("read-the-docs", "summarize-findings"),
                ("summarize-findings", "draft"),
            ]
        );
    }

    #[tokio::test]
    async fn without_task_lists_each_agent_gets_research_then_report() {
        let dag = plan(vec![
            agent("a", Some("research"), "Just prose."),
            agent("b", None, ""),
        ])
        .await;
        assert_eq!(
            ids(dag.dag()),
            ["a-research", "a-report", "b-research", "b-report"]
        );
        assert_eq!(dag.dag().edges.len(), 2);
        let empty = plan(Vec::new()).await;
        assert_eq!(empty.dag().nodes.len(), 2);
    }

    fn task_ctx(dir: PathBuf) -> TaskContext {
        let mut task = Node::new("write", "Write the report");
        task.expected_artifacts = vec!["write.md".into()];
        TaskContext {
            goal_id: "goal-001".into(),
            agent: agent("writer", Some("writing"), ""),
            memory: Vec::new(),
            task,
            dependency_outputs: BTreeMap::from([("collect".into(), "found 3 sources".into())]),
            artifact_dir: dir,
            team: None,
            rank_ms: None,
        }
    }

    #[tokio::test]
    async fn execute_writes_a_report_into_the_artifact_dir() {
        let dir = std::env::temp_dir().join(format!("porki-offline-{}", std::process::id()));
        let text = ask(
            Phase::Execute,
            prompt::execute_prompt(&task_ctx(dir.join("nested"))),
        )
        .await;
        let answer: TaskAnswer = parse_answer(&text).unwrap();
        assert_eq!(answer.status, TaskAnswerStatus::Done);
        let path = dir.join("nested").join("write.md");
        assert_eq!(answer.outputs, vec![path.display().to_string()]);
        let report = std::fs::read_to_string(&path).unwrap();
        assert!(report.starts_with("# Write the report"), "{report}");
        assert!(report.contains("goal-001") && report.contains("found 3 sources"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_review_asks_for_changes_once_then_approves_and_a_fix_writes_its_report() {
        use crate::llm::answer::AnswerVerdict;
        use crate::llm::prompt::{Subject, TeamContext};
        let dir = std::env::temp_dir().join(format!("porki-offline-team-{}", std::process::id()));
        let team = |kind, cycle| TeamContext {
            kind,
            cycle,
            notes: Some("say which inputs".into()),
            subject: Some(Subject {
                id: "draft".into(),
                title: "Draft".into(),
                result: "wrote draft.md".into(),
                files: vec!["draft.md".into()],
            }),
            diff: None,
        };
        let answer = async |kind, cycle| -> TaskAnswer {
            let ctx = TaskContext {
                team: Some(team(kind, cycle)),
                ..task_ctx(dir.clone())
            };
            parse_answer(&ask(Phase::Execute, prompt::execute_prompt(&ctx)).await).unwrap()
        };
        let first = answer(TaskKind::Review, 0).await;
        assert_eq!(first.verdict, Some(AnswerVerdict::ChangesRequested));
        assert!(first.notes.contains("draft"), "{}", first.notes);
        let again = answer(TaskKind::Review, 1).await;
        assert_eq!(again.verdict, Some(AnswerVerdict::Approved));
        let escalation = answer(TaskKind::Escalate, 3).await;
        assert_eq!(escalation.verdict, Some(AnswerVerdict::Approved));
        let fix = answer(TaskKind::Fix, 1).await;
        assert_eq!(fix.verdict, None);
        let report = std::fs::read_to_string(dir.join("write.md")).unwrap();
        assert!(report.contains("- fix of: draft\n"), "{report}");
        assert!(
            report.contains("- addresses: say which inputs\n"),
            "{report}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn summarize_and_select_answer_in_their_shapes() {
        let ctx = task_ctx(PathBuf::from("/nonexistent"));
        let summary: TaskAnswer =
            parse_answer(&ask(Phase::Summarize, prompt::summarize_prompt(&ctx)).await).unwrap();
        assert_eq!(summary.outputs, vec!["found 3 sources"]);
        let select = SelectContext {
            goal_id: "g".into(),
            agent: agent("a", None, ""),
            candidates: vec![Node::new("t2", "Two"), Node::new("t1", "One")],
        };
        let chosen: SelectAnswer =
            parse_answer(&ask(Phase::Select, prompt::select_prompt(&select)).await).unwrap();
        assert_eq!(chosen.selected_task_id, "t2");
    }

    // The delay and the timeout are both on tokio's clock: paused, the 20 ms
    // timeout fires first without a real wait.
    #[tokio::test(start_paused = true)]
    async fn a_delay_longer_than_the_timeout_times_out() {
        let request = LlmRequest::new(Phase::Select, String::new(), Duration::from_millis(20));
        let err = OfflineProvider::with_delay(Duration::from_secs(5))
            .call(&request)
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::Timeout { .. }), "{err}");
    }
}
