//! Parsing instructions files: the two forms agreeing, the markdown form, every
//! error and warning, paths and the agent template. The YAML form's own cases
//! are in `yaml.rs`; kinds, goal policies, summaries and the demo in `team.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

mod team;
mod yaml;

const FILE: &str = "instructions/INSTRUCTIONS.md";

fn ok(text: &str) -> Instructions {
    parse(Path::new(FILE), text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> InstructionsError {
    match parse(Path::new(FILE), text) {
        Ok(i) => panic!("expected an error, got {i:?}"),
        Err(e) => e,
    }
}

/// (line, field) of every diagnostic.
fn places(e: &InstructionsError) -> Vec<(usize, Option<&str>)> {
    e.diagnostics
        .iter()
        .map(|d| (d.line, d.field.as_deref()))
        .collect()
}

/// DESIGN.md §3's markdown example, with the YAML example's paths and log level
/// so both say the same thing.
const DESIGN_MARKDOWN: &str = "\
## Agents
### research_agent
- Goal: goal-001
- Heartbeat: heartbeat/research.md
- Instructions: research.md
- Role: research
- Log-Level: INFO
- Cadence: 30s
";

/// DESIGN.md §3's YAML example.
const DESIGN_YAML: &str = r#"instruction_schema_version: "2"
agents:
  - name: research_agent
    goal: goal-001
    heartbeat: heartbeat/research.md
    instructions: research.md
    role: research
    log-level: INFO
    cadence: 30s
"#;

fn research_agent(line: usize) -> AgentSpec {
    AgentSpec {
        name: "research_agent".into(),
        goal: "goal-001".into(),
        role: Some("research".into()),
        kind: None,
        heartbeat: Some(PathBuf::from("heartbeat/research.md")),
        instructions: Some(PathBuf::from("research.md")),
        log_level: Some("INFO".into()),
        cadence: Some(Duration::from_secs(30)),
        line,
    }
}

#[test]
fn the_design_markdown_example_parses() {
    let i = ok(DESIGN_MARKDOWN);
    assert_eq!(i.agents, vec![research_agent(2)]);
    assert_eq!(i.context, "");
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}

#[test]
fn both_forms_give_the_same_model() {
    let md = ok(DESIGN_MARKDOWN);
    let yaml = ok(DESIGN_YAML);
    // The declaration line is where each form puts it; everything else is equal.
    assert_eq!(yaml.agents[0].line, 3);
    let strip = |mut i: Instructions| {
        i.agents.iter_mut().for_each(|a| a.line = 0);
        i
    };
    assert_eq!(strip(md), strip(yaml));
}

#[test]
fn a_fenced_yaml_block_gives_the_same_model_and_keeps_the_prose() {
    let text = format!(
        "# Research team\n\nGoal goal-001: survey the field.\n\n## Agents\n\n```yaml\n{DESIGN_YAML}```\n\n## Policies\n\nCite sources.\n"
    );
    let i = ok(&text);
    assert_eq!(i.agents, vec![research_agent(10)]);
    assert_eq!(
        i.context,
        "# Research team\n\nGoal goal-001: survey the field.\n\n## Policies\n\nCite sources."
    );
}

#[test]
fn the_seed_form_parses() {
    let text = "## Agents\n### research_agent\n- Goal: goal-001\n- Heartbeat: ./instructions/heartbeat/research.md\n";
    let i = ok(text);
    assert_eq!(i.agents.len(), 1);
    let a = &i.agents[0];
    assert_eq!(
        a.heartbeat.as_deref(),
        Some(Path::new("./instructions/heartbeat/research.md"))
    );
    assert_eq!(a.role, None);
    assert_eq!(a.cadence, None);
}

#[test]
fn the_seed_text_with_no_blank_lines_still_parses() {
    // The seed pastes INSTRUCTIONS.md into prose with no blank lines, so the
    // following text continues the last bullet (CommonMark lazy lines).
    let text = "instructions/INSTRUCTIONS.md:\n## Agents\n### research_agent\n- Goal: goal-001\n\
                - Heartbeat: ./instructions/heartbeat/research.md\nDAG Format\n{\n\"goal_id\": \"goal-001\",\n}\n";
    let i = ok(text);
    assert_eq!(i.agents[0].goal, "goal-001");
    assert_eq!(
        i.agents[0].heartbeat.as_deref(),
        Some(Path::new("./instructions/heartbeat/research.md"))
    );
    assert_eq!(i.warnings.len(), 1, "{:?}", i.warnings);
    assert_eq!(i.context, "instructions/INSTRUCTIONS.md:");
}

#[test]
fn context_keeps_the_text_outside_the_agent_list_verbatim() {
    let text = "\
# Orchestrator

Goals:
- goal-001: research *the* field, see docs/spec.md

## Agents
Some intro about agents.
### a1
- Goal: goal-001

A description of a1.
### a2
- Goal: goal-002

## Policies
Never delete files.
";
    let i = ok(text);
    assert_eq!(
        i.context,
        "# Orchestrator\n\nGoals:\n- goal-001: research *the* field, see docs/spec.md\n\n## Policies\nNever delete files."
    );
    assert_eq!(i.agents.len(), 2);
    assert_eq!(i.agents[1].line, 12);
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}

#[test]
fn a_line_right_below_a_field_is_not_part_of_its_value() {
    let i = ok("## Agents\n### a\n- Goal: goal-001\nDoes research.\n");
    assert_eq!(i.agents[0].goal, "goal-001");
    assert_eq!(i.warnings.len(), 1);
    assert_eq!(i.warnings[0].line, 4);
}

#[test]
fn keys_are_case_insensitive_with_log_level_spellings() {
    for key in ["Log-Level", "log level", "LOG_LEVEL", "Log level"] {
        let text = format!("## Agents\n### a\n- GOAL: g\n- {key}: debug\n- cadence: 5m\n");
        let i = ok(&text);
        assert_eq!(i.agents[0].log_level.as_deref(), Some("debug"), "{key}");
        assert_eq!(i.agents[0].cadence, Some(Duration::from_secs(300)));
    }
}

#[test]
fn code_spans_in_values_are_unwrapped() {
    let i = ok("## Agents\n### `a1`\n- Goal: `goal-001`\n- Heartbeat: `hb/a1.md`\n");
    assert_eq!(i.agents[0].name, "a1");
    assert_eq!(i.agents[0].goal, "goal-001");
    assert_eq!(
        i.agents[0].heartbeat.as_deref(),
        Some(Path::new("hb/a1.md"))
    );
}

#[test]
fn agents_heading_at_another_level_works() {
    let i = ok("# Agents\n## a1\n- Goal: g1\n### Notes\n- whatever\n# Other\ntext\n");
    assert_eq!(i.agents.len(), 1);
    assert_eq!(i.context, "# Other\ntext");
}

#[test]
fn cadence_forms() {
    let cases = [
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("500ms", Duration::from_millis(500)),
        ("45", Duration::from_secs(45)),
        ("1.5s", Duration::from_millis(1500)),
        (" 2 S ", Duration::from_secs(2)),
    ];
    for (text, want) in cases {
        assert_eq!(parse_cadence(text), Ok(want), "{text}");
    }
    for bad in [
        "", "fast", "30x", "-5s", "1.2.3s", ".", "0", "0s", "1e3", "inf", "nan", "s",
    ] {
        assert!(parse_cadence(bad).is_err(), "{bad:?}");
    }
    assert!(
        parse_cadence(&"9".repeat(400))
            .unwrap_err()
            .contains("too long")
    );
}

#[test]
fn a_bad_cadence_names_file_line_and_field() {
    let e = err("## Agents\n### a\n- Goal: g\n- Cadence: soon\n");
    assert_eq!(places(&e), [(4, Some("cadence"))]);
    let shown = e.to_string();
    assert!(
        shown.starts_with("instructions/INSTRUCTIONS.md:4: cadence: \"soon\" is not a duration"),
        "{shown}"
    );
    let e = err("agents:\n  - name: a\n    goal: g\n    cadence: soon\n");
    assert_eq!(places(&e), [(4, Some("cadence"))]);
}

#[test]
fn a_missing_goal_is_an_error_at_the_agent() {
    let e = err("## Agents\n### a\n- Role: r\n");
    assert_eq!(places(&e), [(2, Some("goal"))]);
    assert!(e.to_string().contains("agent \"a\" has no goal"), "{e}");
    let e = err("agents:\n  - name: a\n    role: r\n");
    assert_eq!(places(&e), [(2, Some("goal"))]);
}

#[test]
fn a_duplicate_name_names_both_lines() {
    let e = err("## Agents\n### a\n- Goal: g\n### a\n- Goal: g\n");
    assert_eq!(places(&e), [(4, Some("name"))]);
    assert!(e.to_string().contains("first declared on line 2"), "{e}");
    let e = err("agents:\n  - name: a\n    goal: g\n  - name: a\n    goal: g\n");
    assert_eq!(places(&e), [(4, Some("name"))]);
}

#[test]
fn names_outside_the_key_alphabet_are_rejected() {
    for bad in ["research agent", "agent*", "{agent}", "a:b", "*agent*", "é"] {
        let e = err(&format!("## Agents\n### {bad}\n- Goal: g\n"));
        assert_eq!(places(&e), [(2, Some("name"))], "{bad}");
        assert!(e.to_string().contains("agent name"), "{e}");
    }
    let long = "a".repeat(65);
    let e = err(&format!("## Agents\n### {long}\n- Goal: g\n"));
    assert_eq!(places(&e), [(2, Some("name"))]);
    let e = err("agents:\n  - name: \"a b\"\n    goal: g\n");
    assert_eq!(places(&e), [(2, Some("name"))]);
}

#[test]
fn goals_and_roles_outside_the_key_alphabet_are_rejected() {
    let e = err("## Agents\n### a\n- Goal: goal 1\n- Role: re:search\n");
    assert_eq!(places(&e), [(3, Some("goal")), (4, Some("role"))]);
    assert!(e.to_string().contains("goal id \"goal 1\""), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "\
## Agents
### a
- Cadence: never
### bad name
- Goal: g
### c
- Goal: g
### c
- Goal: {x}
";
    let e = err(text);
    assert_eq!(
        places(&e),
        [
            (2, Some("goal")),
            (3, Some("cadence")),
            (4, Some("name")),
            (8, Some("name")),
            (9, Some("goal")),
        ]
    );
    assert_eq!(e.to_string().lines().count(), 5);
}

#[test]
fn an_unknown_key_is_a_warning() {
    let i = ok("## Agents\n### a\n- Goal: g\n- Colour: blue\n");
    assert_eq!(i.warnings.len(), 1);
    let w = &i.warnings[0];
    assert_eq!((w.line, w.field.as_deref()), (4, Some("Colour")));
    assert!(w.message.contains("unknown key"));
    let i = ok("agents:\n  - name: a\n    goal: g\n    colour: blue\nteam: x\n");
    let places: Vec<_> = i.warnings.iter().map(|w| w.line).collect();
    assert_eq!(places, [4, 5]);
}

#[test]
fn a_field_written_without_a_bullet_gets_a_hint() {
    let e = err("## Agents\n### a\nGoal: g\n");
    assert_eq!(places(&e), [(2, Some("goal"))]);
    let i = ok("## Agents\n### a\n- Goal: g\n\nRole: r\n");
    assert_eq!(i.warnings[0].line, 5);
    assert!(i.warnings[0].message.contains("not a bullet"));
}

#[test]
fn a_bullet_that_is_not_a_field_is_an_error() {
    let e = err("## Agents\n### a\n- Goal: g\n- does research\n");
    assert_eq!(places(&e), [(4, None)]);
    assert!(e.to_string().contains("`- Key: value`"));
}

#[test]
fn a_field_before_any_agent_is_an_error() {
    let e = err("## Agents\n- Goal: g\n### a\n- Goal: g\n");
    assert_eq!(places(&e), [(2, Some("goal"))]);
}

#[test]
fn an_empty_value_and_a_repeated_field_are_errors() {
    let e = err("## Agents\n### a\n- Goal: g\n- Role:\n- Goal: h\n");
    assert_eq!(places(&e), [(4, Some("role")), (5, Some("goal"))]);
}

#[test]
fn no_agents_says_how_to_declare_one() {
    for text in ["# Title\n\nJust prose.\n", "## Goals\n- g1\n"] {
        let e = err(text);
        assert_eq!(places(&e), [(1, None)]);
        assert!(e.to_string().contains("## Agents"), "{e}");
    }
    let e = err("# Team\n\n## Agents\n\nNone yet.\n");
    assert_eq!(places(&e), [(3, None)]);
    assert!(e.to_string().contains("declares no agent"), "{e}");
    let e = err("instruction_schema_version: \"2\"\nagents: []\n");
    assert_eq!(places(&e), [(2, None)]);
}

#[test]
fn empty_whitespace_and_binary_input_are_clear_errors() {
    for text in ["", "   \n\t\n", "\u{feff}"] {
        let e = err(text);
        assert!(e.to_string().contains("the file is empty"), "{e}");
    }
    let e = err("## Agents\n### a\n- Goal: g\0\n");
    assert_eq!(places(&e), [(3, None)]);
    assert!(e.to_string().contains("binary"), "{e}");
}

#[test]
fn markdown_front_matter_is_not_the_yaml_form() {
    let i = ok("---\ntitle: Team\n---\n\n## Agents\n### a\n- Goal: g\n");
    assert_eq!(i.agents.len(), 1);
    assert_eq!(i.context, "---\ntitle: Team\n---");
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let i = ok(&format!("\u{feff}{DESIGN_MARKDOWN}"));
    assert_eq!(i.agents[0].line, 2);
}

#[test]
fn both_forms_at_once_is_an_error() {
    let text = format!("## Agents\n### b\n- Goal: g\n\n```yaml\n{DESIGN_YAML}```\n");
    let e = err(&text);
    assert!(e.to_string().contains("use one form"), "{e}");
}

#[test]
fn resolve_joins_onto_the_instructions_folder() {
    let a = ok(
        "## Agents\n### a\n- Goal: g\n- Heartbeat: ./heartbeat/a.md\n- Instructions: /abs/a.md\n",
    )
    .agents
    .remove(0);
    let r = a.resolve(Path::new("/repo/instructions"));
    assert_eq!(
        r.heartbeat.as_deref(),
        Some(Path::new("/repo/instructions/heartbeat/a.md"))
    );
    assert_eq!(r.instructions.as_deref(), Some(Path::new("/abs/a.md")));
    let none = ok("## Agents\n### a\n- Goal: g\n").agents.remove(0);
    assert_eq!(
        none.resolve(Path::new("x")),
        ResolvedPaths {
            heartbeat: None,
            instructions: None
        }
    );
}

#[test]
fn the_agent_template_names_every_answer_shape() {
    let t = agent_template("research_agent", "research_agent", "RESEARCH_AGENT.md");
    assert!(t.starts_with("# research_agent\n"));
    for needle in [
        "## Tasks",
        "\"goal_id\"",
        "\"edges\"",
        "\"selected_task_id\"",
        "\"confidence\"",
        "\"follow_ups\"",
        "porki-phase: plan",
    ] {
        assert!(t.contains(needle), "{needle}");
    }
    // Its JSON examples are valid JSON.
    let mut rest = t.as_str();
    let mut blocks = 0;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").unwrap();
        serde_json::from_str::<serde_json::Value>(&body[..end]).unwrap();
        blocks += 1;
        rest = &body[end + 3..];
    }
    assert_eq!(blocks, 3);
    // The template's own headings are not an agents section.
    assert!(parse(Path::new("t.md"), &t).is_err());
}

#[test]
fn diagnostics_display_as_file_line_field_message() {
    let d = Diagnostic::new(Path::new("f.md"), 3, Some("goal"), "missing");
    assert_eq!(d.to_string(), "f.md:3: goal: missing");
    let d = Diagnostic::new(Path::new("f.md"), 1, None, "empty");
    assert_eq!(d.to_string(), "f.md:1: empty");
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_on_any_string(s in "\\PC*") {
        let _ = parse(Path::new("x.md"), &s);
    }

    #[test]
    fn parse_never_panics_on_markdownish_text(s in "(## Agents\n|# Agents\n|## Goals\n|### [a-z*_ {}:]{0,8}\n|- (Goal|Role|Kind|Cadence|Heartbeat|Log level|Review|Approve|X): ?[a-z0-9 .*:`]{0,10}\n|```ya?ml\n|```\n|agents:\n|goals:\n|instruction_schema_version: [0-9\"]{0,3}\n|  - (name|id): [a-z]{0,5}\n|    goal: [a-z0-9]{0,5}\n|    (review|approve|kind): [a-z]{0,7}\n|    cadence: [0-9a-z]{0,4}\n|[^\n]{0,10}\n|\n|\0){0,25}") {
        match parse(Path::new("x.md"), &s) {
            Ok(i) => {
                proptest::prop_assert!(!i.agents.is_empty());
                for a in &i.agents {
                    proptest::prop_assert!(crate::domain::check_id("agent name", &a.name).is_ok());
                    proptest::prop_assert!(crate::domain::check_id("goal id", &a.goal).is_ok());
                }
                for goal in i.goals.keys() {
                    proptest::prop_assert!(crate::domain::check_id("goal id", goal).is_ok());
                }
            }
            Err(e) => {
                proptest::prop_assert!(!e.diagnostics.is_empty());
                for d in &e.diagnostics {
                    proptest::prop_assert!(d.line >= 1);
                }
            }
        }
    }
}
