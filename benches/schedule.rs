//! How close a goal's wall time comes to its lower bound (issue 21): `porki
//! run` (the release binary) on goals of several shapes whose task durations
//! only a fake CLI knows, against a private redis-server, `--isolation shared`.
//!
//! The provider is a `command` script: it answers the plan call with the
//! shape's plan (every node priority 0, ids that do not follow the critical
//! path) and sleeps, for a task, the seeded duration the bench gave that task
//! id (0.2–3 s, times `PORKI_SCHEDULE_SCALE`), recording when it started and
//! ended. Each shape runs with more agents than LLM slots
//! (`PORKI_LLM_MAX_CONCURRENCY`) and with as many.
//!
//! Printed per shape and setting: the makespan (the goal's plan written to the
//! goal complete, from `porki status --json`), the lower bound, and their
//! ratio, and the slot time not spent in a task, per task (idle/task: what
//! waiting for work, the order and porki's own overhead cost). The bound comes from the durations the CLI measured in the run: the
//! largest of the critical path, the total work over the slots, and each
//! role's work over the agents (and slots) that may take it. Targets (issue 21,
//! with ranking): ratio at most 1.15 on every shape and 1.05 on the median,
//! and never worse than without ranking.
//!
//! Each scheduler in [`SCHEDULERS`] gets its own runs and column: `off`
//! (`--ranking off`: highest priority, then smallest id; agents claim, then
//! wait for a slot, as before issue 21), `on+est, claim first` (ranking by the
//! critical path with the plan's rough estimates, claiming before the slot:
//! `--slot-before-claim off`), and today's defaults: `on` (ranking, every task
//! one typical task until some finished, the slot taken before the claim) and
//! `on+est` (the same, the plan giving rough estimates).
//! `lease wait` is how long a claimed task waited, on average, from its claim
//! to its call starting in the provider (mostly for a slot, under its lease).
//!
//! Run: `cargo bench --bench schedule` (needs `redis-server` on PATH);
//! `PORKI_SCHEDULE_SEED` changes the durations and the random DAGs,
//! `PORKI_SCHEDULE_SCALE` multiplies every duration (default 1).

#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use porki::domain::TaskKind;
use porki::domain::rank::{Estimator, RankNode, rank};
use serde_json::{Value, json};

/// A scheduler compared, one column.
struct Scheduler {
    /// Its column's name.
    name: &'static str,
    /// The `porki run` flags that select it.
    flags: &'static [&'static str],
    /// Whether the plan gives each task a rough estimate (its true duration
    /// off by up to half either way, seeded), as a planner asked for one would.
    estimates: bool,
}

/// The schedulers compared: today's order without ranking, ranking by the
/// plan's shape alone, and ranking with the planner's rough estimates.
const SCHEDULERS: &[Scheduler] = &[
    Scheduler {
        name: "off",
        flags: &["--ranking", "off", "--slot-before-claim", "off"],
        estimates: false,
    },
    Scheduler {
        name: "on+est, claim first",
        flags: &["--ranking", "on", "--slot-before-claim", "off"],
        estimates: true,
    },
    Scheduler {
        name: "on",
        flags: &["--ranking", "on", "--slot-before-claim", "on"],
        estimates: false,
    },
    Scheduler {
        name: "on+est",
        flags: &["--ranking", "on", "--slot-before-claim", "on"],
        estimates: true,
    },
];

/// Agents and LLM slots of one setting.
#[derive(Clone, Copy)]
struct Setting {
    agents: usize,
    slots: usize,
}

/// More agents than slots, and as many.
const SETTINGS: [Setting; 2] = [
    Setting {
        agents: 6,
        slots: 2,
    },
    Setting {
        agents: 4,
        slots: 4,
    },
];

/// One task of a shape: its id, what it comes after, its role and the
/// seconds the fake CLI sleeps for it.
struct Task {
    id: String,
    after: Vec<String>,
    role: Option<&'static str>,
    seconds: f64,
}

/// A goal's plan, and the roles its agents get (cycled over the agents).
struct Shape {
    name: &'static str,
    tasks: Vec<Task>,
    roles: &'static [Option<&'static str>],
}

/// The provider: the plan for the plan call; for a task, its duration from
/// `durations` ("id seconds" lines), recorded as `start|end ID NANOS`.
const PROVIDER: &str = r#"#!/bin/sh
dir='@DIR@'
read phase
read task
case "$phase" in *plan*) cat "$dir/plan.json"; exit 0;; esac
task=${task#porki-task: g/}
seconds=$(awk -v t="$task" '$1 == t { print $2 }' "$dir/durations")
echo "start $task $(date +%s%N)" >> "$dir/record.log"
sleep "${seconds:-0}"
echo "end $task $(date +%s%N)" >> "$dir/record.log"
echo "{\"status\":\"done\",\"notes\":\"$task\"}"
"#;

fn main() {
    let seed: u64 = env_number("PORKI_SCHEDULE_SEED", 21);
    let scale: f64 = env_number("PORKI_SCHEDULE_SCALE", 1.0);
    let shapes = shapes(seed, scale);
    println!(
        "makespan / lower bound, porki run --until-done --isolation shared, command provider sleeping 0.2-3 s per task (x{scale}), seed {seed}"
    );
    let mut header = format!(
        "{:<16} {:>6} {:>5} {:>5}",
        "shape", "tasks", "agents", "slots"
    );
    for scheduler in SCHEDULERS {
        header.push_str(&format!(
            " | {:>10} {:>8} {:>6} {:>9} {:>10}",
            format!("{}: span", scheduler.name),
            "bound",
            "ratio",
            "idle/task",
            "lease wait"
        ));
    }
    println!("{header}");
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); SCHEDULERS.len()];
    let mut waits: Vec<Vec<f64>> = vec![Vec::new(); SCHEDULERS.len()];
    for setting in SETTINGS {
        for shape in &shapes {
            let mut line = format!(
                "{:<16} {:>6} {:>6} {:>5}",
                shape.name,
                shape.tasks.len(),
                setting.agents,
                setting.slots
            );
            for (i, scheduler) in SCHEDULERS.iter().enumerate() {
                let run = run(shape, setting, scheduler, seed);
                let ratio = run.makespan / run.bound;
                ratios[i].push(ratio);
                waits[i].push(run.lease_wait);
                line.push_str(&format!(
                    " | {:>9.2}s {:>7.2}s {:>6.3} {:>8.2}s {:>9.3}s",
                    run.makespan,
                    run.bound,
                    ratio,
                    (run.makespan * setting.slots as f64 - run.work) / shape.tasks.len() as f64,
                    run.lease_wait
                ));
            }
            println!("{line}");
        }
    }
    let mut summary = format!("{:<36}", "ratio: worst / median");
    for ratios in &mut ratios {
        ratios.sort_by(f64::total_cmp);
        summary.push_str(&format!(
            " | {:>37}",
            format!(
                "{:.3} / {:.3}",
                ratios.last().copied().unwrap_or(0.0),
                median(ratios)
            )
        ));
    }
    println!("{summary}");
    let mut summary = format!("{:<36}", "lease wait per task: mean / worst");
    for waits in &waits {
        let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let worst = waits.iter().copied().fold(0.0, f64::max);
        summary.push_str(&format!(" | {:>37}", format!("{mean:.3}s / {worst:.3}s")));
    }
    println!("{summary}");
}

/// What one run measured, seconds.
struct Measured {
    makespan: f64,
    bound: f64,
    /// The tasks' durations summed.
    work: f64,
    /// From a task's claim to its call starting in the provider, on average.
    lease_wait: f64,
}

/// Runs `shape` to the end on a fresh redis-server and folder.
fn run(shape: &Shape, setting: Setting, scheduler: &Scheduler, seed: u64) -> Measured {
    let server = support::RedisServer::start();
    let dir = support::temp_dir(&format!("schedule-bench-{}", shape.name));
    let mut noise = Rng(seed ^ 0x5EED);
    let estimate = |t: &Task| {
        scheduler
            .estimates
            .then(|| t.seconds * noise.range(0.5, 1.5))
    };
    write_files(&dir, shape, setting, estimate);
    let log = dir.join("porki.log");
    let status = support::porki()
        .args(["run", "--until-done", "--isolation", "shared"])
        .args([
            "--log-level",
            "warn",
            "--llm-provider",
            "command",
            "--llm-cli",
        ])
        .arg(dir.join("provider.sh"))
        .args(["--llm-max-concurrency", &setting.slots.to_string()])
        .args(["--spawn-limit", &setting.agents.to_string()])
        .args(scheduler.flags)
        .args(["--redis-url", &server.url(), "--instructions"])
        .arg(dir.join("INSTRUCTIONS.md"))
        .arg("--workspace")
        .arg(dir.join("workspace"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("run the porki binary");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "porki run failed: {status}\n{text}");
    let makespan = makespan(&server.url());
    let durations = measured_durations(&dir.join("record.log"));
    for task in &shape.tasks {
        assert!(
            durations.contains_key(&task.id),
            "{}: task {} never ran\n{text}",
            shape.name,
            task.id
        );
    }
    Measured {
        makespan,
        bound: lower_bound(shape, setting, &durations),
        work: durations.values().sum(),
        lease_wait: lease_wait(&server.url(), &dir.join("record.log")),
    }
}

/// Writes the plan (each node with `estimate(task)`, seconds, if any: a
/// relative size to porki, so the unit does not matter), the durations, the
/// provider and the instructions.
fn write_files(
    dir: &Path,
    shape: &Shape,
    setting: Setting,
    mut estimate: impl FnMut(&Task) -> Option<f64>,
) {
    let nodes: Vec<Value> = shape
        .tasks
        .iter()
        .map(|t| {
            let mut node = json!({"id": t.id, "title": format!("Task {}", t.id)});
            if let Some(role) = t.role {
                node["role"] = json!(role);
            }
            if let Some(size) = estimate(t) {
                node["estimate"] = json!(size);
            }
            node
        })
        .collect();
    let edges: Vec<Value> = shape
        .tasks
        .iter()
        .flat_map(|t| t.after.iter().map(|a| json!({"source": a, "target": t.id})))
        .collect();
    let plan = json!({"goal_id": "g", "nodes": nodes, "edges": edges});
    std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
    let durations: String = shape
        .tasks
        .iter()
        .map(|t| format!("{} {:.3}\n", t.id, t.seconds))
        .collect();
    std::fs::write(dir.join("durations"), durations).unwrap();
    support::write_script(
        &dir.join("provider.sh"),
        PROVIDER.replace("@DIR@", &dir.display().to_string()),
    );
    let mut text =
        "# Schedule bench\n\n## Goals\n### g\n- Review: none\n- Approve: none\n\n## Agents\n"
            .to_string();
    for a in 0..setting.agents {
        text.push_str(&format!("\n### agent{a:02}\n- Goal: g\n- Cadence: 1s\n"));
        if let Some(role) = shape.roles[a % shape.roles.len()] {
            text.push_str(&format!("- Role: {role}\n"));
        }
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
}

/// From the plan written to the goal complete, seconds (`porki status --json`).
fn makespan(url: &str) -> f64 {
    let output = support::porki()
        .args(["status", "--json", "--redis-url", url])
        .output()
        .expect("run porki status");
    let status: Value = serde_json::from_str(&support::success_stdout(&output))
        .expect("porki status --json prints JSON");
    let goal = &status["goals"][0];
    assert_eq!(
        goal["state"], "complete",
        "the goal did not complete: {goal}"
    );
    let ms = |field: &str| {
        goal[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {goal}"))
    };
    (ms("finished_ms") - ms("created_ms")) as f64 / 1000.0
}

/// Mean seconds from a task's claim (its `started_ms` in the store) to its
/// last call starting in the provider: the wait under its lease, mostly for
/// an LLM slot.
fn lease_wait(url: &str, record: &Path) -> f64 {
    let text = std::fs::read_to_string(record).expect("read the provider's record");
    let mut called: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        if let ["start", task, nanos] = line.split_whitespace().collect::<Vec<_>>()[..]
            && let Ok(nanos) = nanos.parse::<u64>()
        {
            called.insert(task, nanos / 1_000_000);
        }
    }
    let tasks = support::block_on(async {
        let store = porki::store::RedisStore::connect(url)
            .await
            .expect("connect to the bench's redis-server");
        porki::store::TaskStore::tasks(&store, "g")
            .await
            .expect("read the tasks")
    });
    let waits: Vec<f64> = tasks
        .iter()
        .filter_map(|t| {
            let call = called.get(t.id.as_str())?;
            Some(call.saturating_sub(t.started_ms?) as f64 / 1000.0)
        })
        .collect();
    waits.iter().sum::<f64>() / waits.len().max(1) as f64
}

/// Each task's duration as the provider measured it (its last run), seconds.
fn measured_durations(record: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(record).expect("read the provider's record");
    let mut started: BTreeMap<&str, u64> = BTreeMap::new();
    let mut durations = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(what), Some(task), Some(nanos)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(nanos) = nanos.parse::<u64>() else {
            continue;
        };
        match what {
            "start" => {
                started.insert(task, nanos);
            }
            "end" => {
                if let Some(start) = started.get(task) {
                    durations.insert(task.to_string(), (nanos - start) as f64 / 1e9);
                }
            }
            _ => {}
        }
    }
    durations
}

/// The largest of the critical path, the total work over the slots, each
/// role's work over the agents (at most the slots) that take it, and
/// [`set_bound`].
fn lower_bound(shape: &Shape, setting: Setting, durations: &BTreeMap<String, f64>) -> f64 {
    let seconds = |id: &str| durations.get(id).copied().unwrap_or(0.0);
    let total: f64 = shape.tasks.iter().map(|t| seconds(&t.id)).sum();
    let mut bound = critical_path(shape, &seconds)
        .max(total / setting.slots as f64)
        .max(set_bound(shape, setting.slots, &seconds));
    let roles: BTreeSet<&str> = shape.tasks.iter().filter_map(|t| t.role).collect();
    for role in roles {
        let agents = (0..setting.agents)
            .filter(|a| shape.roles[a % shape.roles.len()] == Some(role))
            .count()
            .min(setting.slots);
        let work: f64 = shape
            .tasks
            .iter()
            .filter(|t| t.role == Some(role))
            .map(|t| seconds(&t.id))
            .sum();
        bound = bound.max(work / agents.max(1) as f64);
    }
    bound
}

/// A bound the simple ones miss on a fan-in: for any set of tasks, none of
/// them can start before the least work that must precede each (its head: the
/// longest path before it), they need their work over the slots, and after the
/// last of them the least work that must follow each (its tail) remains. Taken
/// over the sets of tasks whose head and tail are at least some task's.
fn set_bound(shape: &Shape, slots: usize, seconds: &dyn Fn(&str) -> f64) -> f64 {
    let index: BTreeMap<&str, usize> = shape
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let n = shape.tasks.len();
    let own: Vec<f64> = shape.tasks.iter().map(|t| seconds(&t.id)).collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in shape.tasks.iter().enumerate() {
        for a in &t.after {
            after[index[a.as_str()]].push(i);
        }
    }
    // Heads in plan order (a task comes after what it waits for in every shape
    // here), tails in reverse.
    let mut head = vec![0.0f64; n];
    for (i, t) in shape.tasks.iter().enumerate() {
        for a in &t.after {
            let p = index[a.as_str()];
            assert!(p < i, "{}: {} is listed before {a}", shape.name, t.id);
            head[i] = head[i].max(head[p] + own[p]);
        }
    }
    let mut tail = vec![0.0f64; n];
    for i in (0..n).rev() {
        for &w in &after[i] {
            tail[i] = tail[i].max(own[w] + tail[w]);
        }
    }
    let mut bound = 0.0f64;
    for &a in &head {
        for &b in &tail {
            let work: f64 = (0..n)
                .filter(|&i| head[i] >= a && tail[i] >= b)
                .map(|i| own[i])
                .sum();
            if work > 0.0 {
                bound = bound.max(a + work / slots as f64 + b);
            }
        }
    }
    bound
}

/// The longest path through the plan, weighted by `seconds`: the largest
/// rank `porki::domain::rank` gives when each task's plan size is its duration
/// and nothing has finished (one unit is one second).
fn critical_path(shape: &Shape, seconds: &dyn Fn(&str) -> f64) -> f64 {
    let tasks: Vec<RankNode> = shape
        .tasks
        .iter()
        .map(|t| RankNode {
            id: t.id.clone(),
            role: t.role.map(str::to_string),
            kind: TaskKind::Work,
            of: None,
            estimate: Some(seconds(&t.id)),
            waits_for: t.after.clone(),
        })
        .collect();
    rank(&tasks, &Estimator::new(&[]))
        .values()
        .map(|r| r.rank)
        .fold(0.0, f64::max)
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: a number, got {v:?}"))
    })
}

/// A seeded generator (splitmix64): the same seed, the same goals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The shapes, their durations drawn from `seed` and multiplied by `scale`.
fn shapes(seed: u64, scale: f64) -> Vec<Shape> {
    let mut rng = Rng(seed);
    let mut task = |id: String, after: Vec<String>, role, lo: f64, hi: f64| Task {
        id,
        after,
        role,
        seconds: rng.range(lo, hi) * scale,
    };
    let mut shapes = Vec::new();

    // A long chain whose ids sort after the many short tasks beside it.
    let mut tasks: Vec<Task> = (1..=24)
        .map(|i| task(format!("a{i:02}"), vec![], None, 0.2, 1.2))
        .collect();
    for i in 1..=8 {
        let after = if i == 1 {
            vec![]
        } else {
            vec![format!("z{:02}", i - 1)]
        };
        tasks.push(task(format!("z{i:02}"), after, None, 1.0, 3.0));
    }
    shapes.push(Shape {
        name: "chain+short",
        tasks,
        roles: &[None],
    });

    // A wide fan-out, then a fan-in.
    let mut tasks = vec![task("root".into(), vec![], None, 0.2, 3.0)];
    for i in 1..=20 {
        tasks.push(task(
            format!("f{i:02}"),
            vec!["root".into()],
            None,
            0.2,
            3.0,
        ));
    }
    let middle: Vec<String> = (1..=20).map(|i| format!("f{i:02}")).collect();
    tasks.push(task("sink".into(), middle, None, 0.2, 3.0));
    shapes.push(Shape {
        name: "fan-out/fan-in",
        tasks,
        roles: &[None],
    });

    // Layers of random width; each task after one to three of the layer before.
    let mut tasks: Vec<Task> = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    let mut names = RandomNames::default();
    for _ in 0..4 {
        let width = 3 + rng.below(4);
        let mut layer = Vec::new();
        for _ in 0..width {
            let id = names.next(&mut rng);
            let mut after = BTreeSet::new();
            if !previous.is_empty() {
                for _ in 0..1 + rng.below(3) {
                    after.insert(previous[rng.below(previous.len())].clone());
                }
            }
            layer.push(id.clone());
            let seconds = rng.range(0.2, 3.0) * scale;
            tasks.push(Task {
                id,
                after: after.into_iter().collect(),
                role: None,
                seconds,
            });
        }
        previous = layer;
    }
    shapes.push(Shape {
        name: "layered random",
        tasks,
        roles: &[None],
    });

    // Two diamonds in a row, each with one heavy branch (two long tasks whose
    // ids sort last) beside light ones.
    let mut task = |id: String, after: Vec<String>, role, lo: f64, hi: f64| Task {
        id,
        after,
        role,
        seconds: rng.range(lo, hi) * scale,
    };
    let mut tasks = Vec::new();
    let mut top = "d1-top".to_string();
    for d in 1..=2 {
        if d == 1 {
            tasks.push(task(top.clone(), vec![], None, 0.2, 1.0));
        }
        let mut ends: Vec<String> = (1..=6)
            .map(|i| {
                let id = format!("d{d}-a{i}");
                tasks.push(task(id.clone(), vec![top.clone()], None, 0.2, 1.0));
                id
            })
            .collect();
        tasks.push(task(format!("d{d}-z1"), vec![top.clone()], None, 2.0, 3.0));
        tasks.push(task(
            format!("d{d}-z2"),
            vec![format!("d{d}-z1")],
            None,
            2.0,
            3.0,
        ));
        ends.push(format!("d{d}-z2"));
        top = format!("d{d}-bottom");
        tasks.push(task(top.clone(), ends, None, 0.2, 1.0));
    }
    shapes.push(Shape {
        name: "diamonds",
        tasks,
        roles: &[None],
    });

    // Two roles: a front chain (ids last) beside short front tasks, and
    // back tasks of any length.
    let mut tasks = Vec::new();
    for i in 1..=6 {
        tasks.push(task(format!("f-{i:02}"), vec![], Some("front"), 0.2, 1.0));
    }
    for i in 1..=4 {
        let after = if i == 1 {
            vec![]
        } else {
            vec![format!("f-z{}", i - 1)]
        };
        tasks.push(task(format!("f-z{i}"), after, Some("front"), 1.5, 3.0));
    }
    for i in 1..=8 {
        tasks.push(task(format!("b-{i:02}"), vec![], Some("back"), 0.2, 3.0));
    }
    shapes.push(Shape {
        name: "roles",
        tasks,
        roles: &[Some("front"), Some("back")],
    });
    shapes
}

/// Task ids in no order the plan's shape follows: `t` and three random hex
/// digits, never repeated.
#[derive(Default)]
struct RandomNames(BTreeSet<String>);

impl RandomNames {
    fn next(&mut self, rng: &mut Rng) -> String {
        loop {
            let id = format!("t{:03x}", rng.below(0x1000));
            if self.0.insert(id.clone()) {
                return id;
            }
        }
    }
}
