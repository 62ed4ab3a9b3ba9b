//! The YAML form: the whole file or a fenced block, its schema version, types
//! and line numbers.

use super::*;

#[test]
fn yaml_cadence_may_be_a_number_of_seconds() {
    let i = ok("agents:\n  - name: a\n    goal: g\n    cadence: 15\n");
    assert_eq!(i.agents[0].cadence, Some(Duration::from_secs(15)));
}

#[test]
fn a_yaml_file_with_comments_and_a_document_marker_is_yaml() {
    let i = ok(
        "# porki agents\n---\ninstruction_schema_version: \"2\"\nagents:\n  - name: a\n    goal: g\n",
    );
    assert_eq!(i.agents[0].line, 5);
    let e = err("# porki agents\nagents:\n  - name: a\n  goal: : x\n");
    assert!(e.to_string().contains("not valid YAML"), "{e}");
}

#[test]
fn invalid_yaml_names_its_line() {
    let e = err("instruction_schema_version: \"2\"\nagents:\n  - name: a\n   goal: [\n");
    assert_eq!(e.diagnostics.len(), 1);
    assert!(e.to_string().contains("not valid YAML"), "{e}");
    assert!(e.diagnostics[0].line >= 3, "{e}");
    // Inside a markdown fence the line counts from the top of the file.
    let e = err("# T\n\n```yaml\nagents:\n  - name: a\n  goal: : x\n```\n");
    assert!(e.diagnostics[0].line >= 5, "{e}");
    assert!(e.to_string().contains("not valid YAML"), "{e}");
}

#[test]
fn the_schema_version_must_be_2() {
    let e = err("instruction_schema_version: \"1\"\nagents:\n  - name: a\n    goal: g\n");
    assert_eq!(places(&e), [(1, Some("instruction_schema_version"))]);
    assert!(e.to_string().contains("porki reads version \"2\""), "{e}");
    ok("instruction_schema_version: 2\nagents:\n  - name: a\n    goal: g\n");
    ok("agents:\n  - name: a\n    goal: g\n");
}

#[test]
fn yaml_values_of_the_wrong_type_are_errors() {
    let e = err("agents:\n  - name: a\n    goal: 1\n  - just-a-string\nagents2: x\n");
    assert_eq!(places(&e), [(3, Some("goal")), (4, Some("agents"))]);
    let e = err("agents: yes\n");
    assert_eq!(places(&e), [(1, Some("agents"))]);
    let e = err("- a\n- b\n");
    assert!(e.to_string().contains("no agents declared"), "{e}");
}

#[test]
fn yaml_flow_style_parses_with_lines_at_the_agents_key() {
    let i =
        ok("instruction_schema_version: '2'\nagents: [{name: a, goal: g}, {name: b, goal: g}]\n");
    assert_eq!(i.agents.len(), 2);
    assert_eq!(i.agents[1].line, 2);
}

#[test]
fn yaml_context_key_is_the_context() {
    let i = ok("context: |\n  Goal goal-001: survey.\nagents:\n  - name: a\n    goal: goal-001\n");
    assert_eq!(i.context, "Goal goal-001: survey.\n");
}

#[test]
fn yaml_blocks_that_are_not_agents_stay_in_the_context() {
    let text = "## Config\n```yaml\nversion: \"2\"\n```\n## Agents\n### a\n- Goal: g\n";
    let i = ok(text);
    assert_eq!(i.context, "## Config\n```yaml\nversion: \"2\"\n```");
}

#[test]
fn two_yaml_agent_blocks_is_an_error() {
    let text =
        format!("```yaml\n{DESIGN_YAML}```\n\n```yml\nagents:\n  - name: b\n    goal: g\n```\n");
    let e = err(&text);
    assert!(e.to_string().contains("second yaml agents block"), "{e}");
}
