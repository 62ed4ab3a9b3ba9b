//! What `porki instructions create` writes: an agent's instruction file, named
//! as the Python porki named it, and its text. No I/O.

/// An agent's instruction file name and declared name for what a user typed as
/// `--name`, or why it cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFileName {
    /// The file name: the name's alphanumeric words upper-cased and joined by
    /// `_`, then `.md` (`Core infra dev` → `CORE_INFRA_DEV.md`), as the Python
    /// porki wrote it and scripts expect.
    pub file: String,
    /// The name to declare the agent under: as typed when it is a valid agent
    /// name, else its words lower-cased and joined by `_` (`core_infra_dev`).
    pub agent: String,
}

impl AgentFileName {
    /// The names for `typed`; an error saying what to type when it has no letter
    /// or digit.
    pub fn new(typed: &str) -> Result<Self, String> {
        let words: Vec<&str> = typed
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(format!(
                "agent name {typed:?} has no letter or digit: name the agent with words, as in --name \"Core infra dev\""
            ));
        }
        let joined =
            |case: fn(&str) -> String| words.iter().map(|w| case(w)).collect::<Vec<_>>().join("_");
        let agent = if crate::domain::check_id("agent name", typed).is_ok() {
            typed.to_string()
        } else {
            joined(str::to_ascii_lowercase)
                .chars()
                .take(crate::domain::ids::MAX_ID_LEN)
                .collect()
        };
        Ok(Self {
            file: format!("{}.md", joined(str::to_ascii_uppercase)),
            agent,
        })
    }
}

/// The markdown text of a per-agent instruction file, for `porki instructions create`.
///
/// It has a `## Tasks` list in the form [`task_list`] reads (used by the
/// offline planner) and the JSON answer shapes an LLM-backed agent must give.
pub fn agent_template(title: &str, name: &str, file: &str) -> String {
    format!(
        r#"# {title}

Instructions for the agent `{name}`. The planner reads this file when it turns
the agent's goal into tasks; edit it, then append `REPARSE` to the agent's
heartbeat file to reload it.

## Role

Describe what this agent does, what it must not do, and where it writes.

## Declaring this agent

In `INSTRUCTIONS.md`, next to the other agents. `Kind` is `builder` (does the
work), `reviewer` (reviews builders' work) or `manager` (settles what reviews
cannot); without it the role decides (qa, review, test: reviewer; lead,
manager, owner: manager; anything else: builder). Under `## Goals`, `Review`
says which tasks get a review (`all`, `none`, or `marked`: only tasks marked
`(review)`) and `Approve` which wait for a person's `APPROVE-TASK` (`marked`,
`all` or `none`).

```markdown
## Agents
### {name}
- Goal: goal-001
- Role: research
- Kind: builder
- Instructions: {file}
- Heartbeat: heartbeat/{name}.md

## Goals
### goal-001
- Review: marked
- Approve: none
```

## Tasks

One list item per task. `[id]` names the task (else an id is made from the
title). An item without `after:` runs after the item above it; `after: none`
means it can start at once. `priority:` (higher runs sooner) and `artifacts:`
are optional. Markers in parentheses: `(review)` asks for a review when the
goal says `Review: marked`, `(approval)` makes the task wait for a person's
`APPROVE-TASK`, `(soft)` lets another builder take it when no agent of its role
is running.

- [scope] Define the scope and the questions to answer priority: 10
- [collect-sources] Collect sources on each question artifacts: sources.md
- [summarize] Summarize the findings after: collect-sources artifacts: report.md (review)
- [check] Check the report against the scope after: scope, summarize

## Answer formats

Answer with JSON only (a ```json fence is accepted). The first line of every
prompt is `porki-phase: <plan|select|execute|summarize>`.

Plan (`porki-phase: plan`):

```json
{{"goal_id": "goal-001",
 "nodes": [{{"id": "task-001", "title": "Research", "priority": 10,
            "expected_artifacts": ["notes.md"], "metadata": {{}}}}],
 "edges": [{{"source": "task-001", "target": "task-002"}}]}}
```

Select (`porki-phase: select`, optional):

```json
{{"selected_task_id": "task-001", "justification": "highest priority ready task",
 "confidence": 0.8}}
```

Execute or summarize (`porki-phase: execute` / `porki-phase: summarize`):

```json
{{"status": "done", "outputs": ["report.md"], "notes": "what was done",
 "follow_ups": []}}
```

`status` is `done` or `failed`.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_the_upper_cased_words_joined_by_underscores() {
        let names = |typed| AgentFileName::new(typed).unwrap();
        assert_eq!(
            names("Core infra dev"),
            AgentFileName {
                file: "CORE_INFRA_DEV.md".into(),
                agent: "core_infra_dev".into(),
            }
        );
        assert_eq!(
            names("research_agent"),
            AgentFileName {
                file: "RESEARCH_AGENT.md".into(),
                agent: "research_agent".into(),
            }
        );
        assert_eq!(names("  api--v2.writer ").file, "API_V2_WRITER.md");
        assert_eq!(names("  api--v2.writer ").agent, "api_v2_writer");
        assert_eq!(names("Ünïcode qa").file, "N_CODE_QA.md");
        let error = AgentFileName::new(" -- ").unwrap_err();
        assert!(error.contains("no letter or digit"), "{error}");
    }

    #[test]
    fn the_template_declares_the_agent_with_its_file() {
        let text = agent_template("Core infra dev", "core_infra_dev", "CORE_INFRA_DEV.md");
        assert!(text.starts_with("# Core infra dev\n"), "{text}");
        assert!(text.contains("### core_infra_dev\n"), "{text}");
        assert!(
            text.contains("- Instructions: CORE_INFRA_DEV.md\n"),
            "{text}"
        );
        assert!(
            text.contains("- Heartbeat: heartbeat/core_infra_dev.md\n"),
            "{text}"
        );
    }
}
