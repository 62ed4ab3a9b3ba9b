//! Loading an instructions file from disk: parse it, resolve each agent's paths
//! and read each agent's own instruction file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::domain::{AgentKind, GoalPolicy, Isolation, claim_role};
use crate::instructions::{self, AgentBrief, AgentSpec, Instructions, InstructionsError};

/// Largest instructions or agent instruction file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Default fallback poll interval of an agent without a cadence.
pub const DEFAULT_CADENCE: Duration = Duration::from_secs(30);

/// Why a project could not be loaded.
#[derive(Debug, Error)]
pub enum ProjectError {
    /// A file could not be read.
    #[error("cannot read {path}: {source} (check the path and its permissions)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error(
        "{path} is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit: point at the right file or split it"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A file is not UTF-8 text.
    #[error("{path} is not UTF-8 text: save it as UTF-8")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The instructions file has errors.
    #[error("{0}")]
    Invalid(#[from] InstructionsError),
    /// The agents' task lists of a goal do not form a valid plan.
    #[error("{path}: goal {goal}: the agents' task lists do not form a valid plan: {error}")]
    TaskLists {
        /// The instructions file.
        path: PathBuf,
        /// Goal id.
        goal: String,
        /// What is wrong with the plan.
        error: crate::domain::DagError,
    },
}

/// One agent ready to run: its declaration with resolved paths and its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Agent name.
    pub name: String,
    /// Goal id.
    pub goal: String,
    /// Role, if any.
    pub role: Option<String>,
    /// What the agent does in its team: its `Kind:`, else the kind its role's
    /// words name ([`AgentKind::from_role`]).
    pub kind: AgentKind,
    /// Heartbeat file, resolved.
    pub heartbeat: Option<PathBuf>,
    /// The agent's instruction file, resolved.
    pub instructions_path: Option<PathBuf>,
    /// The text of that file (empty without one).
    pub instructions: String,
    /// Fallback poll interval.
    pub cadence: Duration,
    /// The role a manager of the agent's goal claims, when the goal has one:
    /// where escalations (and recoveries) go.
    pub manager_role: Option<String>,
    /// The isolation its goal's `Isolation:` asks for; `None`: `--isolation` decides.
    pub isolation: Option<Isolation>,
}

impl AgentConfig {
    /// The role the agent claims with (see [`claim_role`]).
    pub fn claim_role(&self) -> Option<String> {
        claim_role(self.kind, self.role.as_deref())
    }

    /// Whether the agent also takes tasks without a role: builders do; reviewers
    /// and managers take only their role's.
    pub fn takes_roleless(&self) -> bool {
        self.kind == AgentKind::Builder
    }

    /// The agent as the planner and the prompts describe it.
    pub fn brief(&self) -> AgentBrief {
        AgentBrief {
            name: self.name.clone(),
            role: self.role.clone(),
            kind: self.kind,
            instructions: self.instructions.clone(),
        }
    }
}

/// A loaded instructions file.
#[derive(Debug, Clone)]
pub struct Project {
    /// The instructions file.
    pub path: PathBuf,
    /// What it declares.
    pub instructions: Instructions,
    /// The agents, ready to run, in file order.
    pub agents: Vec<AgentConfig>,
}

impl Project {
    /// Reads and checks an instructions file and every agent file it names.
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let text = read_text(path)?;
        let instructions = instructions::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let agents = instructions
            .agents
            .iter()
            .map(|spec| agent_config(spec, base))
            .collect::<Result<Vec<_>, _>>()?;
        let mut agents = with_managers(agents);
        for agent in &mut agents {
            agent.isolation = instructions.isolation.get(&agent.goal).copied();
        }
        let project = Self {
            path: path.to_path_buf(),
            instructions,
            agents,
        };
        project.check_task_lists()?;
        Ok(project)
    }

    /// Checks that each goal's task lists form a plan (what the offline provider
    /// runs, and what an LLM planner is shown): no cycle, no unknown `after:`.
    fn check_task_lists(&self) -> Result<(), ProjectError> {
        for goal in self.goals() {
            let agents: Vec<AgentBrief> = self.agents_of(&goal).map(AgentConfig::brief).collect();
            if let Err(error) = instructions::task_list_plan(&goal, &agents).validate() {
                return Err(ProjectError::TaskLists {
                    path: self.path.clone(),
                    goal,
                    error,
                });
            }
        }
        Ok(())
    }

    /// The files porki reads to steer the run (the instructions, the agents'
    /// files, their heartbeats), which no agent may be able to write.
    pub fn control_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        for agent in &self.agents {
            files.extend(
                agent
                    .heartbeat
                    .iter()
                    .chain(&agent.instructions_path)
                    .cloned(),
            );
        }
        files
    }

    /// The goal ids, in first-declared order, without repeats.
    pub fn goals(&self) -> Vec<String> {
        let mut goals: Vec<String> = Vec::new();
        for agent in &self.agents {
            if !goals.contains(&agent.goal) {
                goals.push(agent.goal.clone());
            }
        }
        goals
    }

    /// The team policy of `goal`: as its `## Goals` entry says, or the default
    /// (review all, approve marked) for a goal not listed.
    pub fn policy(&self, goal: &str) -> GoalPolicy {
        self.instructions.policy(goal)
    }

    /// The agents working on `goal`.
    pub fn agents_of<'a>(&'a self, goal: &'a str) -> impl Iterator<Item = &'a AgentConfig> + 'a {
        self.agents.iter().filter(move |a| a.goal == goal)
    }
}

/// Tells each agent the role its goal's first manager claims, if any.
fn with_managers(mut agents: Vec<AgentConfig>) -> Vec<AgentConfig> {
    let managers: Vec<(String, Option<String>)> = agents
        .iter()
        .filter(|a| a.kind == AgentKind::Manager)
        .map(|a| (a.goal.clone(), a.claim_role()))
        .collect();
    for agent in &mut agents {
        agent.manager_role = managers
            .iter()
            .find(|(goal, _)| *goal == agent.goal)
            .and_then(|(_, role)| role.clone());
    }
    agents
}

fn agent_config(spec: &AgentSpec, base: &Path) -> Result<AgentConfig, ProjectError> {
    let instructions_path = spec.instructions.as_deref().map(|p| resolve(base, p));
    let instructions = match &instructions_path {
        Some(path) => read_text(path)?,
        None => String::new(),
    };
    Ok(AgentConfig {
        name: spec.name.clone(),
        goal: spec.goal.clone(),
        role: spec.role.clone(),
        kind: spec.kind(),
        heartbeat: spec.heartbeat.as_deref().map(|p| resolve(base, p)),
        instructions_path,
        instructions,
        cadence: spec.cadence.unwrap_or(DEFAULT_CADENCE),
        manager_role: None,
        isolation: None,
    })
}

/// Resolves a declared path against the instructions file's folder, as DESIGN.md
/// says; the seed's examples write paths from the project root instead
/// (`./instructions/heartbeat/x.md` next to `instructions/INSTRUCTIONS.md`), so
/// when the path is missing there but exists (or its folder does) one level up,
/// that one is used.
pub fn resolve(base: &Path, declared: &Path) -> PathBuf {
    if declared.is_absolute() {
        return declared.to_path_buf();
    }
    let clean = |p: PathBuf| -> PathBuf { p.components().collect() };
    let primary = clean(base.join(declared));
    if primary.exists() {
        return primary;
    }
    if let Some(root) = base.parent() {
        let alternative = clean(root.join(declared));
        let folder_exists = |p: &Path| p.parent().is_some_and(|d| d.is_dir());
        if alternative.exists() || (folder_exists(&alternative) && !folder_exists(&primary)) {
            return alternative;
        }
    }
    primary
}

/// Reads a text file of at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ProjectError> {
    let read_error = |source| ProjectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ProjectError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    String::from_utf8(bytes).map_err(|_| ProjectError::NotText {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_style_paths_resolve_from_the_project_root() {
        let root = std::env::temp_dir().join(format!("porki-project-{}", std::process::id()));
        let instructions = root.join("instructions");
        std::fs::create_dir_all(instructions.join("heartbeat")).unwrap();
        std::fs::write(instructions.join("research.md"), "# Research\n").unwrap();
        // DESIGN.md form: relative to the instructions folder.
        assert_eq!(
            resolve(&instructions, Path::new("research.md")),
            instructions.join("research.md")
        );
        // Seed form: from the project root, file present.
        assert_eq!(
            resolve(&instructions, Path::new("./instructions/research.md")),
            instructions.join("research.md")
        );
        // Seed form, heartbeat not created yet: its folder exists from the root.
        assert_eq!(
            resolve(&instructions, Path::new("./instructions/heartbeat/new.md")),
            instructions.join("heartbeat/new.md")
        );
        // Neither exists: the DESIGN.md reading wins.
        assert_eq!(
            resolve(&instructions, Path::new("heartbeat/other.md")),
            instructions.join("heartbeat/other.md")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A fresh folder holding `INSTRUCTIONS.md` with `text`; the caller removes it.
    fn project_dir(name: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("porki-project-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("INSTRUCTIONS.md");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn kinds_come_from_kind_or_else_from_role_words() {
        let (dir, path) = project_dir(
            "kinds",
            "## Agents\n\
             ### dev\n- Goal: g\n- Role: backend\n\
             ### qa\n- Goal: g\n- Role: qa\n\
             ### lead\n- Goal: g\n- Role: tech-lead\n\
             ### solo\n- Goal: g\n\
             ### odd\n- Goal: g\n- Role: qa\n- Kind: Manager\n",
        );
        let project = Project::load(&path).unwrap();
        let kinds: Vec<(&str, AgentKind)> = project
            .agents
            .iter()
            .map(|a| (a.name.as_str(), a.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("dev", AgentKind::Builder),
                ("qa", AgentKind::Reviewer),
                ("lead", AgentKind::Manager),
                ("solo", AgentKind::Builder),
                ("odd", AgentKind::Manager),
            ]
        );
        assert_eq!(project.agents[1].brief().kind, AgentKind::Reviewer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn policies_come_from_the_goals_section_or_the_defaults() {
        use crate::domain::{ApprovalPolicy, ReviewPolicy};
        let (dir, path) = project_dir(
            "policies",
            "## Agents\n### a\n- Goal: g1\n### b\n- Goal: g2\n\
             ## Goals\n### g1\n- Review: marked\n- Approve: none\n",
        );
        let project = Project::load(&path).unwrap();
        assert_eq!(
            project.policy("g1"),
            GoalPolicy {
                review: ReviewPolicy::Marked,
                approval: ApprovalPolicy::None
            }
        );
        assert_eq!(project.policy("g2"), GoalPolicy::default());
        assert!(project.instructions.context.contains("- Review: marked"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_names_the_unreadable_agent_file() {
        let dir =
            std::env::temp_dir().join(format!("porki-project-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("INSTRUCTIONS.md");
        std::fs::write(
            &path,
            "## Agents\n### a\n- Goal: g\n- Instructions: nope.md\n",
        )
        .unwrap();
        let err = Project::load(&path).unwrap_err().to_string();
        assert!(err.contains("nope.md"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
