//! Operators steering live agents: heartbeat directives and instruction edits
//! while a run goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use porki::domain::TaskStatus;
use porki::project::Project;
use porki::store::prelude::*;
use porki::store::{AgentField, MemoryStore, RedisStore};

use crate::support::runtime::*;
use crate::support::{
    RedisServer, append_line, block_on, ids, nodes, plan, porki, signal, temp_dir, wait_exit,
    wait_until,
};
use nix::sys::signal::Signal;

/// A temp project whose one agent, `worker`, works goal `g` and reads its
/// heartbeat file: (the project folder, the heartbeat file).
fn worker_project(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    write_instructions(&dir, &[("worker", "g")], true);
    let heartbeat = dir.join("heartbeat/worker.md");
    (dir, heartbeat)
}

/// One process on the embedded store running plan `tasks` (no edges) for the
/// agents of `dir/INSTRUCTIONS.md`, each execution taking `delay`; see
/// `start_on_memory`.
fn start(
    dir: &Path,
    tasks: &[String],
    delay: Duration,
) -> (Arc<Record>, Arc<MemoryStore>, JoinHandle<i32>) {
    let mut provider = ScriptedProvider::new(plan("g", nodes(tasks), &[]), "p", Arc::default());
    provider.delay = delay;
    let project = Project::load(&dir.join("INSTRUCTIONS.md")).unwrap();
    start_on_memory(Clock::Real, provider, project, |_| {})
}

/// Gives a PAUSE a second to reach the agent, then asserts that no execution
/// starts during `watch`.
fn assert_no_new_claims(record: &Record, watch: Duration, when: &str) {
    std::thread::sleep(Duration::from_secs(1));
    let paused_at = record.executions().len();
    std::thread::sleep(watch);
    assert_eq!(record.executions().len(), paused_at, "no new claim {when}");
}

/// Agent `name`'s registered state, if it registered.
fn agent_state(store: &MemoryStore, name: &str) -> Option<porki::store::AgentState> {
    block_on(store.agents())
        .unwrap()
        .into_iter()
        .find(|a| a.name == name)
        .map(|a| a.state)
}

fn task_state(store: &Arc<MemoryStore>, goal: &str, task: &str) -> porki::domain::TaskState {
    block_on(store.task(goal, task)).unwrap().unwrap()
}

#[test]
fn pause_stops_new_claims_within_a_second_and_resume_continues() {
    let (dir, heartbeat) = worker_project("pause");
    let (record, memory, run) = start(&dir, &ids("t", 12), Duration::from_millis(300));
    wait_until(Duration::from_secs(10), "the first task runs", || {
        !record.executions().is_empty()
    });
    append_line(&heartbeat, "PAUSE");
    assert_no_new_claims(&record, Duration::from_millis(1500), "while paused");
    let running = block_on(memory.goal_status("g"))
        .unwrap()
        .unwrap()
        .count(TaskStatus::Running);
    assert_eq!(running, 0, "the held task was released");
    assert!(!run.is_finished());
    append_line(&heartbeat, "RESUME");
    assert_eq!(join_within(run, LIMIT), 0, "the run completes after RESUME");
}

#[test]
fn drop_task_stops_the_running_call_and_marks_the_task_failed() {
    let (dir, heartbeat) = worker_project("drop");
    let tasks: Vec<String> = vec!["slow".into(), "quick".into()];
    let (record, memory, run) = start(&dir, &tasks, Duration::from_secs(30));
    wait_until(Duration::from_secs(10), "a task runs", || {
        !record.executions().is_empty()
    });
    let running = record.executions()[0].task.clone();
    let dropped_at = Instant::now();
    append_line(&heartbeat, &format!("DROP-TASK {running}"));
    wait_until(Duration::from_secs(1), "the dropped task is FAILED", || {
        task_state(&memory, "g", &running).status == TaskStatus::Failed
    });
    // The goal now has a FAILED task: no more claims, and --until-done exits 1.
    assert_eq!(join_within(run, Duration::from_secs(5)), 1);
    assert!(
        dropped_at.elapsed() < Duration::from_secs(5),
        "the 30 s call was stopped, not awaited"
    );
    assert_eq!(record.executions().len(), 1);
    assert!(
        record.executions()[0].finished.is_none(),
        "the dropped call never finished"
    );
    let task = task_state(&memory, "g", &running);
    assert!(task.last_error.unwrap().contains("dropped"));
}

#[test]
fn elevate_changes_which_task_is_claimed_next() {
    let (dir, heartbeat) = worker_project("elevate");
    std::fs::create_dir_all(dir.join("heartbeat")).unwrap();
    std::fs::write(&heartbeat, "# control file\nPAUSE\n").unwrap();
    // A cursor stored at the file's top: its lines are not history, so the agent
    // starts paused.
    let memory = Arc::new(MemoryStore::new());
    block_on(memory.set_agent_value("worker", AgentField::HeartbeatCursor, Some(TOP))).unwrap();
    let mut provider =
        ScriptedProvider::new(plan("g", nodes(&ids("t", 5)), &[]), "p", Arc::default());
    provider.delay = Duration::from_millis(5);
    let record = provider.record.clone();
    let project = Project::load(&dir.join("INSTRUCTIONS.md")).unwrap();
    let run = spawn_runtime(
        StoreKind::Memory(memory.clone()),
        Arc::new(provider),
        project,
        |_| {},
    );
    wait_until(Duration::from_secs(10), "the plan is written", || {
        block_on(memory.goal_status("g")).unwrap().is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(record.executions().is_empty(), "paused from the start");
    append_line(&heartbeat, "ELEVATE t03 100");
    append_line(&heartbeat, "RESUME");
    assert_eq!(join_within(run, LIMIT), 0);
    assert_eq!(
        record.executions()[0].task,
        "t03",
        "the elevated task ran first"
    );
}

/// A stored heartbeat cursor at the top of any file (no lines applied).
const TOP: &str = "0:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What an earlier run left in the heartbeat file: each line would stop, fail
/// or freeze this run if it were applied again.
const OLD_LINES: &str = "STOP\nDROP-TASK t00\nPAUSE\nREJECT-TASK t01 redo it\n";

#[test]
fn lines_in_a_heartbeat_file_before_the_first_start_are_history() {
    let (dir, heartbeat) = worker_project("history");
    std::fs::create_dir_all(dir.join("heartbeat")).unwrap();
    std::fs::write(&heartbeat, OLD_LINES).unwrap();
    let (record, memory, run) = start(&dir, &ids("t", 3), Duration::from_millis(5));
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "the old lines were applied again"
    );
    assert_eq!(record.executions().len(), 3);
    for task in ids("t", 3) {
        assert_eq!(task_state(&memory, "g", &task).status, TaskStatus::Done);
    }
    assert!(block_on(memory.agent_errors("worker")).unwrap().is_empty());
}

#[test]
fn lines_in_a_heartbeat_file_before_the_first_start_are_history_on_redis() {
    let server = RedisServer::start();
    let (dir, heartbeat) = worker_project("history-redis");
    std::fs::create_dir_all(dir.join("heartbeat")).unwrap();
    std::fs::write(&heartbeat, OLD_LINES).unwrap();
    let store = StoreKind::Redis(server.url());
    let start = || {
        let record = Arc::new(Record::default());
        let provider =
            ScriptedProvider::new(plan("g", nodes(&ids("t", 3)), &[]), "p", record.clone());
        let project = Project::load(&dir.join("INSTRUCTIONS.md")).unwrap();
        (
            spawn_runtime(store.clone(), Arc::new(provider), project, |_| {}),
            record,
        )
    };
    let (run, record) = start();
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "the old lines were applied again"
    );
    assert_eq!(record.executions().len(), 3);
    let tasks = final_tasks(&store, "g");
    assert!(tasks.values().all(|t| t.0 == TaskStatus::Done), "{tasks:?}");
    // The cursor now stands at the file's end, in that file.
    let cursor: String = redis::cmd("GET")
        .arg("agent:{worker}:heartbeat_cursor")
        .query(&mut server.conn())
        .unwrap();
    let file = std::path::absolute(&heartbeat).unwrap();
    assert!(
        cursor.starts_with("4:") && cursor.ends_with(&*file.to_string_lossy()),
        "{cursor}"
    );
}

#[test]
fn an_editor_style_save_is_seen_and_bad_lines_are_reported_once() {
    let (dir, heartbeat) = worker_project("rename");
    let (record, memory, run) = start(&dir, &ids("t", 12), Duration::from_millis(300));
    wait_until(
        Duration::from_secs(10),
        "the heartbeat file exists and a task runs",
        || heartbeat.exists() && !record.executions().is_empty(),
    );
    // Write a temp file and rename it over the original, as editors do.
    let mut text = std::fs::read_to_string(&heartbeat).unwrap();
    text.push_str("FROBNICATE now\nPAUSE\n");
    let temp = dir.join("heartbeat/.worker.md.swp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, &heartbeat).unwrap();
    assert_no_new_claims(
        &record,
        Duration::from_millis(1200),
        "after PAUSE from the renamed file",
    );
    let errors = block_on(memory.agent_errors("worker")).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("FROBNICATE"), "{errors:?}");
    append_line(&heartbeat, "RESUME");
    assert_eq!(join_within(run, LIMIT), 0);
    assert_eq!(
        block_on(memory.agent_errors("worker")).unwrap().len(),
        1,
        "reported once"
    );
}

#[test]
fn a_restart_after_drop_task_does_not_drop_again() {
    let server = RedisServer::start();
    let (dir, heartbeat) = worker_project("replay");
    let store = StoreKind::Redis(server.url());
    let start = |delay: Duration| {
        let record = Arc::new(Record::default());
        let dag = plan("g", nodes(&["victim", "other"]), &[]);
        let mut provider = ScriptedProvider::new(dag, "p", record.clone());
        provider.delay = delay;
        let project = Project::load(&dir.join("INSTRUCTIONS.md")).unwrap();
        (
            spawn_runtime(store.clone(), Arc::new(provider), project, |_| {}),
            record,
        )
    };
    let url = server.url();
    let goal_planned = || {
        block_on(async {
            RedisStore::connect(&url)
                .await
                .unwrap()
                .goal_status("g")
                .await
                .unwrap()
                .is_some()
        })
    };
    let (first, _) = start(Duration::from_millis(200));
    wait_until(Duration::from_secs(10), "the plan is written", goal_planned);
    append_line(&heartbeat, "DROP-TASK victim");
    assert_eq!(
        join_within(first, LIMIT),
        1,
        "a dropped task fails the goal"
    );
    assert_eq!(final_tasks(&store, "g")["victim"].0, TaskStatus::Failed);

    // The operator asks for a retry; the second run must not replay the DROP-TASK.
    block_on(async {
        RedisStore::connect(&url)
            .await
            .unwrap()
            .retry_task("g", "victim")
            .await
            .unwrap()
    });
    let (second, record) = start(Duration::from_millis(5));
    assert_eq!(join_within(second, LIMIT), 0);
    assert_eq!(final_tasks(&store, "g")["victim"].0, TaskStatus::Done);
    assert_eq!(record.counts()["victim"], 1);
}

#[test]
fn editing_the_instructions_adds_and_removes_agents_and_a_bad_edit_changes_nothing() {
    let dir = temp_dir("reload");
    write_instructions(&dir, &[("first", "g")], false);
    let (record, memory, run) = start(&dir, &ids("t", 30), Duration::from_millis(100));
    wait_until(Duration::from_secs(10), "work starts", || {
        record.executions().len() >= 2
    });

    // A bad edit: refused, `first` keeps working.
    std::fs::write(
        dir.join("INSTRUCTIONS.md"),
        "## Agents\n### first\n- Role: x\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let before = record.executions().len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        record.executions().len() > before,
        "a bad edit leaves the running agent alone"
    );

    // Replace `first` by `second`.
    write_instructions(&dir, &[("second", "g")], false);
    let state_of = |name: &str| agent_state(&memory, name);
    wait_until(Duration::from_secs(5), "first is stopped", || {
        state_of("first") == Some(porki::store::AgentState::Stopped)
    });
    // From here on, `first` must claim nothing.
    let removed_at = now_ms();
    wait_until(Duration::from_secs(5), "second runs tasks", || {
        block_on(memory.tasks("g"))
            .unwrap()
            .iter()
            .any(|t| t.owner.as_deref() == Some("second"))
    });
    assert_eq!(join_within(run, LIMIT), 0);
    let tasks = block_on(memory.tasks("g")).unwrap();
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Done));
    assert!(
        tasks
            .iter()
            .filter(|t| t.owner.as_deref() == Some("first"))
            .all(|t| t.started_ms.unwrap() < removed_at),
        "the removed agent claimed nothing after its removal"
    );
    assert_eq!(state_of("first"), Some(porki::store::AgentState::Stopped));
}

/// An edit that adds a goal and an agent whose heartbeat file lies in that goal's
/// workspace, where a CLI agent could rewrite it, is refused like any bad edit
/// (as `porki run` refuses it at start), naming the folder and the file; the
/// same edit with the heartbeat elsewhere applies.
#[test]
fn an_edit_putting_a_heartbeat_in_a_goals_workspace_is_refused_and_changes_nothing() {
    let dir = temp_dir("reload-reach");
    let instructions = dir.join("INSTRUCTIONS.md");
    let declare = |more: &str| {
        std::fs::write(
            &instructions,
            format!("# Test\n\n## Agents\n\n### first\n- Goal: g\n- Cadence: 1s\n{more}"),
        )
        .unwrap()
    };
    declare("");
    let log = dir.join("stderr.log");
    // The offline provider writes files, as a CLI agent does.
    let mut child = KillOnDrop(
        porki()
            .args(["run", "--llm-provider", "offline", "--log-style", "concise"])
            .args(["--redis-url", "memory://", "--instructions"])
            .arg(&instructions)
            .arg("--workspace")
            .arg(dir.join("work/{goal}"))
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = |agent: &str| {
        read()
            .lines()
            .any(|l| l.contains("agent started") && l.contains(&format!("agent={agent} ")))
    };
    wait_until(Duration::from_secs(10), "first starts", || started("first"));

    declare("\n### spy\n- Goal: g2\n- Heartbeat: work/g2/spy.md\n");
    wait_until(Duration::from_secs(10), "the edit is refused", || {
        read().contains("the instructions edit is refused")
    });
    let refusal = read()
        .lines()
        .find(|l| l.contains("the instructions edit is refused"))
        .unwrap()
        .to_string();
    let (folder, file) = (dir.join("work/g2"), dir.join("work/g2/spy.md"));
    assert!(
        refusal.contains(&format!("({}) holds {}", folder.display(), file.display())),
        "the folder and the file are named: {refusal}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let text = read();
    assert!(!started("spy"), "the refused agent started: {text}");
    assert!(
        !text.contains("goal=g2"),
        "the refused goal was taken up: {text}"
    );
    assert!(
        !text.contains("instructions changed for this agent"),
        "the running agent was left as it was: {text}"
    );

    declare("\n### spy\n- Goal: g2\n- Heartbeat: heartbeat/spy.md\n");
    wait_until(Duration::from_secs(10), "the fixed edit applies", || {
        started("spy")
    });
    signal(&child.0, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child.0, LIMIT), 0, "{}", read());
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `worker` with a cadence of `cadence` into the instructions of `dir`.
fn write_worker(dir: &Path, cadence: &str) {
    std::fs::write(
        dir.join("INSTRUCTIONS.md"),
        format!("# Test\n\n## Agents\n\n### worker\n- Goal: g\n- Cadence: {cadence}\n"),
    )
    .unwrap();
}

#[test]
fn an_agent_whose_declaration_changes_is_started_again_with_it() {
    // Regression: the Supervisor stopped a changed agent and never started it again
    // (1 of 40 tasks done, `--until-done` exiting 1).
    let dir = temp_dir("redeclared");
    write_worker(&dir, "2s");
    let (record, memory, run) = start(&dir, &ids("t", 40), Duration::from_millis(50));
    wait_until(Duration::from_secs(10), "work starts", || {
        !record.executions().is_empty()
    });
    write_worker(&dir, "3s");
    assert_eq!(join_within(run, LIMIT), 0, "every task is done");
    let tasks = block_on(memory.tasks("g")).unwrap();
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Done));
}

#[test]
fn an_agent_removed_and_declared_again_runs_again() {
    // Regression: a removed agent added back with the same declaration never ran.
    let dir = temp_dir("readded");
    write_instructions(&dir, &[("worker", "g"), ("helper", "g")], false);
    let (record, memory, run) = start(&dir, &ids("t", 60), Duration::from_millis(100));
    let state_of = |name: &str| agent_state(&memory, name);
    wait_until(Duration::from_secs(10), "both agents work", || {
        record.executions().len() >= 2
    });
    write_instructions(&dir, &[("helper", "g")], false);
    wait_until(Duration::from_secs(10), "worker is removed", || {
        state_of("worker") == Some(porki::store::AgentState::Stopped)
    });
    let readded_at = now_ms();
    write_instructions(&dir, &[("worker", "g"), ("helper", "g")], false);
    wait_until(Duration::from_secs(10), "worker claims again", || {
        block_on(memory.tasks("g")).unwrap().iter().any(|t| {
            t.owner.as_deref() == Some("worker") && t.started_ms.is_some_and(|s| s > readded_at)
        })
    });
    assert_eq!(join_within(run, LIMIT), 0, "every task is done");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn retry_task_brings_a_dropped_task_back_and_the_goal_completes() {
    let (dir, heartbeat) = worker_project("retry");
    let (_, memory, run) = start(&dir, &ids("t", 6), Duration::from_millis(150));
    wait_until(Duration::from_secs(10), "the plan is written", || {
        block_on(memory.goal_status("g")).unwrap().is_some()
    });
    append_line(&heartbeat, "DROP-TASK t05");
    wait_until(Duration::from_secs(2), "t05 is FAILED", || {
        task_state(&memory, "g", "t05").status == TaskStatus::Failed
    });
    append_line(&heartbeat, "RETRY-TASK t05");
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "the retried task ran and the goal completed"
    );
    assert_eq!(task_state(&memory, "g", "t05").status, TaskStatus::Done);
}

#[test]
fn stop_ends_the_agent_cleanly_and_it_is_not_restarted() {
    let (dir, heartbeat) = worker_project("stop");
    let (record, memory, run) = start(&dir, &ids("t", 20), Duration::from_millis(200));
    let snapshot =
        || block_on(memory.agent_value("worker", porki::store::AgentField::Memory)).unwrap();
    wait_until(
        Duration::from_secs(10),
        "a task is done and remembered",
        || snapshot().is_some(),
    );
    assert!(!record.executions().is_empty());
    append_line(&heartbeat, "FLUSH-MEMORY");
    append_line(&heartbeat, "STOP");
    // The only agent stopped for good: --until-done reports the goal as stranded.
    assert_eq!(join_within(run, Duration::from_secs(10)), 1);
    let agents = block_on(memory.agents()).unwrap();
    assert_eq!(agents[0].state, porki::store::AgentState::Stopped);
    let status = block_on(memory.goal_status("g")).unwrap().unwrap();
    assert_eq!(
        status.count(TaskStatus::Running),
        0,
        "the held task was given back"
    );
    assert!(status.count(TaskStatus::Done) < 20);
    assert_eq!(snapshot(), None, "FLUSH-MEMORY cleared the snapshot");
}
