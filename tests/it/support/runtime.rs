//! Running the orchestrator in-process for tests: a scripted LLM provider that
//! records every execution, and a helper that runs one actix System per call
//! (each is one "process" with its own store connection).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use async_trait::async_trait;
use porki::domain::{Dag, TaskStatus};
use porki::llm::prompt::prompt_task;
use porki::llm::{LlmError, LlmProvider, LlmRequest, LlmResponse, Phase, Usage};
use porki::project::Project;
use porki::store::prelude::*;
use porki::store::{MemoryStore, RedisStore};

use super::{Prefixed, RedisCluster};
use porki::supervisor::{RunSettings, Supervisor, SupervisorConfig};

use super::{block_on, poll};

/// How long a test lets one orchestrator run before failing.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What the provider does when asked to execute a task.
#[derive(Clone)]
pub enum Behaviour {
    /// Answer done after the delay.
    Succeed,
    /// Block the whole process (its actix thread) for this long, then answer: a stall.
    Stall(Duration),
    /// Panic.
    Panic,
    /// Answer this JSON after the delay (a review's verdict, a failure).
    Answer(serde_json::Value),
}

/// One execution the provider saw.
#[derive(Debug, Clone)]
pub struct Execution {
    pub task: String,
    pub process: String,
    pub started: Instant,
    /// When it answered.
    pub finished: Option<Instant>,
    /// When it stopped: answered, or cancelled (its call dropped).
    pub ended: Option<Instant>,
    /// Dependencies that were not DONE in the store when it started.
    pub unfinished_deps: Vec<String>,
    /// The execute prompt it was given.
    pub prompt: String,
    /// How many tasks of its goal were RUNNING (claimed) when it started, with
    /// `ScriptedProvider::count_running`.
    pub running: Option<usize>,
    /// From its task's claim (`started_ms`) to its start, with
    /// `ScriptedProvider::count_running`.
    pub lease_waited: Option<Duration>,
}

/// Shared record of what every provider (of every process in the test) did.
#[derive(Default)]
pub struct Record {
    pub executions: Mutex<Vec<Execution>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Record {
    pub fn executions(&self) -> Vec<Execution> {
        self.executions.lock().unwrap().clone()
    }

    /// How many times each task was executed (started).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in self.executions() {
            *counts.entry(e.task).or_default() += 1;
        }
        counts
    }
}

/// Picks the behaviour of an execution from the task and how many times it ran before.
pub type ChooseBehaviour = dyn Fn(&str, usize) -> Behaviour + Send + Sync;

/// A scripted provider: plans with a fixed DAG, executes by the behaviour chosen per call.
pub struct ScriptedProvider {
    pub plan: Dag,
    pub process: String,
    pub delay: Duration,
    pub record: Arc<Record>,
    pub store: Mutex<Option<Arc<dyn Store>>>,
    /// The task answered to every select call (`--llm-select`).
    pub pick: Option<String>,
    /// Decides the behaviour of each execution: (task, how many times it ran before).
    pub behaviour: Box<ChooseBehaviour>,
    /// How long a summarize call takes.
    pub summarize_delay: Duration,
    /// Count the goal's RUNNING tasks, and the wait since the claim, as each
    /// execution starts.
    pub count_running: bool,
    /// Tasks answered after their own delay rather than `delay`.
    pub delays: HashMap<String, Duration>,
    /// What every call reports it cost (`None`: nothing reported).
    pub cost_usd: Option<f64>,
}

impl ScriptedProvider {
    pub fn new(plan: Dag, process: &str, record: Arc<Record>) -> Self {
        Self {
            plan,
            process: process.to_string(),
            delay: Duration::from_millis(5),
            record,
            store: Mutex::new(None),
            pick: None,
            behaviour: Box::new(|_, _| Behaviour::Succeed),
            summarize_delay: Duration::ZERO,
            count_running: false,
            delays: HashMap::new(),
            cost_usd: Some(0.5),
        }
    }
}

#[async_trait]
impl LlmProvider for ScriptedProvider {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        // Every call costs 15 tokens and `cost_usd`, so tests can count spending.
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: self.cost_usd,
        };
        if request.phase == Phase::Plan {
            let text = serde_json::to_string(&self.plan).unwrap();
            return Ok(LlmResponse { text, usage });
        }
        if request.phase == Phase::Select {
            let pick = self
                .pick
                .clone()
                .expect("select is only asked for with a pick set");
            let text = serde_json::json!({"selected_task_id": pick, "justification": "scripted"})
                .to_string();
            return Ok(LlmResponse { text, usage });
        }
        let (goal, task) = prompt_task(&request.prompt).expect("execute prompts name their task");
        if request.phase == Phase::Summarize {
            tokio::time::sleep(self.summarize_delay).await;
            let text = serde_json::json!({"status": "done", "notes": format!("summary of {task}")})
                .to_string();
            return Ok(LlmResponse { text, usage });
        }
        let (goal, task) = (goal.to_string(), task.to_string());
        let store = self.store.lock().unwrap().clone().expect("store set");
        let mut unfinished_deps = Vec::new();
        for edge in self.plan.edges.iter().filter(|e| e.target == task) {
            let dep = store.task(&goal, &edge.source).await.unwrap().unwrap();
            if dep.status != TaskStatus::Done {
                unfinished_deps.push(edge.source.clone());
            }
        }
        let (running, lease_waited) = match self.count_running {
            true => {
                let tasks = store.tasks(&goal).await.unwrap();
                let claimed = tasks
                    .iter()
                    .find(|t| t.id == task)
                    .and_then(|t| t.started_ms);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                (
                    Some(
                        tasks
                            .iter()
                            .filter(|t| t.status == TaskStatus::Running)
                            .count(),
                    ),
                    claimed.map(|c| Duration::from_millis(now_ms.saturating_sub(c))),
                )
            }
            false => (None, None),
        };
        let index = {
            let mut executions = self.record.executions.lock().unwrap();
            let before = executions.iter().filter(|e| e.task == task).count();
            executions.push(Execution {
                task: task.clone(),
                process: self.process.clone(),
                started: Instant::now(),
                finished: None,
                ended: None,
                unfinished_deps,
                prompt: request.prompt.clone(),
                running,
                lease_waited,
            });
            (executions.len() - 1, before)
        };
        let now = self.record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.record.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Marks the end however the call ends: answered, or dropped mid-way.
        let _running = Running {
            record: &self.record,
            index: index.0,
        };
        let behaviour = (self.behaviour)(&task, index.1);
        let delay = self.delays.get(&task).copied().unwrap_or(self.delay);
        let mut answer = None;
        let outcome = match behaviour {
            Behaviour::Succeed => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Behaviour::Answer(value) => {
                tokio::time::sleep(delay).await;
                answer = Some(value.to_string());
                Ok(())
            }
            Behaviour::Stall(d) => {
                std::thread::sleep(d);
                Ok(())
            }
            Behaviour::Panic => Err(()),
        };
        self.record.executions.lock().unwrap()[index.0].finished = Some(Instant::now());
        if outcome.is_err() {
            panic!("scripted panic executing {task}");
        }
        let text = answer.unwrap_or_else(|| {
            serde_json::json!({
                "status": "done",
                "outputs": [format!("{task}.md")],
                "notes": format!("{task} by {}", self.process),
            })
            .to_string()
        });
        Ok(LlmResponse { text, usage })
    }
}

/// One execution in flight; its end is recorded when it is dropped.
struct Running<'r> {
    record: &'r Record,
    index: usize,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.record.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut executions = self
            .record
            .executions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        executions[self.index].ended = Some(Instant::now());
    }
}

/// Writes an instructions file declaring `agents` (name, goal) and loads it.
pub fn project(dir: &Path, agents: &[(&str, &str)]) -> Project {
    write_instructions(dir, agents, false);
    Project::load(&dir.join("INSTRUCTIONS.md")).unwrap()
}

/// Writes `dir/INSTRUCTIONS.md` declaring `agents`, each with
/// `heartbeat/NAME.md` when `heartbeats` is set.
pub fn write_instructions(dir: &Path, agents: &[(&str, &str)], heartbeats: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from("# Test\n\n## Agents\n");
    for (name, goal) in agents {
        text.push_str(&format!("\n### {name}\n- Goal: {goal}\n- Cadence: 2s\n"));
        if heartbeats {
            text.push_str(&format!("- Heartbeat: heartbeat/{name}.md\n"));
        }
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
}

/// Where a runtime keeps its state.
#[derive(Clone)]
pub enum StoreKind {
    Memory(Arc<MemoryStore>),
    Redis(String),
    /// A Redis Cluster, under the names of one test (see `support::prefixed`).
    Cluster {
        url: String,
        prefix: String,
    },
}

impl StoreKind {
    /// The shared test cluster, under names no other test uses.
    pub fn shared_cluster() -> Self {
        StoreKind::Cluster {
            url: RedisCluster::shared().url(),
            prefix: Prefixed::fresh_prefix(),
        }
    }

    /// Opens the store, on the caller's tokio runtime (a Redis store stays bound
    /// to the runtime it connected on).
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            StoreKind::Memory(m) => m.clone(),
            StoreKind::Redis(url) => Arc::new(RedisStore::connect(url).await.unwrap()),
            StoreKind::Cluster { url, prefix } => Prefixed::with_prefix(
                Arc::new(RedisStore::connect_cluster(url).await.unwrap()),
                prefix.clone(),
            ),
        }
    }
}

/// Settings for tests: short leases, quick everything, `--until-done`.
pub fn test_config(
    project: Project,
    store: Arc<dyn Store>,
    provider: Arc<dyn LlmProvider>,
) -> SupervisorConfig {
    let settings = RunSettings {
        lease_ttl: Duration::from_millis(900),
        guard_ttl: Some(Duration::from_secs(3)),
        llm_timeout: Duration::from_secs(30),
        workspace: std::env::temp_dir().join("porki-test-workspace/{goal}"),
        artifacts_dir: Some(std::env::temp_dir().join("porki-test-artifacts")),
        llm_max_concurrency: 0,
        llm_wait: Duration::from_secs(30),
        until_done: true,
        ..RunSettings::default()
    };
    SupervisorConfig::new(project, store, provider, settings)
}

/// The clock an orchestrator "process" keeps time with.
#[derive(Clone, Copy)]
pub enum Clock {
    Real,
    /// tokio's clock, paused: whenever every task of the process waits, it
    /// jumps to the next timer, so backoffs, leases and restart windows pass
    /// at once and exactly. Only for a process that waits on nothing outside
    /// itself: the `memory://` store and a scripted provider that does not
    /// stall.
    Paused,
}

/// Runs `provider` for the agents of `project` on a fresh `memory://` store,
/// as one orchestrator "process" on `clock`: returns what the provider
/// executed, the store, and the thread that joins to the exit code.
pub fn start_on_memory(
    clock: Clock,
    provider: ScriptedProvider,
    project: Project,
    tweak: impl FnOnce(&mut SupervisorConfig) + Send + 'static,
) -> (Arc<Record>, Arc<MemoryStore>, JoinHandle<i32>) {
    let record = provider.record.clone();
    let memory = Arc::new(MemoryStore::new());
    let run = spawn_runtime_on(
        clock,
        StoreKind::Memory(memory.clone()),
        Arc::new(provider),
        project,
        tweak,
    );
    (record, memory, run)
}

/// Runs one orchestrator "process" in its own thread and actix System, on
/// real time; joins to its exit code.
pub fn spawn_runtime(
    store: StoreKind,
    provider: Arc<ScriptedProvider>,
    project: Project,
    tweak: impl FnOnce(&mut SupervisorConfig) + Send + 'static,
) -> JoinHandle<i32> {
    spawn_runtime_on(Clock::Real, store, provider, project, tweak)
}

/// Runs one orchestrator "process" in its own thread and actix System, on
/// `clock`; joins to its exit code.
pub fn spawn_runtime_on(
    clock: Clock,
    store: StoreKind,
    provider: Arc<ScriptedProvider>,
    project: Project,
    tweak: impl FnOnce(&mut SupervisorConfig) + Send + 'static,
) -> JoinHandle<i32> {
    std::thread::spawn(move || {
        let system = System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(matches!(clock, Clock::Paused))
                .build()
                .expect("build the actix System's runtime")
        });
        system.block_on(async move {
            let store = store.open().await;
            *provider.store.lock().unwrap() = Some(store.clone());
            let mut config = test_config(project, store, provider);
            tweak(&mut config);
            Supervisor::new(config).start();
        });
        system.run_with_code().unwrap()
    })
}

/// Runs one orchestrator "process" as [`spawn_runtime`] does, and hands back
/// its Supervisor, so the test can shut it down as SIGTERM would.
pub fn spawn_stoppable_runtime(
    store: StoreKind,
    provider: Arc<ScriptedProvider>,
    project: Project,
) -> (JoinHandle<i32>, Addr<Supervisor>) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let run = std::thread::spawn(move || {
        let system = System::new();
        system.block_on(async move {
            let store = store.open().await;
            *provider.store.lock().unwrap() = Some(store.clone());
            let config = test_config(project, store, provider);
            sender.send(Supervisor::new(config).start()).unwrap();
        });
        system.run_with_code().unwrap()
    });
    let supervisor = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the runtime starts");
    (run, supervisor)
}

/// Joins a runtime thread, failing the test if it runs past `limit`.
pub fn join_within(handle: JoinHandle<i32>, limit: Duration) -> i32 {
    poll(limit, Duration::from_millis(20), || {
        handle.is_finished().then_some(())
    })
    .unwrap_or_else(|| panic!("the orchestrator did not finish within {limit:?}"));
    handle.join().expect("the runtime thread panicked")
}

/// Task id → (status, progress, attempt) in a store now (none before the plan).
pub fn tasks_now(store: &StoreKind, goal: &str) -> HashMap<String, (TaskStatus, String, u32)> {
    block_on(async {
        store
            .open()
            .await
            .tasks(goal)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.id.clone(), (t.status, t.progress, t.attempt)))
            .collect()
    })
}

/// [`tasks_now`] after a run; a goal without tasks fails the test (checks over
/// its tasks would check nothing).
pub fn final_tasks(store: &StoreKind, goal: &str) -> HashMap<String, (TaskStatus, String, u32)> {
    let tasks = tasks_now(store, goal);
    assert!(!tasks.is_empty(), "goal {goal} has no tasks in the store");
    tasks
}
