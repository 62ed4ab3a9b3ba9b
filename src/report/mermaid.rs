//! `porki graph --format mermaid`: the DAG as a Mermaid flowchart.

use std::fmt::Write as _;

use super::{escape, node_label, nodes_with_tasks, sorted_edges, state_color, state_stroke};
use crate::domain::{Dag, TaskState, TaskStatus};

/// The DAG as a Mermaid flowchart: one node per task labelled id, title and state,
/// a `classDef` per state, edges source → target (sorted).
pub fn graph_mermaid(dag: &Dag, tasks: &[TaskState]) -> String {
    let mut out = String::from("flowchart TD\n");
    for status in TaskStatus::ALL {
        let _ = writeln!(
            out,
            "    classDef {} fill:{},stroke:{},color:#212529",
            status.as_str().to_lowercase(),
            state_color(status),
            state_stroke(status)
        );
    }
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
    for edge in sorted_edges(dag) {
        let _ = writeln!(
            out,
            "    {} --> {}",
            mermaid_id(&edge.source),
            mermaid_id(&edge.target)
        );
    }
    out
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
    use crate::report::fixtures::{diamond, hostile};

    #[test]
    fn graph_mermaid_renders_the_diamond() {
        let (dag, tasks) = diamond();
        let expected = "\
flowchart TD
    classDef blocked fill:#e9ecef,stroke:#868e96,color:#212529
    classDef ready fill:#fff3bf,stroke:#f08c00,color:#212529
    classDef running fill:#d0ebff,stroke:#1c7ed6,color:#212529
    classDef done fill:#d3f9d8,stroke:#2f9e44,color:#212529
    classDef failed fill:#ffc9c9,stroke:#e03131,color:#212529
    t_a[\"a<br/>Start<br/>DONE\"]:::done
    t_b[\"b<br/>Left<br/>RUNNING by w1\"]:::running
    t_c[\"c<br/>Right<br/>FAILED\"]:::failed
    t_d[\"d<br/>Join<br/>BLOCKED\"]:::blocked
    t_a --> t_b
    t_a --> t_c
    t_b --> t_d
    t_c --> t_d
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
        assert_eq!(text.lines().count(), 1 + 5 + 2 + 1);
        assert_ne!(mermaid_id("a_b"), mermaid_id("a-b"));
        assert_ne!(mermaid_id("a__2d_"), mermaid_id("a_-"));
    }
}
