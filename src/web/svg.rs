//! A goal's DAG as SVG: boxes coloured by task state, the tasks porki added
//! (reviews, fixes, recoveries, escalations) dashed and labelled with their
//! kind and cycle, edges routed by [`super::layout`], and a dotted arrow from
//! each FAILED task to the recovery that took its work over. The critical path
//! ([`crate::domain::critical`]) has thick borders and bold arrows in
//! [`CRITICAL_COLOR`]. Every text is escaped; the
//! colours are attributes, so the drawing looks the same inline and standalone
//! and needs no inline style.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::html::{escape, kind_class, shorten, task_href};
use super::layout::{Layout, NODE_H, NODE_W, layout};
use crate::domain::{Dag, TaskKind, TaskState, TaskStatus};
use crate::report::{CRITICAL_COLOR, CriticalPath, Waits, kind_line, task_note};

/// Plans larger than this are not drawn (the task table still lists them).
pub(super) const MAX_DRAWN: usize = 400;
/// Drawings up to this wide are scaled to fit the page; wider ones scroll.
const FIT_WIDTH: f64 = 2400.0;

/// Fill of a box per state.
fn fill(status: Option<TaskStatus>) -> &'static str {
    match status {
        Some(TaskStatus::Blocked) => "#e9ecef",
        Some(TaskStatus::Ready) => "#fff3bf",
        Some(TaskStatus::Running) => "#d0ebff",
        Some(TaskStatus::AwaitingApproval) => "#e5dbff",
        Some(TaskStatus::Done) => "#d3f9d8",
        Some(TaskStatus::Failed) => "#ffc9c9",
        None => "#ffffff",
    }
}

/// Border of a box per state.
fn stroke(status: Option<TaskStatus>) -> &'static str {
    match status {
        Some(TaskStatus::Blocked) => "#868e96",
        Some(TaskStatus::Ready) => "#f08c00",
        Some(TaskStatus::Running) => "#1c7ed6",
        Some(TaskStatus::AwaitingApproval) => "#7048e8",
        Some(TaskStatus::Done) => "#2f9e44",
        Some(TaskStatus::Failed) => "#e03131",
        None => "#adb5bd",
    }
}

/// Dash pattern of a box's border per kind: plan tasks solid, the rest dashed
/// so they stand out whatever their state.
fn dashes(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Work => "",
        TaskKind::Review => " stroke-dasharray=\"8 4\"",
        TaskKind::Fix => " stroke-dasharray=\"3 3\"",
        TaskKind::Recover => " stroke-dasharray=\"10 3 2 3\"",
        TaskKind::Escalate => " stroke-dasharray=\"12 3 2 3 2 3\"",
        TaskKind::Merge => " stroke-dasharray=\"2 2\"",
    }
}

/// The DAG of `dag` with the states in `tasks`, or `None` when it has more than
/// [`MAX_DRAWN`] tasks.
pub(super) fn dag_svg(dag: &Dag, tasks: &[TaskState]) -> Option<String> {
    if dag.nodes.len() > MAX_DRAWN {
        return None;
    }
    let index: HashMap<&str, usize> = dag
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let states: HashMap<&str, &TaskState> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut edges: Vec<(usize, usize)> = dag
        .edges
        .iter()
        .filter_map(|e| {
            Some((
                *index.get(e.source.as_str())?,
                *index.get(e.target.as_str())?,
            ))
        })
        .collect();
    let planned = edges.len();
    let critical = CriticalPath::of(dag, tasks);
    // Only the plan's edges are steps: a recovery link is none.
    let steps: Vec<bool> = edges[..planned]
        .iter()
        .map(|&(s, t)| critical.steps(&dag.nodes[s].id, &dag.nodes[t].id))
        .collect();
    // Recoveries last, laid out like edges (the recovery right of what it
    // recovers) but drawn dotted: the plan's edges no longer join the two.
    edges.extend(tasks.iter().filter_map(|t| {
        let recovery = t.recovered_by.as_deref()?;
        (t.status == TaskStatus::Failed)
            .then_some((*index.get(t.id.as_str())?, *index.get(recovery)?))
    }));
    let waits = Waits::new(&dag.edges, tasks);
    let drawn = layout(dag.nodes.len(), &edges);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag{fit}\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" role=\"img\" aria-label=\"task graph of goal {goal}\" font-family=\"system-ui, sans-serif\">",
        w = drawn.width,
        h = drawn.height,
        goal = escape(&dag.goal_id),
        fit = if drawn.width <= FIT_WIDTH { " fit" } else { "" },
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#868e96\"/></marker>",
    );
    let _ = write!(
        out,
        "<marker id=\"arrow-critical\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"4\" markerHeight=\"4\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{CRITICAL_COLOR}\"/></marker></defs>"
    );
    edges_svg(&mut out, &drawn, planned, &steps);
    for (i, node) in dag.nodes.iter().enumerate() {
        let at = drawn.nodes[i];
        let task = states.get(node.id.as_str()).copied();
        let status = task.map(|t| t.status);
        let kind = task.map_or(node.kind, |t| t.kind);
        let note = task.map_or_else(String::new, |t| task_note(t, waits.of(&t.id)));
        let state_line = match task {
            Some(t) => match (&t.status, &t.owner) {
                (TaskStatus::Running, Some(owner)) => format!("RUNNING · {owner}"),
                (TaskStatus::Ready, _) if t.retry_at_ms.is_some() => "READY · retry wait".into(),
                (status, _) if t.attempt > 1 => format!("{status} · attempt {}", t.attempt),
                (status, _) => status.to_string(),
            },
            None => "UNKNOWN".into(),
        };
        let class = match status {
            Some(s) => format!("node s-{}", s.as_str().to_ascii_lowercase()),
            None => "node".into(),
        };
        let mut kind_class = kind_class(kind)
            .map(|k| format!(" {k}"))
            .unwrap_or_default();
        let on_path = critical.has(&node.id);
        if on_path {
            kind_class.push_str(" critical");
        }
        let about = if note.is_empty() {
            state_line.clone()
        } else {
            format!("{state_line}; {note}")
        };
        let _ = write!(
            out,
            "<a href=\"{href}\" class=\"{class}{kind_class}\" data-task=\"{id}\" data-state=\"{state}\">\
<title>{id}: {title} ({about})</title>\
<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"{dashes}/>",
            href = escape(&task_href(&dag.goal_id, &node.id)),
            id = escape(&node.id),
            state = status.map_or("UNKNOWN", TaskStatus::as_str),
            title = escape(&node.title),
            about = escape(&about),
            x = at.x,
            y = at.y,
            fill = fill(status),
            stroke = stroke(status),
            sw = if on_path {
                3.5
            } else if status == Some(TaskStatus::Running) {
                2.5
            } else {
                1.5
            },
            dashes = dashes(kind),
        );
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{y1:.1}\" font-size=\"12\" font-weight=\"600\" fill=\"#212529\">{id}</text>\
<text x=\"{x:.1}\" y=\"{y2:.1}\" font-size=\"11\" fill=\"#495057\">{title}</text>\
<text x=\"{x:.1}\" y=\"{y3:.1}\" font-size=\"10\" fill=\"{stroke}\">{state_line}</text>",
            x = at.x + 8.0,
            y1 = at.y + 16.0,
            y2 = at.y + 31.0,
            y3 = at.y + 46.0,
            id = escape(&shorten(&node.id, 24)),
            title = escape(&shorten(&node.title, 25)),
            stroke = stroke(status),
            state_line = escape(&shorten(&state_line, 25)),
        );
        if let Some(label) = kind_line(kind, task.map_or(0, |t| t.cycle)) {
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#862e9c\">{label}</text>",
                label = escape(&label),
                x = at.x + NODE_W - 6.0,
                y = at.y + 12.0,
            );
        }
        out.push_str("</a>");
    }
    out.push_str("</svg>");
    Some(out)
}

/// Each edge as a path: straight inside a column (past a waypoint), a curve
/// across a gap. Routes from `planned` on are recovery links, drawn dotted;
/// the steps of the critical path (`steps`) bold, last, so that they are on top.
fn edges_svg(out: &mut String, drawn: &Layout, planned: usize, steps: &[bool]) {
    let step = |n: usize| steps.get(n).copied().unwrap_or(false);
    let mut order: Vec<usize> = (0..drawn.routes.len()).collect();
    order.sort_by_key(|&n| step(n));
    for n in order {
        let route = &drawn.routes[n];
        let Some(&(x0, y0)) = route.points.first() else {
            continue;
        };
        let mut d = format!("M{x0:.1},{y0:.1}");
        for (i, pair) in route.points.windows(2).enumerate() {
            let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
            if i % 2 == 0 {
                let mid = (x1 + x2) / 2.0;
                let _ = write!(d, " C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}");
            } else {
                let _ = write!(d, " L{x2:.1},{y2:.1}");
            }
        }
        let (class, look) = if step(n) {
            (
                "edge critical",
                format!(
                    "stroke=\"{CRITICAL_COLOR}\" stroke-width=\"2.5\" marker-end=\"url(#arrow-critical)\""
                ),
            )
        } else if n < planned {
            (
                "edge",
                "stroke=\"#868e96\" stroke-width=\"1.3\" marker-end=\"url(#arrow)\"".to_string(),
            )
        } else {
            (
                "edge recovery",
                "stroke=\"#868e96\" stroke-width=\"1.3\" stroke-dasharray=\"2 3\" marker-end=\"url(#arrow)\"".to_string(),
            )
        };
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" {look}/>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Node;

    #[test]
    fn titles_and_ids_are_text_in_the_svg() {
        let evil = "<script>alert(1)</script>\"'&";
        let mut review = Node::new("a.review", "check");
        review.kind = TaskKind::Review;
        let dag = Dag::new(
            "g",
            vec![Node::new("a", evil), review],
            &[("a", "a.review")],
        );
        let mut task = TaskState::new("g", "a", evil, TaskStatus::Running, 0);
        task.owner = Some("<img src=x onerror=alert(2)>".into());
        let svg = dag_svg(&dag, &[task]).unwrap();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        assert!(svg.contains("k-review") && svg.contains("stroke-dasharray"));
        assert!(svg.contains("data-state=\"RUNNING\"") && svg.contains("data-state=\"UNKNOWN\""));
    }

    #[test]
    fn added_tasks_are_dashed_with_their_cycle_and_recoveries_dotted() {
        let mut review = TaskState::new("g", "a.review", "", TaskStatus::Blocked, 0);
        (review.kind, review.of, review.cycle) = (TaskKind::Review, Some("a".into()), 2);
        let mut failed = TaskState::new("g", "b", "", TaskStatus::Failed, 0);
        failed.recovered_by = Some("b.recover".into());
        let mut recovery = TaskState::new("g", "b.recover", "", TaskStatus::Ready, 0);
        (recovery.kind, recovery.of) = (TaskKind::Recover, Some("b".into()));
        let nodes = ["a", "a.fix-2", "a.review", "b", "b.recover"]
            .map(|id| Node::new(id, ""))
            .to_vec();
        let dag = Dag::new("g", nodes, &[("a", "a.review"), ("a.fix-2", "a.review")]);
        let a = TaskState::new("g", "a", "", TaskStatus::Done, 0);
        let svg = dag_svg(&dag, &[a, review, failed, recovery]).unwrap();
        // The kind is the task's, not its id's: a.fix-2 has no state, and its
        // node says it is planned work.
        assert!(!svg.contains("k-fix"), "{svg}");
        assert!(
            svg.contains("class=\"node s-blocked k-review critical\""),
            "{svg}"
        );
        assert!(svg.contains(">review · cycle 2</text>"), "{svg}");
        assert!(svg.contains("class=\"node s-ready k-recover\""), "{svg}");
        assert!(
            svg.contains("(BLOCKED; review of a, cycle 2; waits for a.fix-2)"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"edge recovery\"").count(), 1, "{svg}");
        // a.fix-2 → a.review is the critical path, by structure (nothing is ranked).
        assert_eq!(svg.matches("class=\"edge\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("class=\"edge critical\"").count(), 1, "{svg}");
    }

    #[test]
    fn huge_plans_are_not_drawn() {
        let nodes = (0..=MAX_DRAWN)
            .map(|i| Node::new(format!("t{i}"), ""))
            .collect();
        assert!(dag_svg(&Dag::new("g", nodes, &[]), &[]).is_none());
    }

    #[test]
    fn the_critical_path_is_drawn_bold_and_on_top() {
        let (dag, tasks) = crate::report::fixtures::ranked_diamond();
        let svg = dag_svg(&dag, &tasks).unwrap();
        assert!(
            svg.contains("class=\"node s-failed critical\" data-task=\"c\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"node s-blocked critical\" data-task=\"d\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"node s-running\" data-task=\"b\""),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"node").count(), 4);
        assert_eq!(svg.matches(" critical\" data-task=").count(), 2, "{svg}");
        // c → d, after the three other edges, in the path's colour.
        let paths: Vec<&str> = svg.split("<path class=\"").skip(1).collect();
        assert_eq!(paths.len(), 4, "{svg}");
        assert!(
            paths[3].starts_with("edge critical\"")
                && paths[3].contains("stroke=\"#c2255c\"")
                && paths[3].contains("url(#arrow-critical)"),
            "{svg}"
        );
        assert!(paths[..3].iter().all(|p| p.starts_with("edge\"")), "{svg}");
    }
}
