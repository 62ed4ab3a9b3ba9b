//! Shaping a plan for its team before it is written: a review task after each
//! task the goal's review policy names (when the goal has a reviewer), with what
//! depended on the task rewired to depend on its review, and the approval marks
//! the goal's approval policy asks for. Pure: the planner calls it on every plan.

use super::dag::{Dag, DagError, Edge, Node};
use super::team::{ApprovalPolicy, GoalPolicy, ReviewPolicy, TaskKind, reserved_suffix, review_id};

/// Shapes `dag` for a goal with `policy` whose reviewers claim `reviewer_role`
/// (`None`: the goal has no reviewer, so nothing is reviewed). A task that needs
/// approval and is reviewed gets the approval on its review: a person approves
/// work that passed review. Fails, naming the task, when a planned id ends in a
/// suffix porki keeps for the tasks it adds, or a planned task has a kind other
/// than work (porki adds reviews, fixes, recoveries, escalations and merges itself).
pub fn shape_plan(
    mut dag: Dag,
    policy: GoalPolicy,
    reviewer_role: Option<&str>,
) -> Result<Dag, String> {
    if let Some(node) = dag.nodes.iter().find(|n| !n.kind.is_work()) {
        return Err(DagError::AddedKind {
            id: node.id.clone(),
            kind: node.kind.as_str(),
        }
        .to_string());
    }
    if let Some(node) = dag.nodes.iter().find(|n| reserved_suffix(&n.id).is_some()) {
        return Err(format!(
            "task id {:?} ends in .{}, which porki keeps for the review, fix, recovery, escalation and merge tasks it adds: rename the task",
            node.id,
            reserved_suffix(&node.id).unwrap_or_default()
        ));
    }
    for node in &mut dag.nodes {
        node.approval = match policy.approval {
            ApprovalPolicy::All => true,
            ApprovalPolicy::None => false,
            ApprovalPolicy::Marked => node.approval,
        };
    }
    let Some(reviewer_role) = reviewer_role else {
        return Ok(dag);
    };
    let reviewed: Vec<usize> = (0..dag.nodes.len())
        .filter(|&i| match policy.review {
            ReviewPolicy::All => true,
            ReviewPolicy::None => false,
            ReviewPolicy::Marked => dag.nodes[i].review,
        })
        .collect();
    for i in reviewed {
        let task = &mut dag.nodes[i];
        let review = review_id(&task.id);
        let mut node = Node::new(&review, format!("Review: {}", task.title));
        node.priority = task.priority;
        node.role = Some(reviewer_role.to_string());
        node.kind = TaskKind::Review;
        node.of = Some(task.id.clone());
        node.approval = std::mem::take(&mut task.approval);
        let task_id = task.id.clone();
        for edge in dag.edges.iter_mut().filter(|e| e.source == task_id) {
            edge.source = review.clone();
        }
        dag.edges.push(Edge {
            source: task_id,
            target: review,
        });
        dag.nodes.push(node);
    }
    Ok(dag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(marked: &[&str]) -> Dag {
        let nodes = ["a", "b", "c"]
            .into_iter()
            .map(|id| {
                let mut node = Node::new(id, id.to_uppercase());
                node.review = marked.contains(&id);
                node
            })
            .collect();
        Dag::new("g", nodes, &[("a", "b"), ("a", "c"), ("b", "c")])
    }

    fn edges(dag: &Dag) -> Vec<(String, String)> {
        let mut edges: Vec<_> = dag
            .edges
            .iter()
            .map(|e| (e.source.clone(), e.target.clone()))
            .collect();
        edges.sort();
        edges
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn every_task_gets_a_review_and_its_dependents_wait_for_the_review() {
        let policy = GoalPolicy::default();
        let dag = shape_plan(plan(&[]), policy, Some("qa")).unwrap();
        assert_eq!(dag.nodes.len(), 6);
        let review = dag.nodes.iter().find(|n| n.id == "a.review").unwrap();
        assert_eq!(review.kind, TaskKind::Review);
        assert_eq!(review.of.as_deref(), Some("a"));
        assert_eq!(review.role.as_deref(), Some("qa"));
        assert_eq!(review.title, "Review: A");
        assert_eq!(
            edges(&dag),
            pairs(&[
                ("a", "a.review"),
                ("a.review", "b"),
                ("a.review", "c"),
                ("b", "b.review"),
                ("b.review", "c"),
                ("c", "c.review"),
            ])
        );
        dag.validate().expect("a shaped plan is a valid plan");
    }

    #[test]
    fn marked_reviews_only_the_marked_tasks_and_none_reviews_nothing() {
        let marked = GoalPolicy {
            review: ReviewPolicy::Marked,
            ..GoalPolicy::default()
        };
        let dag = shape_plan(plan(&["b"]), marked, Some("qa")).unwrap();
        let ids: Vec<&str> = dag.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "b.review"]);
        assert_eq!(
            edges(&dag),
            pairs(&[("a", "b"), ("a", "c"), ("b", "b.review"), ("b.review", "c")])
        );
        let none = GoalPolicy {
            review: ReviewPolicy::None,
            ..GoalPolicy::default()
        };
        assert_eq!(
            shape_plan(plan(&["b"]), none, Some("qa")).unwrap(),
            plan(&["b"])
        );
    }

    #[test]
    fn without_a_reviewer_nothing_is_reviewed() {
        assert_eq!(
            shape_plan(plan(&["a"]), GoalPolicy::default(), None).unwrap(),
            plan(&["a"])
        );
    }

    #[test]
    fn approval_follows_the_policy_and_moves_onto_the_review() {
        let mut marked = plan(&[]);
        marked.nodes[1].approval = true;
        let no_review = GoalPolicy {
            review: ReviewPolicy::None,
            approval: ApprovalPolicy::Marked,
        };
        let dag = shape_plan(marked.clone(), no_review, Some("qa")).unwrap();
        let approving: Vec<&str> = dag
            .nodes
            .iter()
            .filter(|n| n.approval)
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(approving, ["b"]);
        let all = GoalPolicy {
            review: ReviewPolicy::Marked,
            approval: ApprovalPolicy::All,
        };
        let mut reviewed = plan(&["c"]);
        reviewed.nodes[1].approval = false;
        let dag = shape_plan(reviewed, all, Some("qa")).unwrap();
        let approving: Vec<&str> = dag
            .nodes
            .iter()
            .filter(|n| n.approval)
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(approving, ["a", "b", "c.review"]);
        let none = GoalPolicy {
            review: ReviewPolicy::None,
            approval: ApprovalPolicy::None,
        };
        let dag = shape_plan(marked, none, Some("qa")).unwrap();
        assert!(dag.nodes.iter().all(|n| !n.approval));
    }

    #[test]
    fn a_planned_task_of_a_kind_porki_adds_is_refused_with_the_validators_message() {
        for kind in [
            TaskKind::Review,
            TaskKind::Fix,
            TaskKind::Recover,
            TaskKind::Escalate,
            TaskKind::Merge,
        ] {
            let mut dag = plan(&[]);
            dag.nodes[2].kind = kind;
            dag.nodes[2].of = Some("a".into());
            let error = shape_plan(dag, GoalPolicy::default(), Some("qa")).unwrap_err();
            let expected = DagError::AddedKind {
                id: "c".into(),
                kind: kind.as_str(),
            };
            assert_eq!(error, expected.to_string());
        }
    }

    #[test]
    fn a_planned_id_with_a_reserved_suffix_is_refused_by_name() {
        for id in ["draft.review", "draft.merge", "draft.merge-2"] {
            let dag = Dag::new("g", vec![Node::new(id, "x")], &[]);
            let error = shape_plan(dag, GoalPolicy::default(), Some("qa")).unwrap_err();
            assert!(error.contains(&format!("{id:?}")), "{error}");
            assert!(error.contains("rename"), "{error}");
        }
    }
}
