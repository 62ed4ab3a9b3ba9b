//! Teams: agent kinds, in both forms.

use super::*;
use crate::domain::AgentKind;

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
