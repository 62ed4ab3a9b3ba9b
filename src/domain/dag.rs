//! The task DAG of a goal and the validation that names what is wrong with it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::TaskKind;
use super::ids::{InvalidId, check_id, check_planned_id};

/// Default largest number of nodes a plan may have.
pub const DEFAULT_NODE_CAP: usize = 10_000;

/// Largest `estimate` a plan node may give: a task a thousand times the typical one.
pub const MAX_ESTIMATE: f64 = 1000.0;

/// One task of a plan, as the planner wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Task id, unique within the goal.
    pub id: String,
    /// Short human title.
    #[serde(default)]
    pub title: String,
    /// Higher runs sooner among READY tasks.
    #[serde(default)]
    pub priority: i32,
    /// Files or outputs the task is expected to produce.
    #[serde(default)]
    pub expected_artifacts: Vec<String>,
    /// Free-form planner metadata; `metadata.role` counts as the role.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Only agents of this role may claim the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Marked for review (`(review)` in a task list): reviewed under `Review: marked`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review: bool,
    /// Waits for a person's approval after it ran (`(approval)` in a task list).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval: bool,
    /// `soft`: another builder may take it when no live agent has its role.
    #[serde(default, skip_serializing_if = "Assignment::is_hard")]
    pub assignment: Assignment,
    /// Planned work, or a review porki added to the plan.
    #[serde(default, skip_serializing_if = "TaskKind::is_work")]
    pub kind: TaskKind,
    /// The task an added task is about (a review's reviewed task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// The planner's rough size of the task relative to a typical task of the
    /// goal (1), for ranking (`domain::rank`); none is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
}

/// Whether a task's role is a must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// Only agents of its role take it (the default).
    #[default]
    Hard,
    /// Another builder takes it when no live agent has its role.
    Soft,
}

impl Assignment {
    /// The default: a must.
    pub fn is_hard(&self) -> bool {
        *self == Assignment::Hard
    }
}

impl Node {
    /// A node with just an id and a title.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            priority: 0,
            expected_artifacts: Vec::new(),
            metadata: serde_json::Map::new(),
            role: None,
            review: false,
            approval: false,
            assignment: Assignment::Hard,
            kind: TaskKind::Work,
            of: None,
            estimate: None,
        }
    }

    /// The role restricting who may claim this task: the `role` field, else `metadata.role`.
    pub fn effective_role(&self) -> Option<&str> {
        self.role
            .as_deref()
            .or_else(|| self.metadata.get("role").and_then(|r| r.as_str()))
            .filter(|r| !r.is_empty())
    }
}

/// A dependency: `target` may start only after `source` is DONE.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    /// The task that must finish first.
    pub source: String,
    /// The task that waits for it.
    pub target: String,
}

/// A goal's plan: tasks and the dependencies between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dag {
    /// The goal this plan is for.
    pub goal_id: String,
    /// The tasks.
    pub nodes: Vec<Node>,
    /// The dependencies.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DagError {
    /// The plan has no tasks.
    #[error("the plan for goal {goal} has no tasks: give it at least one node")]
    Empty {
        /// Goal id.
        goal: String,
    },
    /// More nodes than the cap.
    #[error(
        "the plan has {count} tasks, more than the limit of {cap}: split the goal or raise the cap"
    )]
    TooManyNodes {
        /// Nodes in the plan.
        count: usize,
        /// The limit.
        cap: usize,
    },
    /// A goal id, task id or role with characters Redis keys cannot carry.
    #[error("{0}")]
    InvalidId(#[from] InvalidId),
    /// A node's `estimate` that is not a positive size up to [`MAX_ESTIMATE`].
    #[error(
        "task {id:?} has estimate {estimate}: give a positive size relative to a typical task (1), at most {MAX_ESTIMATE}, or leave it out"
    )]
    InvalidEstimate {
        /// The task.
        id: String,
        /// What it gave, as text (a float is not `Eq`).
        estimate: String,
    },
    /// Two nodes share an id.
    #[error("task id {id:?} appears more than once: give every task its own id")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// An edge names a task that is not in the plan.
    #[error("edge {from} -> {to} names unknown task {missing:?}: add the task or remove the edge")]
    UnknownEdgeEnd {
        /// Edge source.
        from: String,
        /// Edge target.
        to: String,
        /// The end that is not a node.
        missing: String,
    },
    /// A review that does not name the planned work of the plan it reviews.
    #[error(
        "task {id:?} is a {kind} task but {}: give it an `of` naming another work task of the plan, or drop its `kind`",
        match .of { Some(of) => format!("its `of` names {of:?}, which is not another work task of the plan"), None => "has no `of` saying which task it is about".to_string() }
    )]
    NoSubject {
        /// The task.
        id: String,
        /// Its kind's name.
        kind: &'static str,
        /// What it names, if anything.
        of: Option<String>,
    },
    /// A review that may run before the work it reviews.
    #[error("task {id:?} reviews {of:?} but does not depend on it: add the edge {of} -> {id}")]
    ReviewFirst {
        /// The review.
        id: String,
        /// The work it reviews.
        of: String,
    },
    /// A task of a kind only porki adds: a fix, recovery, escalation or merge
    /// in any plan (settling them changes the tasks they are about), or a
    /// review in a plan from the LLM.
    #[error(
        "task {id:?} is of kind {kind}, which only porki adds: plan work only (leave `kind` out; mark a task to review with \"review\": true)"
    )]
    AddedKind {
        /// The task.
        id: String,
        /// Its kind's name.
        kind: &'static str,
    },
    /// An edge from a task to itself.
    #[error("task {id:?} depends on itself: remove the edge {id} -> {id}")]
    SelfLoop {
        /// The task.
        id: String,
    },
    /// The dependencies form a cycle.
    #[error("the dependencies form a cycle: {}: remove one of these edges", cycle_text(.ids))]
    Cycle {
        /// Task ids on the cycle, in edge order.
        ids: Vec<String>,
    },
}

fn cycle_text(ids: &[String]) -> String {
    let mut text = ids.join(" -> ");
    if let Some(first) = ids.first() {
        text.push_str(" -> ");
        text.push_str(first);
    }
    text
}

/// A plan that passed validation, with its dependency maps and fingerprint.
#[derive(Debug, Clone)]
pub struct ValidatedDag {
    dag: Dag,
    deps: BTreeMap<String, Vec<String>>,
    dependents: BTreeMap<String, Vec<String>>,
    fingerprint: String,
}

impl Dag {
    /// The plan of `goal`: `nodes`, and `edges` as (source, target) pairs.
    pub fn new(goal: &str, nodes: Vec<Node>, edges: &[(&str, &str)]) -> Self {
        Self {
            goal_id: goal.to_string(),
            nodes,
            edges: edges
                .iter()
                .map(|(source, target)| Edge {
                    source: source.to_string(),
                    target: target.to_string(),
                })
                .collect(),
        }
    }

    /// Checks the plan with the default node cap.
    pub fn validate(self) -> Result<ValidatedDag, DagError> {
        self.validate_with_cap(DEFAULT_NODE_CAP)
    }

    /// Checks ids, edges, size and acyclicity; the error names the first problem found.
    pub fn validate_with_cap(self, cap: usize) -> Result<ValidatedDag, DagError> {
        check_id("goal id", &self.goal_id)?;
        if self.nodes.is_empty() {
            return Err(DagError::Empty {
                goal: self.goal_id.clone(),
            });
        }
        if self.nodes.len() > cap {
            return Err(DagError::TooManyNodes {
                count: self.nodes.len(),
                cap,
            });
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            // Planned work leaves room for the suffixes of the tasks porki adds.
            if node.kind.is_work() {
                check_planned_id(&node.id)?;
            } else {
                check_id("task id", &node.id)?;
            }
            if let Some(role) = node.effective_role() {
                check_id("role", role)?;
            }
            if let Some(estimate) = node.estimate
                && !(estimate > 0.0 && estimate <= MAX_ESTIMATE)
            {
                return Err(DagError::InvalidEstimate {
                    id: node.id.clone(),
                    estimate: estimate.to_string(),
                });
            }
            if index.insert(node.id.as_str(), i).is_some() {
                return Err(DagError::DuplicateId {
                    id: node.id.clone(),
                });
            }
        }
        for node in self.nodes.iter().filter(|n| !n.kind.is_work()) {
            if node.kind != TaskKind::Review {
                return Err(DagError::AddedKind {
                    id: node.id.clone(),
                    kind: node.kind.as_str(),
                });
            }
            let about = node.of.as_deref();
            let work = |of: &str| index.get(of).is_some_and(|&i| self.nodes[i].kind.is_work());
            let Some(of) = about.filter(|&of| of != node.id && work(of)) else {
                return Err(DagError::NoSubject {
                    id: node.id.clone(),
                    kind: node.kind.as_str(),
                    of: node.of.clone(),
                });
            };
            if !self
                .edges
                .iter()
                .any(|e| e.source == of && e.target == node.id)
            {
                return Err(DagError::ReviewFirst {
                    id: node.id.clone(),
                    of: of.to_string(),
                });
            }
        }
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut dependents: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for edge in &self.edges {
            for end in [&edge.source, &edge.target] {
                if !index.contains_key(end.as_str()) {
                    return Err(DagError::UnknownEdgeEnd {
                        from: edge.source.clone(),
                        to: edge.target.clone(),
                        missing: end.clone(),
                    });
                }
            }
            if edge.source == edge.target {
                return Err(DagError::SelfLoop {
                    id: edge.source.clone(),
                });
            }
            deps.entry(edge.target.clone())
                .or_default()
                .push(edge.source.clone());
            dependents
                .entry(edge.source.clone())
                .or_default()
                .push(edge.target.clone());
        }
        for list in deps.values_mut().chain(dependents.values_mut()) {
            list.sort();
            list.dedup();
        }
        if let Some(ids) = find_cycle(&self.nodes, &deps, &dependents, &index) {
            return Err(DagError::Cycle { ids });
        }
        let fingerprint = fingerprint(&self);
        Ok(ValidatedDag {
            dag: self,
            deps,
            dependents,
            fingerprint,
        })
    }
}

/// Kahn's algorithm; if nodes remain, walk back along dependencies until a node repeats.
fn find_cycle(
    nodes: &[Node],
    deps: &BTreeMap<String, Vec<String>>,
    dependents: &BTreeMap<String, Vec<String>>,
    index: &HashMap<&str, usize>,
) -> Option<Vec<String>> {
    let mut indegree = vec![0usize; nodes.len()];
    for targets in dependents.values() {
        for t in targets {
            indegree[index[t.as_str()]] += 1;
        }
    }
    let mut queue: Vec<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
    let mut removed = vec![false; nodes.len()];
    while let Some(i) = queue.pop() {
        removed[i] = true;
        for t in dependents.get(&nodes[i].id).into_iter().flatten() {
            let j = index[t.as_str()];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                queue.push(j);
            }
        }
    }
    let start = removed.iter().position(|r| !r)?;
    // A node Kahn's algorithm left has a dependency it also left (that is why its
    // in-degree never reached zero), so walking back must revisit a node. Walking
    // forward would not: a node downstream of a cycle may have no dependents.
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut current = start;
    let cycle = loop {
        if let Some(&at) = position.get(&current) {
            break &path[at..];
        }
        position.insert(current, path.len());
        path.push(current);
        current = deps[&nodes[current].id]
            .iter()
            .map(|d| index[d.as_str()])
            .find(|&j| !removed[j])
            .expect("a node left by Kahn's algorithm has a dependency also left");
    };
    let mut ids: Vec<String> = cycle.iter().rev().map(|&i| nodes[i].id.clone()).collect();
    // Start at the smallest id so the same cycle is always reported the same way.
    let smallest = (0..ids.len()).min_by_key(|&i| &ids[i]).unwrap_or(0);
    ids.rotate_left(smallest);
    Some(ids)
}

/// SHA-256 of the plan in a canonical form (nodes and edges sorted), hex encoded.
fn fingerprint(dag: &Dag) -> String {
    let mut nodes: Vec<&Node> = dag.nodes.iter().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut edges: Vec<&Edge> = dag.edges.iter().collect();
    edges.sort();
    edges.dedup();
    let canonical = serde_json::json!({ "goal_id": dag.goal_id, "nodes": nodes, "edges": edges });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

impl ValidatedDag {
    /// The plan.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The goal id.
    pub fn goal_id(&self) -> &str {
        &self.dag.goal_id
    }

    /// Ids a task depends on (sorted, without repeats).
    pub fn deps_of(&self, id: &str) -> &[String] {
        self.deps.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    /// Ids that depend on a task (sorted, without repeats).
    pub fn dependents_of(&self, id: &str) -> &[String] {
        self.dependents
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Hex SHA-256 of the canonical plan: equal plans have equal fingerprints.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(ids: &[&str], edges: &[(&str, &str)]) -> Dag {
        Dag::new(
            "g",
            ids.iter().map(|id| Node::new(*id, *id)).collect(),
            edges,
        )
    }

    #[test]
    fn a_diamond_is_valid_and_knows_its_edges() {
        let v = dag(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        )
        .validate()
        .unwrap();
        assert_eq!(v.deps_of("d"), ["b", "c"]);
        assert_eq!(v.dependents_of("a"), ["b", "c"]);
        assert!(v.deps_of("a").is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let cases: Vec<(Dag, &str)> = vec![
            (dag(&[], &[]), "no tasks"),
            (dag(&["a", "a"], &[]), "\"a\" appears more than once"),
            (dag(&["a"], &[("a", "zz")]), "unknown task \"zz\""),
            (dag(&["a"], &[("a", "a")]), "depends on itself"),
            (dag(&["a b"], &[]), "task id \"a b\" is not allowed"),
        ];
        for (d, expected) in cases {
            let err = d.validate().unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let err = dag(&["a", "b"], &[]).validate_with_cap(1).unwrap_err();
        assert_eq!(err, DagError::TooManyNodes { count: 2, cap: 1 });
        assert!(
            dag(&["a", "b"], &[]).validate_with_cap(2).is_ok(),
            "the cap itself is allowed"
        );
    }

    #[test]
    fn a_review_must_name_planned_work_it_depends_on() {
        let with = |of: Option<&str>, edges: &[(&str, &str)]| {
            let mut d = dag(&["a", "b", "r"], edges);
            d.nodes[1].kind = TaskKind::Review;
            d.nodes[1].of = Some("a".into());
            d.nodes[2].kind = TaskKind::Review;
            d.nodes[2].of = of.map(str::to_string);
            d.validate()
        };
        assert!(with(Some("a"), &[("a", "b"), ("a", "r")]).is_ok());
        let missing = with(None, &[("a", "b")]).unwrap_err().to_string();
        assert!(
            missing.contains("task \"r\" is a review task but has no `of`"),
            "{missing}"
        );
        // Not a task, itself, or not work (a review of a review).
        for bad in ["zz", "r", "b"] {
            let err = with(Some(bad), &[("a", "b"), (bad, "r")])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "its `of` names {bad:?}, which is not another work task"
                )),
                "{err}"
            );
        }
        let err = with(Some("a"), &[("a", "b")]).unwrap_err();
        assert_eq!(
            err,
            DagError::ReviewFirst {
                id: "r".into(),
                of: "a".into()
            }
        );
        assert!(err.to_string().contains("add the edge a -> r"), "{err}");
        // Planned work may say what it is about; nothing checks it.
        let mut d = dag(&["a"], &[]);
        d.nodes[0].of = Some("zz".into());
        assert!(d.validate().is_ok());
    }

    #[test]
    fn the_kinds_porki_adds_while_a_goal_runs_are_refused_in_a_plan() {
        for kind in [
            TaskKind::Fix,
            TaskKind::Recover,
            TaskKind::Escalate,
            TaskKind::Merge,
        ] {
            let mut d = dag(&["a", "x"], &[("a", "x")]);
            d.nodes[1].kind = kind;
            d.nodes[1].of = Some("a".into());
            let err = d.validate().unwrap_err();
            assert_eq!(
                err,
                DagError::AddedKind {
                    id: "x".into(),
                    kind: kind.as_str()
                }
            );
            assert!(
                err.to_string().contains(&format!(
                    "task \"x\" is of kind {kind}, which only porki adds"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_planned_id_too_long_for_the_ids_porki_adds_is_refused_by_its_own_name() {
        let long = "a".repeat(64);
        let err = dag(&[&long], &[]).validate().unwrap_err().to_string();
        assert!(err.contains(&format!("task id {long:?}")), "{err}");
        assert!(err.contains("use 1 to 49 characters"), "{err}");
        assert!(dag(&[&"a".repeat(49)], &[]).validate().is_ok());
        // An added task's id may use the whole length.
        let mut d = dag(&[&"a".repeat(49), &"r".repeat(64)], &[]);
        d.edges.push(Edge {
            source: d.nodes[0].id.clone(),
            target: d.nodes[1].id.clone(),
        });
        d.nodes[1].kind = TaskKind::Review;
        d.nodes[1].of = Some(d.nodes[0].id.clone());
        assert!(d.validate().is_ok());
    }

    #[test]
    fn a_cycle_lists_the_ids_on_it() {
        let err = dag(
            &["start", "x", "y", "z", "end"],
            &[
                ("start", "x"),
                ("x", "y"),
                ("y", "z"),
                ("z", "x"),
                ("z", "end"),
            ],
        )
        .validate()
        .unwrap_err();
        let DagError::Cycle { ids } = err.clone() else {
            panic!("expected a cycle, got {err}")
        };
        assert_eq!(ids, ["x", "y", "z"]);
        assert!(err.to_string().contains("x -> y -> z -> x"), "{err}");
    }

    #[test]
    fn fingerprint_ignores_order_but_not_content() {
        let a = dag(&["a", "b"], &[("a", "b")]).validate().unwrap();
        let b = dag(&["b", "a"], &[("a", "b")]).validate().unwrap();
        let c = dag(&["a", "b"], &[]).validate().unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn an_estimate_must_be_a_positive_size_up_to_the_bound() {
        let with = |estimate: f64| {
            let mut d = dag(&["a", "b"], &[("a", "b")]);
            d.nodes[1].estimate = Some(estimate);
            d.validate()
        };
        for bad in [0.0, -1.0, MAX_ESTIMATE * 1.001, f64::NAN, f64::INFINITY] {
            let err = with(bad).unwrap_err();
            assert_eq!(
                err,
                DagError::InvalidEstimate {
                    id: "b".into(),
                    estimate: bad.to_string()
                }
            );
            assert!(err.to_string().contains("task \"b\" has estimate"), "{err}");
            assert!(err.to_string().contains("or leave it out"), "{err}");
        }
        for good in [0.01, 1.0, MAX_ESTIMATE] {
            assert!(with(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn an_estimate_is_read_from_a_plan_and_a_node_without_one_is_unchanged() {
        let plan: Dag = serde_json::from_str(
            r#"{"goal_id": "g", "nodes": [{"id": "a", "estimate": 2.5}, {"id": "b", "estimate": null}, {"id": "c"}]}"#,
        )
        .unwrap();
        let estimates: Vec<Option<f64>> = plan.nodes.iter().map(|n| n.estimate).collect();
        assert_eq!(estimates, [Some(2.5), None, None]);
        // No `estimate` key when there is none: the fingerprints of plans
        // written before the field stay as they were.
        let text = serde_json::to_string(&Node::new("c", "")).unwrap();
        assert!(!text.contains("estimate"), "{text}");
        let words = r#"{"goal_id": "g", "nodes": [{"id": "a", "estimate": "long"}]}"#;
        assert!(serde_json::from_str::<Dag>(words).is_err());
    }

    #[test]
    fn role_comes_from_the_field_or_metadata() {
        let mut n = Node::new("a", "A");
        assert_eq!(n.effective_role(), None);
        n.metadata.insert("role".into(), "research".into());
        assert_eq!(n.effective_role(), Some("research"));
        n.role = Some("writer".into());
        assert_eq!(n.effective_role(), Some("writer"));
    }
}
