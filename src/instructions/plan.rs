//! The plan the agents' task lists make for a goal. No I/O.
//!
//! Loading a project checks it (a cycle or an unknown `after:` is refused
//! early), and the offline provider ([`crate::llm::OfflineProvider`]) answers
//! plan prompts with it:
//!
//! - each agent's instruction text is read with [`task_list`] (its module docs
//!   give the task list grammar); every task becomes a node with the agent's
//!   role, `metadata.agent` set to the agent's name, the task's artifacts as
//!   expected artifacts (`<id>.md` when it names none), and its markers as
//!   `review`, `approval` and `assignment` (`(soft)`: soft);
//! - ids are unique per instruction text; an id that an earlier agent already
//!   uses gets a `-2`, `-3`… suffix, and the agent's own references to it
//!   follow. An `after:` naming no task of its own agent names another agent's
//!   task;
//! - with no tasks at all, each agent gets `<agent>-research` → `<agent>-report`.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::task_list;
use super::tasks::unique_id;
use crate::domain::ids::MAX_PLANNED_ID_LEN;
use crate::domain::{AgentKind, Dag, Edge, Node};

/// One agent as a planner sees it: its name, role, kind and instruction text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBrief {
    /// Agent name.
    pub name: String,
    /// Its role, if declared.
    pub role: Option<String>,
    /// What it does in its team (declared, or from its role's words).
    pub kind: AgentKind,
    /// The text of its instruction file.
    pub instructions: String,
}

/// The plan of a goal from its agents' task lists, or a small default plan when
/// none has a task (see the module docs). Not validated.
pub fn task_list_plan(goal_id: &str, agents: &[AgentBrief]) -> Dag {
    let (mut nodes, mut edges) = plan_from_task_lists(agents);
    if nodes.is_empty() {
        (nodes, edges) = default_plan(agents);
    }
    Dag {
        goal_id: goal_id.to_string(),
        nodes,
        edges,
    }
}

/// The nodes and edges of every agent's task list (see the module docs).
fn plan_from_task_lists(agents: &[AgentBrief]) -> (Vec<Node>, Vec<Edge>) {
    let mut used: HashSet<String> = HashSet::new();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for agent in agents {
        let tasks = task_list(&agent.instructions);
        let mut taken: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
        taken.extend(used.iter().cloned());
        let mut renamed: HashMap<&str, String> = HashMap::new();
        for task in tasks.iter().filter(|t| used.contains(&t.id)) {
            let id = unique_id(&task.id, &taken);
            taken.insert(id.clone());
            renamed.insert(&task.id, id);
        }
        let final_id = |id: &String| renamed.get(id.as_str()).unwrap_or(id).clone();
        for task in &tasks {
            let id = final_id(&task.id);
            edges.extend(task.after.iter().map(|dep| Edge {
                source: final_id(dep),
                target: id.clone(),
            }));
            let mut node = agent_node(agent, &id, &task.title, task.priority);
            if !task.artifacts.is_empty() {
                node.expected_artifacts = task.artifacts.clone();
            }
            node.review = task.review;
            node.approval = task.approval;
            node.assignment = task.assignment;
            nodes.push(node);
        }
        used = taken;
    }
    (nodes, edges)
}

fn agent_node(agent: &AgentBrief, id: &str, title: &str, priority: Option<i32>) -> Node {
    let mut node = Node::new(id, title);
    node.priority = priority.unwrap_or(0);
    node.expected_artifacts = vec![format!("{id}.md")];
    node.metadata.insert("agent".into(), json!(agent.name));
    node.role = agent.role.clone();
    node
}

/// A plan for instructions without tasks, so every goal has something to run.
fn default_plan(agents: &[AgentBrief]) -> (Vec<Node>, Vec<Edge>) {
    let fallback = AgentBrief {
        name: String::new(),
        role: None,
        kind: AgentKind::Builder,
        instructions: String::new(),
    };
    let agents: Vec<&AgentBrief> = if agents.is_empty() {
        vec![&fallback]
    } else {
        agents.iter().collect()
    };
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for agent in agents {
        // Leave room for "-research" within the id length limit.
        let stem: String = agent.name.chars().take(MAX_PLANNED_ID_LEN - 9).collect();
        let id = |suffix: &str| {
            if stem.is_empty() {
                suffix.to_string()
            } else {
                format!("{stem}-{suffix}")
            }
        };
        let (research, report) = (id("research"), id("report"));
        let who = if agent.name.is_empty() {
            "the goal".to_string()
        } else {
            agent.name.clone()
        };
        nodes.push(agent_node(
            agent,
            &research,
            &format!("Research for {who}"),
            Some(1),
        ));
        nodes.push(agent_node(
            agent,
            &report,
            &format!("Report for {who}"),
            None,
        ));
        edges.push(Edge {
            source: research,
            target: report,
        });
    }
    (nodes, edges)
}

/// Helpers for the tests of the planner and of the prompts that carry agents.
#[cfg(test)]
pub(crate) mod testing {
    use super::AgentBrief;
    use crate::domain::{AgentKind, Dag};

    /// An [`AgentBrief`] from string slices, of the kind its role names.
    pub(crate) fn brief(name: &str, role: Option<&str>, text: &str) -> AgentBrief {
        AgentBrief {
            name: name.into(),
            role: role.map(Into::into),
            kind: AgentKind::from_role(role),
            instructions: text.into(),
        }
    }

    /// The node ids of `dag`, in plan order.
    pub(crate) fn ids(dag: &Dag) -> Vec<&str> {
        dag.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    /// The edges of `dag` as `(source, target)`, sorted.
    pub(crate) fn sorted_edges(dag: &Dag) -> Vec<(&str, &str)> {
        let mut edges: Vec<(&str, &str)> = dag
            .edges
            .iter()
            .map(|e| (e.source.as_str(), e.target.as_str()))
            .collect();
        edges.sort();
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{brief, ids, sorted_edges};
    use super::*;
    use crate::domain::ValidatedDag;

    fn plan(agents: Vec<AgentBrief>) -> ValidatedDag {
        task_list_plan("goal-001", &agents).validate().unwrap()
    }

    #[test]
    fn duplicate_titles_get_unique_slugs() {
        let (nodes, _) =
            plan_from_task_lists(&[brief("a", None, "## Tasks\n- Do it\n- Do it\n- !!!\n")]);
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["do-it", "do-it-2", "task"]);
    }

    #[test]
    fn ids_an_earlier_agent_uses_get_a_suffix_and_local_references_follow() {
        let a = "## Tasks\n- [scope] Scope\n- Review\n";
        let b = "## Tasks\n- [scope] Scope artifacts: scope.txt\n- Collect\n\
            - [scope-2] Other scope after: none\n- Write (after: scope, review)\n";
        let dag = plan(vec![brief("a", None, a), brief("b", None, b)]);
        let nodes = &dag.dag().nodes;
        assert_eq!(
            ids(dag.dag()),
            ["scope", "review", "scope-3", "collect", "scope-2", "write"]
        );
        assert_eq!(nodes[2].expected_artifacts, ["scope.txt"]);
        assert_eq!(nodes[3].expected_artifacts, ["collect.md"]);
        assert_eq!(nodes[2].metadata["agent"], "b");
        assert_eq!(
            sorted_edges(dag.dag()),
            [
                ("review", "write"),
                ("scope", "review"),
                ("scope-3", "collect"),
                ("scope-3", "write"),
            ]
        );
    }

    #[test]
    fn markers_become_node_fields() {
        use crate::domain::Assignment;
        let text = "## Tasks\n- [a] A (review)\n- [b] B (approval, soft)\n- [c] C\n";
        let dag = plan(vec![brief("w", Some("writer"), text)]);
        let fields: Vec<(bool, bool, Assignment)> = dag
            .dag()
            .nodes
            .iter()
            .map(|n| (n.review, n.approval, n.assignment))
            .collect();
        assert_eq!(
            fields,
            [
                (true, false, Assignment::Hard),
                (false, true, Assignment::Soft),
                (false, false, Assignment::Hard),
            ]
        );
        assert_eq!(dag.dag().nodes[0].title, "A");
    }

    #[test]
    fn two_agents_made_from_the_template_plan_two_chains() {
        let template = |name| {
            brief(
                name,
                None,
                &super::super::agent_template(name, name, "RESEARCH.md"),
            )
        };
        let dag = plan(vec![template("a"), template("b")]);
        assert_eq!(
            ids(dag.dag())[4..],
            ["scope-2", "collect-sources-2", "summarize-2", "check-2"]
        );
        assert!(
            dag.dag()
                .edges
                .iter()
                .any(|e| e.source == "summarize-2" && e.target == "check-2")
        );
    }
}
