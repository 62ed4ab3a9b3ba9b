//! `porki graph --format dot`: the DAG as a Graphviz `digraph`.

use std::fmt::Write as _;

use super::{escape, node_label, nodes_with_tasks, sorted_edges, state_color, state_stroke};
use crate::domain::{Dag, TaskState};

/// The DAG as a Graphviz `digraph`: one box per task labelled id, title and state,
/// filled by state, edges source → target (sorted). Every id is a quoted string.
pub fn graph_dot(dag: &Dag, tasks: &[TaskState]) -> String {
    let mut out = format!("digraph {} {{\n", dot_quote(&dag.goal_id));
    out.push_str("    rankdir=TB;\n");
    out.push_str("    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    for (node, task) in nodes_with_tasks(dag, tasks) {
        let (fill, stroke) = task.map_or(("#ffffff", "#212529"), |t| {
            (state_color(t.status), state_stroke(t.status))
        });
        // Each line is escaped on its own, then joined with DOT's line-break escape.
        let _ = writeln!(
            out,
            "    {} [label=\"{}\", fillcolor=\"{fill}\", color=\"{stroke}\"];",
            dot_quote(&node.id),
            node_label(node, task, dot_escape, "\\n")
        );
    }
    for edge in sorted_edges(dag) {
        let _ = writeln!(
            out,
            "    {} -> {};",
            dot_quote(&edge.source),
            dot_quote(&edge.target)
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
    use crate::report::fixtures::{diamond, hostile};

    #[test]
    fn graph_dot_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
digraph \"g\" {
    rankdir=TB;
    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];
    \"a\" [label=\"a\\nStart\\nDONE\", fillcolor=\"#d3f9d8\", color=\"#2f9e44\"];
    \"b\" [label=\"b\\nLeft\\nRUNNING by w1\", fillcolor=\"#d0ebff\", color=\"#1c7ed6\"];
    \"c\" [label=\"c\\nRight\\nFAILED\", fillcolor=\"#ffc9c9\", color=\"#e03131\"];
    \"d\" [label=\"d\\nJoin\\nBLOCKED\", fillcolor=\"#e9ecef\", color=\"#868e96\"];
    \"a\" -> \"b\";
    \"a\" -> \"c\";
    \"b\" -> \"d\";
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
                "    \"end\" [label=\"end\\nsay \\\"hi\\\"]; end [x] --> y #1 <b>&`\\\\N\\nREADY\", fillcolor=\"#fff3bf\", color=\"#f08c00\"];\n"
            ),
            "{text}"
        );
        assert!(text.contains("    \"end\" -> \"a-b.c_d\";\n"), "{text}");
        assert_eq!(text.lines().count(), 3 + 2 + 1 + 1);
    }
}
