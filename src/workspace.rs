//! Where a goal's work happens: its workspace (the working directory of every CLI
//! call for the goal, shared by the goal's agents so later tasks see earlier
//! tasks' files) and its artifacts folder (inside the workspace unless
//! `--artifacts-dir` puts it elsewhere). Neither may hold a file porki reads to
//! steer the run ([`Workspaces::keep_out_of_reach`]).

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

    /// Refuses a goal's workspace or artifacts folder that holds one of `files`
    /// (symlinks followed): a CLI agent may write anywhere in them.
    pub fn keep_out_of_reach(
        &self,
        goals: &[String],
        files: &[PathBuf],
    ) -> Result<(), InReachError> {
        let files: Vec<(PathBuf, &PathBuf)> = files.iter().map(|f| (real(f), f)).collect();
        for goal in goals {
            let ws = self.for_goal(goal);
            for folder in [&ws.dir, &ws.artifacts] {
                let inside = real(folder);
                if let Some((_, file)) = files.iter().find(|(real, _)| real.starts_with(&inside)) {
                    return Err(InReachError {
                        goal: goal.clone(),
                        folder: folder.clone(),
                        file: (*file).clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A goal's folder that holds a file porki reads to steer the run.
#[derive(Debug, thiserror::Error)]
#[error(
    "the workspace or artifacts folder of goal {goal} ({folder}) holds {file}, which porki reads to steer the run: an agent allowed to edit there could rewrite it (and approve or drop its own work); give --workspace (and --artifacts-dir) a folder that holds neither the instructions nor the agents' and heartbeat files, e.g. the default workspace/{{goal}} next to the instructions"
)]
pub struct InReachError {
    /// The goal.
    pub goal: String,
    /// Its workspace or artifacts folder.
    pub folder: PathBuf,
    /// The file inside it.
    pub file: PathBuf,
}

/// `path` as the kernel would resolve it, symlinks included, for a path that may
/// not exist yet: its deepest existing ancestor resolved, the rest appended.
fn real(path: &Path) -> PathBuf {
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let path = absolute(path, &base);
    let mut rest = Vec::new();
    let mut existing = path.as_path();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return rest.iter().rev().fold(resolved, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.clone(),
        }
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

    /// Whether a path an answer names (relative ones from the workspace) is an
    /// existing file or folder inside the workspace or the artifacts folder, as
    /// the kernel resolves it (`..` and symlinks followed).
    pub async fn holds(&self, path: &str) -> bool {
        let Ok(target) = tokio::fs::canonicalize(self.dir.join(path)).await else {
            return false;
        };
        for root in [&self.dir, &self.artifacts] {
            if let Ok(root) = tokio::fs::canonicalize(root).await
                && target.starts_with(&root)
            {
                return true;
            }
        }
        false
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

    #[test]
    fn a_workspace_holding_a_control_file_is_refused() {
        let root = std::env::temp_dir().join(format!("porki-ws-reach-{}", std::process::id()));
        std::fs::create_dir_all(root.join("project/heartbeat")).unwrap();
        std::os::unix::fs::symlink(root.join("project"), root.join("link")).unwrap();
        let instructions = root.join("project/INSTRUCTIONS.md");
        std::fs::write(&instructions, "x").unwrap();
        // Not created yet: heartbeat files may appear later.
        let heartbeat = root.join("project/heartbeat/a.md");
        let files = [instructions.clone(), heartbeat.clone()];
        let goals = ["g".to_string()];
        let check = |workspace: &str, artifacts: Option<&str>| {
            Workspaces::new(Path::new(workspace), artifacts.map(Path::new), &root)
                .keep_out_of_reach(&goals, &files)
        };
        // Beside the instructions, with artifacts inside: fine.
        check("project/workspace/{goal}", None).unwrap();
        let err = check("project", None).unwrap_err();
        assert_eq!(
            (&err.file, &err.folder),
            (&instructions, &root.join("project"))
        );
        assert!(err.to_string().contains("--workspace"), "{err}");
        // Through a symlink, and through an artifacts folder elsewhere.
        assert_eq!(check("link/heartbeat", None).unwrap_err().file, heartbeat);
        let goals = ["project".to_string()];
        let err = Workspaces::new(Path::new("ws/{goal}"), Some(Path::new(".")), &root)
            .keep_out_of_reach(&goals, &files)
            .unwrap_err();
        assert_eq!(err.folder, root.join("project"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn only_paths_that_resolve_inside_hold() {
        let root = std::env::temp_dir().join(format!("porki-ws-holds-{}", std::process::id()));
        let ws =
            Workspaces::new(Path::new("w/{goal}"), Some(Path::new("out")), &root).for_goal("g");
        ws.create().await.unwrap();
        std::fs::write(ws.dir.join("a.md"), "a").unwrap();
        std::fs::write(ws.artifacts.join("b.md"), "b").unwrap();
        std::fs::write(root.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), ws.dir.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(ws.dir.join("a.md"), ws.dir.join("inner.md")).unwrap();
        let outside = root.join("secret.txt").display().to_string();
        let artifact = ws.artifacts.join("b.md").display().to_string();
        for (path, holds) in [
            ("a.md", true),
            ("./a.md", true),
            ("inner.md", true),
            (artifact.as_str(), true),
            ("missing.md", false),
            ("../../secret.txt", false),
            (outside.as_str(), false),
            ("link.txt", false),
        ] {
            assert_eq!(ws.holds(path).await, holds, "{path}");
        }
        let _ = std::fs::remove_dir_all(&root);
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
