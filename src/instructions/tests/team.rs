//! Teams: agent kinds and the per-goal review and approval policies in both
//! forms, the summary that shows them, the template's and the demo's use of them.

use super::*;
use crate::domain::{AgentKind, ApprovalPolicy, GoalPolicy, ReviewPolicy};

#[test]
fn kind_is_read_in_any_case_in_both_forms() {
    let md =
        ok("## Agents\n### a\n- Goal: g\n- Kind: Reviewer\n### b\n- Goal: g\n- KIND: manager\n");
    let yaml = ok(
        "agents:\n  - name: a\n    goal: g\n    kind: REVIEWER\n  - name: b\n    goal: g\n    Kind: Manager\n",
    );
    for i in [&md, &yaml] {
        assert_eq!(i.agents[0].kind, Some(AgentKind::Reviewer));
        assert_eq!(i.agents[1].kind, Some(AgentKind::Manager));
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }
}

#[test]
fn an_explicit_kind_wins_over_the_role() {
    let i = ok(
        "## Agents\n### a\n- Goal: g\n- Role: qa\n- Kind: builder\n### b\n- Goal: g\n- Role: qa\n",
    );
    assert_eq!(i.agents[0].kind(), AgentKind::Builder);
    assert_eq!(i.agents[1].kind, None, "as written: no Kind");
    assert_eq!(i.agents[1].kind(), AgentKind::Reviewer, "from the role");
}

#[test]
fn a_bad_kind_names_file_line_field_and_the_choices() {
    let e = err("## Agents\n### a\n- Goal: g\n- Kind: boss\n");
    assert_eq!(places(&e), [(4, Some("kind"))]);
    let shown = e.to_string();
    assert!(
        shown.starts_with("instructions/INSTRUCTIONS.md:4: kind: \"boss\" is not an agent kind"),
        "{shown}"
    );
    assert!(shown.contains("builder, reviewer, manager"), "{shown}");
    let e = err("agents:\n  - name: a\n    goal: g\n    kind: boss\n");
    assert_eq!(places(&e), [(4, Some("kind"))]);
    let e = err("agents:\n  - name: a\n    goal: g\n    kind: [reviewer]\n");
    assert_eq!(places(&e), [(4, Some("kind"))]);
    let e = err("## Agents\n### a\n- Goal: g\n- Kind: reviewer\n- Kind: manager\n");
    assert_eq!(places(&e), [(5, Some("kind"))]);
}

const GOALS_MARKDOWN: &str = "\
# Team

## Agents
### a
- Goal: g1
### b
- Goal: g2

## Goals
### g1
- Review: Marked
- Approve: ALL
### g2
- review: none
";

const GOALS_YAML: &str = "\
agents:
  - name: a
    goal: g1
  - name: b
    goal: g2
goals:
  - id: g1
    review: Marked
    approve: ALL
  - id: g2
    Review: none
";

fn policy(review: ReviewPolicy, approval: ApprovalPolicy) -> GoalPolicy {
    GoalPolicy { review, approval }
}

#[test]
fn goal_policies_read_the_same_in_both_forms() {
    let md = ok(GOALS_MARKDOWN);
    let yaml = ok(GOALS_YAML);
    for i in [&md, &yaml] {
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
        assert_eq!(i.goals.len(), 2);
        assert_eq!(
            i.policy("g1"),
            policy(ReviewPolicy::Marked, ApprovalPolicy::All)
        );
        // What a goal does not say keeps its default.
        assert_eq!(
            i.policy("g2"),
            policy(ReviewPolicy::None, ApprovalPolicy::Marked)
        );
    }
    assert_eq!(md.goals, yaml.goals);
}

#[test]
fn a_goal_not_listed_gets_the_default_policy() {
    let i = ok("## Agents\n### a\n- Goal: g\n");
    assert!(i.goals.is_empty());
    assert_eq!(i.policy("g"), GoalPolicy::default());
    assert_eq!(
        GoalPolicy::default(),
        policy(ReviewPolicy::All, ApprovalPolicy::Marked)
    );
}

#[test]
fn the_goals_section_stays_planner_context() {
    let i = ok(GOALS_MARKDOWN);
    assert_eq!(
        i.context,
        "# Team\n\n## Goals\n### g1\n- Review: Marked\n- Approve: ALL\n### g2\n- review: none"
    );
    // Before the agents, too; the agents section is still cut out.
    let i = ok("## Goals\n### g\nShip it.\n- Review: none\n\n## Agents\n### a\n- Goal: g\n");
    assert_eq!(i.context, "## Goals\n### g\nShip it.\n- Review: none");
    assert_eq!(i.policy("g").review, ReviewPolicy::None);
}

#[test]
fn bad_policy_values_name_file_line_field_and_the_choices() {
    let e = err(&GOALS_MARKDOWN.replace("Review: Marked", "Review: some"));
    assert_eq!(places(&e), [(11, Some("review"))]);
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "instructions/INSTRUCTIONS.md:11: review: \"some\" is not a review policy"
        ),
        "{shown}"
    );
    assert!(shown.contains("all") && shown.contains("none") && shown.contains("marked"));
    let e = err(&GOALS_MARKDOWN.replace("Approve: ALL", "Approve: yes please"));
    assert_eq!(places(&e), [(12, Some("approve"))]);
    assert!(e.to_string().contains("not an approval policy"), "{e}");

    let e = err(&GOALS_YAML.replace("review: Marked", "review: sometimes"));
    assert_eq!(places(&e), [(8, Some("review"))]);
    // A YAML boolean gets the message with the choices, not a type error.
    let e = err(&GOALS_YAML.replace("approve: ALL", "approve: true"));
    assert_eq!(places(&e), [(9, Some("approve"))]);
    assert!(
        e.to_string().contains("\"true\" is not an approval policy"),
        "{e}"
    );
}

#[test]
fn goal_ids_are_checked_and_listed_once() {
    let e = err("## Agents\n### a\n- Goal: g\n## Goals\n### g 1\n- Review: none\n");
    assert_eq!(places(&e), [(5, Some("id"))]);
    assert!(e.to_string().contains("goal id \"g 1\""), "{e}");
    assert!(
        e.to_string().contains("each heading is one goal's id"),
        "{e}"
    );
    let e = err("## Agents\n### a\n- Goal: g\n## Goals\n### g\n### g\n");
    assert_eq!(places(&e), [(6, Some("id"))]);
    assert!(e.to_string().contains("first on line 5"), "{e}");
    let e = err("agents:\n  - name: a\n    goal: g\ngoals:\n  - review: none\n  - id: 7\n");
    assert_eq!(places(&e), [(5, Some("id")), (6, Some("id"))]);
    assert!(e.to_string().contains("the goal has no id"), "{e}");
    let e = err("agents:\n  - name: a\n    goal: g\ngoals:\n  g: {review: none}\n");
    assert_eq!(places(&e), [(4, Some("goals"))]);
    let e = err("## Goals\n### g\n- Review: none\n- Review: all\n## Agents\n### a\n- Goal: g\n");
    assert_eq!(places(&e), [(4, Some("review"))]);
}

#[test]
fn a_goal_no_agent_works_on_is_a_warning() {
    let i = ok("## Agents\n### a\n- Goal: g\n## Goals\n### g\n### gg\n- Review: none\n");
    assert_eq!(i.warnings.len(), 1, "{:?}", i.warnings);
    let w = &i.warnings[0];
    assert_eq!((w.line, w.field.as_deref()), (6, Some("id")));
    assert!(w.message.contains("no agent works on goal \"gg\""), "{w}");
    // Still read: a goal's agents may be declared later.
    assert_eq!(i.policy("gg").review, ReviewPolicy::None);
    let i = ok("agents:\n  - name: a\n    goal: g\ngoals:\n  - id: other\n");
    assert_eq!(i.warnings.len(), 1);
    assert_eq!(i.warnings[0].line, 5);
}

#[test]
fn goals_section_prose_is_description_and_misspelt_keys_are_warnings() {
    let text = "## Agents\n### a\n- Goal: g\n\n## Goals\n\
        - g: the field guide, see https://example.com/spec\n\
        ### g\n\
        The guide for newcomers.\n\n\
        - Ship it by Friday\n\
        - See https://example.com/style\n\
        - Reveiw: none\n\
        - Approve: none\n\
        #### Notes\n\
        - Review: all\n";
    let i = ok(text);
    let places: Vec<_> = i
        .warnings
        .iter()
        .map(|w| (w.line, w.field.as_deref()))
        .collect();
    assert_eq!(places, [(12, Some("Reveiw"))], "{:?}", i.warnings);
    assert!(
        i.warnings[0]
            .message
            .contains("known keys: review, approve")
    );
    // The bullet under `#### Notes` is description, not a second Review.
    assert_eq!(
        i.policy("g"),
        policy(ReviewPolicy::All, ApprovalPolicy::None)
    );
}

#[test]
fn a_policy_outside_a_goal_is_an_error_and_without_a_bullet_a_warning() {
    let e = err("## Agents\n### a\n- Goal: g\n## Goals\n- Review: none\n### g\n");
    assert_eq!(places(&e), [(5, Some("review"))]);
    assert!(e.to_string().contains("`### goal-id`"), "{e}");
    let i = ok("## Agents\n### a\n- Goal: g\n## Goals\n### g\nReview: none\n");
    assert_eq!(i.warnings.len(), 1);
    assert!(i.warnings[0].message.contains("not a bullet"));
    assert_eq!(i.policy("g"), GoalPolicy::default());
}

#[test]
fn a_goals_heading_inside_the_agents_section_is_an_agent() {
    // `### Goals` one level under `## Agents` declares an agent named Goals,
    // as before: the goal policies need a section of their own.
    let e = err("## Agents\n### Goals\n- Review: none\n");
    assert_eq!(places(&e), [(2, Some("goal"))]);
}

#[test]
fn goals_in_a_fenced_yaml_block_are_placed_by_file_line() {
    let text = "# T\n\n```yaml\nagents:\n  - name: a\n    goal: g\ngoals:\n  - id: g\n    review: bad\n```\n";
    let e = err(text);
    assert_eq!(places(&e), [(9, Some("review"))]);
    let i = ok("agents: [{name: a, goal: g}]\ngoals: [{id: g, review: none}, {id: h}]\n");
    assert_eq!(i.policy("g").review, ReviewPolicy::None);
    // Flow style has no item lines: the warning sits on the `goals:` line.
    assert_eq!(i.warnings.len(), 1);
    assert_eq!(i.warnings[0].line, 2);
}

#[test]
fn summary_lists_agents_and_goals() {
    let i = ok(
        "## Agents\n### a\n- Goal: g1\n- Role: r\n- Cadence: 500ms\n### b\n- Goal: g2\n- Extra: x\n### c\n- Goal: g1\n",
    );
    let s = summary(&i);
    assert!(s.starts_with("3 agents, 2 goals\n"), "{s}");
    assert!(
        s.contains("  a  goal g1  role r  kind builder (from role)  cadence 500ms\n"),
        "{s}"
    );
    assert!(s.contains("  b  goal g2  kind builder (default)\n"), "{s}");
    assert!(
        s.contains("goals:\n  g1  review all  approve marked  (defaults: not under Goals)\n"),
        "{s}"
    );
    assert!(s.contains("1 warning:"), "{s}");
}

#[test]
fn summary_shows_kinds_and_goal_policies() {
    let text = "## Agents\n### dev\n- Goal: g1\n### qa\n- Goal: g1\n- Role: qa\n\
        ### boss\n- Goal: g2\n- Kind: manager\n\
        ## Goals\n### g2\n- Review: marked\n- Approve: all\n### g3\n- Review: none\n";
    let s = summary(&ok(text));
    for line in [
        "3 agents, 2 goals\n",
        "  dev  goal g1  kind builder (default)\n",
        "  qa  goal g1  role qa  kind reviewer (from role)\n",
        "  boss  goal g2  kind manager\n",
        "goals:\n",
        "  g1  review all  approve marked  (defaults: not under Goals)\n",
        "  g2  review marked  approve all\n",
        "  g3  review none  approve marked  (no agent works on it)\n",
        "1 warning:\n",
    ] {
        assert!(s.contains(line), "{line:?} in\n{s}");
    }
}

#[test]
fn the_agent_templates_declaration_example_parses_as_it_says() {
    let t = agent_template("research_agent", "research_agent", "RESEARCH_AGENT.md");
    let start = t.find("```markdown\n").expect("a markdown example") + "```markdown\n".len();
    let example = &t[start..start + t[start..].find("```").unwrap()];
    let i = ok(example);
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    assert_eq!(i.agents[0].name, "research_agent");
    assert_eq!(i.agents[0].kind, Some(AgentKind::Builder));
    assert_eq!(
        i.policy("goal-001"),
        policy(ReviewPolicy::Marked, ApprovalPolicy::None)
    );
}

#[test]
fn the_demo_reviews_only_the_marked_draft() {
    let demo = |file| match file {
        "research.md" => include_str!("../../../examples/demo/instructions/research.md"),
        "research_2.md" => include_str!("../../../examples/demo/instructions/research_2.md"),
        "writer.md" => include_str!("../../../examples/demo/instructions/writer.md"),
        "reviewer.md" => include_str!("../../../examples/demo/instructions/reviewer.md"),
        other => panic!("the demo has no {other}"),
    };
    let i = ok(include_str!(
        "../../../examples/demo/instructions/INSTRUCTIONS.md"
    ));
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    assert_eq!(
        i.policy("demo-001"),
        policy(ReviewPolicy::Marked, ApprovalPolicy::Marked)
    );
    let reviewer = i.agents.iter().find(|a| a.name == "reviewer").unwrap();
    assert_eq!(reviewer.kind, Some(AgentKind::Reviewer));
    assert_eq!(
        reviewer.kind(),
        AgentKind::from_role(reviewer.role.as_deref())
    );
    let briefs: Vec<AgentBrief> = i
        .agents
        .iter()
        .map(|a| AgentBrief {
            name: a.name.clone(),
            role: a.role.clone(),
            kind: a.kind(),
            instructions: demo(a.instructions.as_deref().unwrap().to_str().unwrap()).into(),
        })
        .collect();
    let dag = task_list_plan("demo-001", &briefs).validate().unwrap();
    let reviewed: Vec<&str> = (dag.dag().nodes.iter())
        .filter(|n| n.review)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(reviewed, ["draft"]);
    assert!(dag.dag().nodes.iter().all(|n| !n.approval));
    assert_eq!(dag.dag().nodes.len(), 12);
}

#[test]
fn a_goals_isolation_reads_the_same_in_both_forms_and_a_bad_one_is_named() {
    use crate::domain::Isolation;
    let md = ok(
        "## Agents\n### a\n- Goal: g1\n### b\n- Goal: g2\n\n## Goals\n### g1\n- Isolation: Worktree\n### g2\n- Review: none\n",
    );
    let yaml = ok(
        "```yaml\nagents:\n  - name: a\n    goal: g1\n  - name: b\n    goal: g2\ngoals:\n  - id: g1\n    isolation: worktree\n  - id: g2\n    review: none\n```\n",
    );
    for i in [&md, &yaml] {
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
        assert_eq!(
            i.isolation,
            BTreeMap::from([("g1".to_string(), Isolation::Worktree)])
        );
    }
    let e = err("## Agents\n### a\n- Goal: g\n\n## Goals\n### g\n- Isolation: separate\n");
    assert_eq!(places(&e), [(7, Some("isolation"))]);
    let shown = e.to_string();
    assert!(
        shown.contains("\"separate\" is not an isolation")
            && shown.contains("worktree")
            && shown.contains("shared"),
        "{shown}"
    );
}
