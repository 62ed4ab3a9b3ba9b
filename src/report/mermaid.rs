//! `porki graph --format mermaid`: the DAG as a Mermaid flowchart.

use std::fmt::Write as _;

use super::{
    CRITICAL_COLOR, CriticalPath, escape, node_kind, node_label, nodes_with_tasks, recovery_links,
    sorted_edges, state_color, state_stroke,
};
use crate::domain::{Dag, TaskKind, TaskState, TaskStatus};

/// The DAG as a Mermaid flowchart: one node per task labelled id, title, kind
/// and cycle (for tasks porki added) and state; a `classDef` per state and one
/// per added kind (dashed borders); edges source → target (sorted), then a
/// dotted link from each FAILED task to the recovery that took its work over.
/// The critical path (see [`crate::domain::critical`]) has thick borders
/// (`class … critical`) and bold links in [`CRITICAL_COLOR`] (`linkStyle`), a
/// `%%` comment at the top says so.
pub fn graph_mermaid(dag: &Dag, tasks: &[TaskState]) -> String {
    let critical = CriticalPath::of(dag, tasks);
    let mut out = String::from("flowchart TD\n");
    if !critical.ids.is_empty() {
        let _ = writeln!(
            out,
            "    %% critical path (thick borders, bold {CRITICAL_COLOR} links): {}",
            critical.text()
        );
    }
    for status in TaskStatus::ALL {
        let _ = writeln!(
            out,
            "    classDef {} fill:{},stroke:{},color:#212529",
            status.as_str().to_lowercase(),
            state_color(status),
            state_stroke(status)
        );
    }
    for kind in TaskKind::ALL {
        if let Some(dashes) = kind_dashes(kind) {
            let _ = writeln!(out, "    classDef {kind} stroke-dasharray:{dashes}");
        }
    }
    out.push_str("    classDef critical stroke-width:4px\n");
    for (node, task) in nodes_with_tasks(dag, tasks) {
        let class = task.map_or(String::new(), |t| {
            format!(":::{}", t.status.as_str().to_lowercase())
        });
        let _ = writeln!(
            out,
            "    {}[\"{}\"]{class}",
            mermaid_id(&node.id),
            node_label(node, task, mermaid_text, "<br/>")
        );
    }
    // linkStyle counts links in the order they are written: the plan's come first.
    let mut steps = Vec::new();
    for (i, edge) in sorted_edges(dag).into_iter().enumerate() {
        if critical.steps(&edge.source, &edge.target) {
            steps.push(i.to_string());
        }
        let _ = writeln!(
            out,
            "    {} --> {}",
            mermaid_id(&edge.source),
            mermaid_id(&edge.target)
        );
    }
    for (failed, recovery) in recovery_links(dag, tasks) {
        let _ = writeln!(
            out,
            "    {} -. recovered by .-> {}",
            mermaid_id(failed),
            mermaid_id(recovery)
        );
    }
    // A second class (the state's is on the node) for the tasks porki added.
    for (node, task) in nodes_with_tasks(dag, tasks) {
        let kind = node_kind(node, task);
        if kind_dashes(kind).is_some() {
            let _ = writeln!(out, "    class {} {kind}", mermaid_id(&node.id));
        }
    }
    for id in &critical.ids {
        let _ = writeln!(out, "    class {} critical", mermaid_id(id));
    }
    if !steps.is_empty() {
        let _ = writeln!(
            out,
            "    linkStyle {} stroke:{CRITICAL_COLOR},stroke-width:3px",
            steps.join(",")
        );
    }
    out
}

/// The dash pattern of a kind's border: none for planned work, so the tasks
/// porki added stand out whatever their state (the same patterns as the
/// dashboard's drawing).
fn kind_dashes(kind: TaskKind) -> Option<&'static str> {
    match kind {
        TaskKind::Work => None,
        TaskKind::Review => Some("8 4"),
        TaskKind::Fix => Some("3 3"),
        TaskKind::Recover => Some("10 3 2 3"),
        TaskKind::Escalate => Some("12 3 2 3 2 3"),
        TaskKind::Merge => Some("2 2"),
    }
}

/// A Mermaid node id for a task id: `t_` then the id with letters and digits kept,
/// `_` doubled and anything else written as `_HEX_`, so distinct ids stay distinct
/// and no id can be a keyword (`end`) or break the syntax.
fn mermaid_id(id: &str) -> String {
    let mut out = String::from("t_");
    for c in id.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => out.push(c),
            '_' => out.push_str("__"),
            _ => {
                let _ = write!(out, "_{:x}_", c as u32);
            }
        }
    }
    out
}

/// Text inside a quoted Mermaid label: quotes, `#`, `;`, `<`, `>`, `&` and
/// backticks as entity codes, control characters as spaces.
fn mermaid_text(text: &str) -> String {
    escape(text, |c| match c {
        '"' => Some("#quot;"),
        '#' => Some("#35;"),
        ';' => Some("#59;"),
        '<' => Some("#lt;"),
        '>' => Some("#gt;"),
        '&' => Some("#amp;"),
        '`' => Some("#96;"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{diamond, hostile, ranked_diamond, team};

    #[test]
    fn graph_mermaid_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
flowchart TD
    %% critical path (thick borders, bold #c2255c links): b → d
    classDef blocked fill:#e9ecef,stroke:#868e96,color:#212529
    classDef ready fill:#fff3bf,stroke:#f08c00,color:#212529
    classDef running fill:#d0ebff,stroke:#1c7ed6,color:#212529
    classDef awaiting_approval fill:#e5dbff,stroke:#7048e8,color:#212529
    classDef done fill:#d3f9d8,stroke:#2f9e44,color:#212529
    classDef failed fill:#ffc9c9,stroke:#e03131,color:#212529
    classDef review stroke-dasharray:8 4
    classDef fix stroke-dasharray:3 3
    classDef recover stroke-dasharray:10 3 2 3
    classDef escalate stroke-dasharray:12 3 2 3 2 3
    classDef merge stroke-dasharray:2 2
    classDef critical stroke-width:4px
    t_a[\"a<br/>Start<br/>DONE\"]:::done
    t_b[\"b<br/>Left<br/>RUNNING by w1\"]:::running
    t_c[\"c<br/>Right<br/>FAILED\"]:::failed
    t_d[\"d<br/>Join<br/>BLOCKED\"]:::blocked
    t_a --> t_b
    t_a --> t_c
    t_b --> t_d
    t_c --> t_d
    class t_b critical
    class t_d critical
    linkStyle 2 stroke:#c2255c,stroke-width:3px
";
        assert_eq!(graph_mermaid(&dag, &tasks), expected);
    }

    #[test]
    fn graph_mermaid_escapes_a_hostile_title_and_ids() {
        let (dag, tasks) = hostile();
        let text = graph_mermaid(&dag, &tasks);
        assert!(
            text.contains(
                "    t_end[\"end<br/>say #quot;hi#quot;]#59; end [x] --#gt; y #35;1 #lt;b#gt;#amp;#96;\\N<br/>READY\"]:::ready\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    t_a_2d_b_2e_c__d[\"a-b.c_d<br/>ok<br/>BLOCKED\"]:::blocked\n"),
            "{text}"
        );
        assert!(text.contains("    t_end --> t_a_2d_b_2e_c__d\n"), "{text}");
        // Every node line is one line: the title's newline did not split it.
        // The comment and class lines of the critical path are one line each too.
        assert_eq!(text.lines().count(), 1 + 1 + 6 + 5 + 1 + 2 + 1 + 2 + 1);
        assert_ne!(mermaid_id("a_b"), mermaid_id("a-b"));
        assert_ne!(mermaid_id("a__2d_"), mermaid_id("a_-"));
    }

    #[test]
    fn graph_mermaid_dashes_added_tasks_labels_cycles_and_links_recoveries() {
        let (dag, tasks) = team();
        let text = graph_mermaid(&dag, &tasks);
        let nodes_and_links: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("classDef"))
            .map(|l| format!("{l}\n"))
            .collect();
        let expected = "\
flowchart TD
    %% critical path (thick borders, bold #c2255c links): draft.fix-1 → draft.review → publish
    t_copy[\"copy<br/>Copy<br/>DONE\"]:::done
    t_copy_2e_escalate[\"copy.escalate<br/>Settle the review of: Copy<br/>escalation<br/>READY\"]:::ready
    t_copy_2e_review[\"copy.review<br/>Review: Copy<br/>review · cycle 2<br/>BLOCKED\"]:::blocked
    t_draft[\"draft<br/>Draft<br/>DONE\"]:::done
    t_draft_2e_fix_2d_1[\"draft.fix-1<br/>Fix 1 of: Draft<br/>fix 1<br/>RUNNING by w1\"]:::running
    t_draft_2e_review[\"draft.review<br/>Review: Draft<br/>review · cycle 1<br/>BLOCKED\"]:::blocked
    t_layout[\"layout<br/>Lay out<br/>READY\"]:::ready
    t_logo[\"logo<br/>Draw the logo<br/>AWAITING_APPROVAL\"]:::awaiting_approval
    t_publish[\"publish<br/>Publish<br/>BLOCKED\"]:::blocked
    t_scan[\"scan<br/>Scan the archive<br/>FAILED\"]:::failed
    t_scan_2e_recover[\"scan.recover<br/>Recover: Scan the archive<br/>recovery<br/>READY\"]:::ready
    t_sign_2d_off[\"sign-off<br/>Sign off<br/>AWAITING_APPROVAL\"]:::awaiting_approval
    t_copy --> t_copy_2e_review
    t_copy_2e_escalate --> t_copy_2e_review
    t_copy_2e_review --> t_publish
    t_draft --> t_draft_2e_review
    t_draft_2e_fix_2d_1 --> t_draft_2e_review
    t_draft_2e_review --> t_publish
    t_scan_2e_recover --> t_publish
    t_scan -. recovered by .-> t_scan_2e_recover
    class t_copy_2e_escalate escalate
    class t_copy_2e_review review
    class t_draft_2e_fix_2d_1 fix
    class t_draft_2e_review review
    class t_scan_2e_recover recover
    class t_draft_2e_fix_2d_1 critical
    class t_draft_2e_review critical
    class t_publish critical
    linkStyle 4,5 stroke:#c2255c,stroke-width:3px
";
        assert_eq!(nodes_and_links, expected, "\n{nodes_and_links}");
    }

    #[test]
    fn graph_mermaid_draws_the_critical_path_the_ranks_make() {
        let (dag, tasks) = ranked_diamond();
        let text = graph_mermaid(&dag, &tasks);
        assert!(
            text.starts_with(
                "flowchart TD\n    %% critical path (thick borders, bold #c2255c links): c → d\n"
            ),
            "{text}"
        );
        // c → d is the last of the sorted edges a → b, a → c, b → d, c → d.
        assert!(
            text.ends_with(
                "    class t_c critical\n    class t_d critical\n    linkStyle 3 stroke:#c2255c,stroke-width:3px\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches(" critical\n").count(), 2, "{text}");
    }
}
