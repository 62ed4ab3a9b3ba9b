//! Worktree isolation (docs/isolation.md, issue 20) proven with the real
//! `porki` binary, Debian's `git` and a private `redis-server`: a `command`
//! provider stands in for the model and edits files in its working directory,
//! which is the attempt's worktree.
//!
//! - `crash`: kill -9 between commit and merge and between merge and
//!   completion; a holder stopped past its lease (SIGSTOP) never merges.
//! - `conflicts`: two builders edit one file at once; a merge task resolves
//!   it; the bound on merge tasks.
//! - `user_repo`: a user's repository with uncommitted changes is left exactly
//!   as it was.
//! - `cleanup`: the reaper, `git worktree prune` at the cleanup, `porki gc`
//!   (`--keep-branches`).

mod cleanup;
mod conflicts;
mod crash;
mod user_repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

pub use crate::support::{git_in, git_output};
use crate::support::{hget, porki, temp_dir, write_script};

/// The goal every project here works on.
pub const GOAL: &str = "g";

/// The provider: answers the plan call with `plan.json`; for a task, records
/// `start TASK PID DIR`, then sources `tasks/<task>.sh` in its working
/// directory (the worktree) if the test wrote one, else writes `<task>.txt`
/// (a task) or resolves every conflict keeping both sides (a merge task).
const PROVIDER: &str = r#"#!/bin/sh
dir='@DIR@'
read phase
read task
case "$phase" in *plan*) cat "$dir/plan.json"; exit 0;; esac
task=${task#porki-task: g/}
echo "start $task $PPID $(pwd)" >> "$dir/record.log"
# Waits (at most 30 s) until the command "$@" succeeds.
until_ok() {
  i=0
  until "$@"; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then echo "gave up waiting until: $*" >&2; exit 3; fi
    sleep 0.05
  done
}
mark() { touch "$dir/marks/$1"; }
marked() { [ -e "$dir/marks/$1" ]; }
merged() { git log --format=%B porki/g -- 2>/dev/null | grep -qx "Porki-Task: $1"; }
resolve() {
  for f in $(grep -rl --exclude-dir=.git '^<<<<<<< ' .); do
    sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' "$f"
  done
}
if [ -f "$dir/tasks/$task.sh" ]; then
  . "$dir/tasks/$task.sh"
else
  case "$task" in
    *.merge*) resolve ;;
    *) echo "work of $task" > "$task.txt" ;;
  esac
fi
echo "{\"status\":\"done\",\"notes\":\"$task by $PPID\"}"
"#;

/// A project for the real binary: a plan for goal `g`, instructions files
/// declaring agents, a workspace folder and the recording provider.
pub struct Project {
    /// The test's folder.
    pub dir: PathBuf,
    /// The goal's workspace (`--workspace`).
    pub workspace: PathBuf,
    script: PathBuf,
}

/// A plan of `tasks` (id, the ids it comes after).
pub fn plan(tasks: &[(&str, &[&str])]) -> Value {
    let nodes: Vec<Value> = tasks
        .iter()
        .map(|(id, _)| json!({"id": id, "title": format!("Task {id}")}))
        .collect();
    let edges: Vec<Value> = tasks
        .iter()
        .flat_map(|(id, after)| {
            after
                .iter()
                .map(move |a| json!({"source": a, "target": id}))
        })
        .collect();
    json!({"goal_id": GOAL, "nodes": nodes, "edges": edges})
}

impl Project {
    /// A project named `name` planning `plan`, its workspace a fresh folder
    /// (no repository: porki makes one).
    pub fn new(name: &str, plan: &Value) -> Self {
        let dir = temp_dir(name);
        Self::in_workspace(dir.clone(), dir.join("workspace"), plan)
    }

    /// A project in `dir` whose workspace is `workspace`.
    pub fn in_workspace(dir: PathBuf, workspace: PathBuf, plan: &Value) -> Self {
        std::fs::create_dir_all(dir.join("tasks")).unwrap();
        std::fs::create_dir_all(dir.join("marks")).unwrap();
        std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
        let script = dir.join("provider.sh");
        write_script(
            &script,
            PROVIDER.replace("@DIR@", &dir.display().to_string()),
        );
        Self {
            dir,
            workspace,
            script,
        }
    }

    /// What the provider does for `task` (shell, sourced in the worktree).
    pub fn behave(&self, task: &str, shell: &str) {
        std::fs::write(self.dir.join("tasks").join(format!("{task}.sh")), shell).unwrap();
    }

    /// Writes instructions file `name` declaring `agents` (name, role) of goal
    /// `g`, with no reviews and no approvals.
    pub fn instructions(&self, name: &str, agents: &[(&str, Option<&str>)]) -> PathBuf {
        let mut text = format!(
            "# Test\n\n## Goals\n### {GOAL}\n- Review: none\n- Approve: none\n\n## Agents\n"
        );
        for (agent, role) in agents {
            text.push_str(&format!("\n### {agent}\n- Goal: {GOAL}\n- Cadence: 1s\n"));
            if let Some(role) = role {
                text.push_str(&format!("- Role: {role}\n"));
            }
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `porki run --until-done` on `instructions` and store `url`, 2 s leases;
    /// stderr goes to `log` in the test's folder.
    pub fn command(&self, url: &str, instructions: &Path, log: &str) -> Command {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let mut command = porki();
        command
            .args(["run", "--until-done", "--lease-ttl", "2s"])
            .args(["--llm-provider", "command", "--llm-cli"])
            .arg(&self.script)
            .args(["--redis-url", url, "--instructions"])
            .arg(instructions)
            .arg("--workspace")
            .arg(&self.workspace)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log);
        command
    }

    /// A log written by [`Project::command`].
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// The provider's runs: (task, porki's pid), in order.
    pub fn runs(&self) -> Vec<(String, u32)> {
        std::fs::read_to_string(self.dir.join("record.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace().skip(1);
                Some((words.next()?.to_string(), words.next()?.parse().ok()?))
            })
            .collect()
    }

    /// How many times the provider ran `task`.
    pub fn runs_of(&self, task: &str) -> usize {
        self.runs().iter().filter(|(t, _)| t == task).count()
    }

    /// git's stdout in the workspace, which must succeed.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.workspace, args)
    }

    /// How many commits of each task `git log --no-merges porki/g` shows
    /// (by their `Porki-Task:` trailer).
    pub fn task_commits(&self) -> BTreeMap<String, usize> {
        task_commits(&self.git(&["log", "--no-merges", "--format=%B%x00", "porki/g", "--"]))
    }

    /// The tasks the goal branch holds, by the trailers of every commit on it.
    pub fn merged_tasks(&self) -> BTreeMap<String, usize> {
        task_commits(&self.git(&["log", "--format=%B%x00", "porki/g", "--"]))
    }

    /// The goal branch's tip.
    pub fn tip(&self) -> String {
        self.git(&["rev-parse", "porki/g"]).trim().to_string()
    }

    /// The worktrees git lists, but the main one.
    pub fn worktrees(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .skip(1)
            .map(str::to_string)
            .collect()
    }
}

/// Tasks by how many of the commits in `log` (`%B%x00` records) carry their
/// `Porki-Task:` trailer.
fn task_commits(log: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in log.split('\0') {
        if let Some(task) = message.lines().find_map(|l| l.strip_prefix("Porki-Task: ")) {
            *counts.entry(task.trim().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// A task's field in the store.
pub fn task_field(conn: &mut redis::Connection, task: &str, field: &str) -> Option<String> {
    hget(conn, &format!("task:{{{GOAL}}}:{task}"), field)
}

/// `counts` as task → count pairs, for comparing with a literal.
pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}
