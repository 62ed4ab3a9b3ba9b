//! A test project for the real binary: instructions declaring agents of goal `g`,
//! a plan of `t000`… in layers, and a `command` provider script that records every
//! execution (`start TASK PID`) before answering `TASK by PID`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::runtime::write_instructions;
use super::{hget, porki, temp_dir, write_script};

/// A test project: instructions with `agents`, a plan file, and a `command`
/// provider script that records `start TASK PID` lines before answering.
pub struct Fixture {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub record: PathBuf,
}

impl Fixture {
    pub fn new(name: &str, agents: &[&str], tasks: usize, layers: usize, delay: &str) -> Self {
        let dir = temp_dir(name);
        let agents: Vec<(&str, &str)> = agents.iter().map(|a| (*a, "g")).collect();
        write_instructions(&dir, &agents, false);
        let width = tasks / layers;
        let nodes: Vec<serde_json::Value> = (0..tasks)
            .map(|i| serde_json::json!({"id": format!("t{i:03}"), "title": format!("Task {i}")}))
            .collect();
        let edges: Vec<serde_json::Value> = (width..tasks)
            .map(|i| serde_json::json!({"source": format!("t{:03}", i - width), "target": format!("t{i:03}")}))
            .collect();
        let plan = serde_json::json!({"goal_id": "g", "nodes": nodes, "edges": edges});
        std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
        let record = dir.join("record.log");
        let script = dir.join("provider.sh");
        write_script(
            &script,
            format!(
                "#!/bin/sh\nread phase\nread task\ncase \"$phase\" in *plan*) sleep ${{FAULT_PLAN_DELAY:-0}}; cat '{plan}'; exit 0;; esac\n\
                 task=${{task#porki-task: g/}}\necho \"start $task $PPID\" >> '{record}'\nsleep {delay}\n\
                 echo \"{{\\\"status\\\":\\\"done\\\",\\\"notes\\\":\\\"$task by $PPID\\\"}}\"\n",
                plan = dir.join("plan.json").display(),
                record = record.display(),
            ),
        );
        Fixture {
            dir,
            script,
            record,
        }
    }

    /// Starts `porki run --until-done` on this project; stderr goes to `log`.
    pub fn start(&self, url: &str, log: &str) -> Child {
        self.command(url, log).spawn().unwrap()
    }

    /// The `porki run --until-done` command for this project; stderr goes to `log`.
    pub fn command(&self, url: &str, log: &str) -> Command {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let mut command = porki();
        command
            .args([
                "run",
                "--until-done",
                "--lease-ttl",
                "2s",
                "--llm-provider",
                "command",
            ])
            .arg("--llm-cli")
            .arg(&self.script)
            .args(["--redis-url", url, "--instructions"])
            .arg(self.dir.join("INSTRUCTIONS.md"))
            .arg("--artifacts-dir")
            .arg(self.dir.join("artifacts"))
            // Not the default `workspace/` of the test's folder, the crate:
            // each test's goals get repositories of their own.
            .arg("--workspace")
            .arg(self.dir.join("workspace/{goal}"))
            .stdout(Stdio::null())
            .stderr(log);
        command
    }

    /// The recorded executions: (task, porki pid).
    pub fn starts(&self) -> Vec<(String, u32)> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace().skip(1);
                Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
            })
            .collect()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

/// Task id → status of goal `g`, from Redis (one node or a cluster).
pub fn statuses(conn: &mut impl redis::ConnectionLike, tasks: usize) -> BTreeMap<String, String> {
    (0..tasks)
        .filter_map(|i| {
            let id = format!("t{i:03}");
            let status: Option<String> = hget(conn, &format!("task:{{g}}:{id}"), "status");
            Some((id, status?))
        })
        .collect()
}

/// The tasks in `status`.
pub fn ids_in(states: &BTreeMap<String, String>, status: &str) -> BTreeSet<String> {
    states
        .iter()
        .filter(|(_, s)| s.as_str() == status)
        .map(|(id, _)| id.clone())
        .collect()
}
