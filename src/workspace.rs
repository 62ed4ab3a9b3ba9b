//! Where a goal's work happens: its workspace (the working directory of every CLI
//! call for the goal, shared by the goal's agents so later tasks see earlier
//! tasks' files) and its artifacts folder (inside the workspace unless
//! `--artifacts-dir` puts it elsewhere).

use std::path::{Component, Path, PathBuf};

/// The variable a workspace template replaces with the goal id.
pub const GOAL_VARIABLE: &str = "{goal}";

/// The default workspace template: one folder per goal below `./workspace`.
pub const DEFAULT_WORKSPACE: &str = "workspace/{goal}";

/// Name of the artifacts folder inside a workspace.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// How every goal's workspace and artifacts folder are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspaces {
    /// Absolute workspace path; `{goal}` in it becomes the goal id.
    template: PathBuf,
    /// Absolute artifacts root (one folder per goal below it); `None`: inside the workspace.
    artifacts_root: Option<PathBuf>,
}

impl Workspaces {
    /// Workspaces at `template` (`{goal}` becomes the goal id; without it every goal
    /// shares the folder) and artifacts under `artifacts_root/<goal>`, or inside each
    /// workspace when `None`. Relative paths are taken from `base` (the process's
    /// working directory at start).
    pub fn new(template: &Path, artifacts_root: Option<&Path>, base: &Path) -> Self {
        Self {
            template: absolute(template, base),
            artifacts_root: artifacts_root.map(|root| absolute(root, base)),
        }
    }

    /// Workspaces relative to the current directory.
    pub fn from_current_dir(template: &Path, artifacts_root: Option<&Path>) -> Self {
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::new(template, artifacts_root, &base)
    }

    /// The workspace of one goal (its id is key-safe, so it is one path step).
    pub fn for_goal(&self, goal: &str) -> GoalWorkspace {
        let template = self.template.to_string_lossy();
        let dir = if template.contains(GOAL_VARIABLE) {
            PathBuf::from(template.replace(GOAL_VARIABLE, goal))
        } else {
            self.template.clone()
        };
        let artifacts = match &self.artifacts_root {
            Some(root) => root.join(goal),
            None => dir.join(ARTIFACTS_DIR),
        };
        GoalWorkspace { dir, artifacts }
    }
}

impl Default for Workspaces {
    fn default() -> Self {
        Self::from_current_dir(Path::new(DEFAULT_WORKSPACE), None)
    }
}

/// One goal's folders, both absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalWorkspace {
    /// The working directory of the goal's CLI calls.
    pub dir: PathBuf,
    /// Where the goal's tasks write their files.
    pub artifacts: PathBuf,
}

impl GoalWorkspace {
    /// Creates both folders if they do not exist.
    pub async fn create(&self) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        tokio::fs::create_dir_all(&self.artifacts).await
    }

    /// The artifacts folder as prompts name it: relative to the workspace when it is
    /// inside, absolute otherwise.
    pub fn artifacts_in_prompt(&self) -> PathBuf {
        self.artifacts
            .strip_prefix(&self.dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| self.artifacts.clone())
    }

    /// Folders outside the workspace that the goal's calls must be able to write
    /// (the artifacts folder when `--artifacts-dir` put it elsewhere).
    pub fn outside_dirs(&self) -> Vec<PathBuf> {
        if self.artifacts.starts_with(&self.dir) {
            Vec::new()
        } else {
            vec![self.artifacts.clone()]
        }
    }

    /// A path an answer names, as a path on disk: relative ones are taken from the
    /// workspace.
    pub fn resolve(&self, path: &str) -> PathBuf {
        absolute(Path::new(path), &self.dir)
    }
}

/// `path` made absolute against `base`, with `.` and `..` steps folded.
fn absolute(path: &Path, base: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_goal_gets_its_folder_with_artifacts_inside() {
        let spaces = Workspaces::new(Path::new("workspace/{goal}"), None, Path::new("/srv/run"));
        let ws = spaces.for_goal("goal-001");
        assert_eq!(ws.dir, Path::new("/srv/run/workspace/goal-001"));
        assert_eq!(
            ws.artifacts,
            Path::new("/srv/run/workspace/goal-001/artifacts")
        );
        assert_eq!(ws.artifacts_in_prompt(), Path::new("artifacts"));
        assert!(ws.outside_dirs().is_empty());
    }

    #[test]
    fn a_workspace_without_the_goal_variable_is_shared_by_every_goal() {
        let spaces = Workspaces::new(Path::new("/repo"), None, Path::new("/elsewhere"));
        assert_eq!(spaces.for_goal("a").dir, spaces.for_goal("b").dir);
        assert_eq!(spaces.for_goal("a").dir, Path::new("/repo"));
    }

    #[test]
    fn an_artifacts_dir_elsewhere_is_per_goal_absolute_and_outside() {
        let spaces = Workspaces::new(
            Path::new("./ws/{goal}/"),
            Some(Path::new("../out")),
            Path::new("/srv/run"),
        );
        let ws = spaces.for_goal("g");
        assert_eq!(ws.dir, Path::new("/srv/run/ws/g"));
        assert_eq!(ws.artifacts, Path::new("/srv/out/g"));
        assert_eq!(ws.artifacts_in_prompt(), Path::new("/srv/out/g"));
        assert_eq!(ws.outside_dirs(), vec![PathBuf::from("/srv/out/g")]);
    }

    #[test]
    fn answer_paths_resolve_against_the_workspace() {
        let ws = Workspaces::new(Path::new("/w/{goal}"), None, Path::new("/")).for_goal("g");
        assert_eq!(
            ws.resolve("artifacts/a.md"),
            Path::new("/w/g/artifacts/a.md")
        );
        assert_eq!(ws.resolve("./b.md"), Path::new("/w/g/b.md"));
        assert_eq!(ws.resolve("/abs/c.md"), Path::new("/abs/c.md"));
    }

    #[tokio::test]
    async fn create_makes_both_folders() {
        let root = std::env::temp_dir().join(format!("porki-ws-{}", std::process::id()));
        let ws = Workspaces::new(Path::new("{goal}"), None, &root).for_goal("g");
        ws.create().await.unwrap();
        assert!(ws.artifacts.is_dir());
        let _ = std::fs::remove_dir_all(&root);
    }
}
