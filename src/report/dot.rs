//! `porki graph --format dot`: the DAG as a Graphviz `digraph`.

use std::fmt::Write as _;

use super::{
    CRITICAL_COLOR, CriticalPath, escape, node_kind, node_label, nodes_with_tasks, recovery_links,
    sorted_edges, state_color, state_stroke,
};
use crate::domain::{Dag, TaskState};

/// The DAG as a Graphviz `digraph`: one box per task labelled id, title, kind
/// and cycle (for tasks porki added, drawn dashed) and state, filled by state;
/// edges source → target (sorted), then a dotted edge from each FAILED task to
/// the recovery that took its work over. The critical path (see
/// [`crate::domain::critical`]) has thick borders and bold edges in
/// [`CRITICAL_COLOR`], a comment at the top says so. Every id is a quoted string.
pub fn graph_dot(dag: &Dag, tasks: &[TaskState]) -> String {
    let critical = CriticalPath::of(dag, tasks);
    let mut out = format!("digraph {} {{\n", dot_quote(&dag.goal_id));
    out.push_str("    rankdir=TB;\n");
    out.push_str("    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    if !critical.ids.is_empty() {
        let _ = writeln!(
            out,
            "    // critical path (thick borders, bold {CRITICAL_COLOR} edges): {}",
            critical.text()
        );
    }
    for (node, task) in nodes_with_tasks(dag, tasks) {
        let (fill, stroke) = task.map_or(("#ffffff", "#212529"), |t| {
            (state_color(t.status), state_stroke(t.status))
        });
        let mut style = if node_kind(node, task).is_work() {
            String::new()
        } else {
            ", style=\"rounded,filled,dashed\"".to_string()
        };
        if critical.has(&node.id) {
            style.push_str(", penwidth=3");
        }
        // Each line is escaped on its own, then joined with DOT's line-break escape.
        let _ = writeln!(
            out,
            "    {} [label=\"{}\", fillcolor=\"{fill}\", color=\"{stroke}\"{style}];",
            dot_quote(&node.id),
            node_label(node, task, dot_escape, "\\n")
        );
    }
    for edge in sorted_edges(dag) {
        let style = if critical.steps(&edge.source, &edge.target) {
            format!(" [color=\"{CRITICAL_COLOR}\", penwidth=2.5]")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {} -> {}{style};",
            dot_quote(&edge.source),
            dot_quote(&edge.target)
        );
    }
    for (failed, recovery) in recovery_links(dag, tasks) {
        let _ = writeln!(
            out,
            "    {} -> {} [style=dotted, label=\"recovered by\"];",
            dot_quote(failed),
            dot_quote(recovery)
        );
    }
    out.push_str("}\n");
    out
}

/// A double-quoted DOT string: see [`dot_escape`].
fn dot_quote(text: &str) -> String {
    format!("\"{}\"", dot_escape(text))
}

/// Text inside a DOT string: backslashes and quotes escaped, control characters as spaces.
fn dot_escape(text: &str) -> String {
    escape(text, |c| match c {
        '\\' => Some("\\\\"),
        '"' => Some("\\\""),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{diamond, hostile, ranked_diamond, team};

    #[test]
    fn graph_dot_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
digraph \"g\" {
    rankdir=TB;
    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];
    // critical path (thick borders, bold #c2255c edges): b → d
    \"a\" [label=\"a\\nStart\\nDONE\", fillcolor=\"#d3f9d8\", color=\"#2f9e44\"];
    \"b\" [label=\"b\\nLeft\\nRUNNING by w1\", fillcolor=\"#d0ebff\", color=\"#1c7ed6\", penwidth=3];
    \"c\" [label=\"c\\nRight\\nFAILED\", fillcolor=\"#ffc9c9\", color=\"#e03131\"];
    \"d\" [label=\"d\\nJoin\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\", penwidth=3];
    \"a\" -> \"b\";
    \"a\" -> \"c\";
    \"b\" -> \"d\" [color=\"#c2255c\", penwidth=2.5];
    \"c\" -> \"d\";
}
";
        assert_eq!(graph_dot(&dag, &tasks), expected);
    }

    #[test]
    fn graph_dot_escapes_a_hostile_title_and_ids() {
        let (dag, tasks) = hostile();
        let text = graph_dot(&dag, &tasks);
        assert!(text.starts_with("digraph \"g\\\"x\" {\n"), "{text}");
        assert!(
            text.contains(
                "    \"end\" [label=\"end\\nsay \\\"hi\\\"]; end [x] --> y #1 <b>&`\\\\N\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\", penwidth=3];\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    \"end\" -> \"a-b.c_d\" [color=\"#c2255c\", penwidth=2.5];\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    // critical path (thick borders, bold #c2255c edges): end → a-b.c_d\n"
            ),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3 + 1 + 2 + 1 + 1);
    }

    #[test]
    fn graph_dot_dashes_added_tasks_labels_cycles_and_links_recoveries() {
        let (dag, tasks) = team();
        let text = graph_dot(&dag, &tasks);
        let expected = "\
digraph \"g\" {
    rankdir=TB;
    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];
    // critical path (thick borders, bold #c2255c edges): draft.fix-1 → draft.review → publish
    \"copy\" [label=\"copy\\nCopy\\nDONE\", fillcolor=\"#d3f9d8\", color=\"#2f9e44\"];
    \"copy.escalate\" [label=\"copy.escalate\\nSettle the review of: Copy\\nescalation\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\", style=\"rounded,filled,dashed\"];
    \"copy.review\" [label=\"copy.review\\nReview: Copy\\nreview · cycle 2\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\", style=\"rounded,filled,dashed\"];
    \"draft\" [label=\"draft\\nDraft\\nDONE\", fillcolor=\"#d3f9d8\", color=\"#2f9e44\"];
    \"draft.fix-1\" [label=\"draft.fix-1\\nFix 1 of: Draft\\nfix 1\\nRUNNING by w1\", fillcolor=\"#d0ebff\", color=\"#1c7ed6\", style=\"rounded,filled,dashed\", penwidth=3];
    \"draft.review\" [label=\"draft.review\\nReview: Draft\\nreview · cycle 1\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\", style=\"rounded,filled,dashed\", penwidth=3];
    \"layout\" [label=\"layout\\nLay out\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\"];
    \"logo\" [label=\"logo\\nDraw the logo\\nAWAITING_APPROVAL\", fillcolor=\"#e5dbff\", color=\"#7048e8\"];
    \"publish\" [label=\"publish\\nPublish\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\", penwidth=3];
    \"scan\" [label=\"scan\\nScan the archive\\nFAILED\", fillcolor=\"#ffc9c9\", color=\"#e03131\"];
    \"scan.recover\" [label=\"scan.recover\\nRecover: Scan the archive\\nrecovery\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\", style=\"rounded,filled,dashed\"];
    \"sign-off\" [label=\"sign-off\\nSign off\\nAWAITING_APPROVAL\", fillcolor=\"#e5dbff\", color=\"#7048e8\"];
    \"copy\" -> \"copy.review\";
    \"copy.escalate\" -> \"copy.review\";
    \"copy.review\" -> \"publish\";
    \"draft\" -> \"draft.review\";
    \"draft.fix-1\" -> \"draft.review\" [color=\"#c2255c\", penwidth=2.5];
    \"draft.review\" -> \"publish\" [color=\"#c2255c\", penwidth=2.5];
    \"scan.recover\" -> \"publish\";
    \"scan\" -> \"scan.recover\" [style=dotted, label=\"recovered by\"];
}
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn graph_dot_draws_the_critical_path_the_ranks_make() {
        let (dag, tasks) = ranked_diamond();
        let text = graph_dot(&dag, &tasks);
        for line in [
            "    // critical path (thick borders, bold #c2255c edges): c → d\n",
            "    \"c\" [label=\"c\\nRight\\nFAILED\", fillcolor=\"#ffc9c9\", color=\"#e03131\", penwidth=3];\n",
            "    \"b\" [label=\"b\\nLeft\\nRUNNING by w1\", fillcolor=\"#d0ebff\", color=\"#1c7ed6\"];\n",
            "    \"c\" -> \"d\" [color=\"#c2255c\", penwidth=2.5];\n",
            "    \"b\" -> \"d\";\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert_eq!(text.matches("penwidth=3").count(), 2, "{text}");
    }
}
