//! `porki demo`: the bundled example, run to the end offline.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use clap::Args;
use porki::domain::{TaskKind, TaskStatus};
use porki::llm::OfflineProvider;
use porki::project::Project;
use porki::report;
use porki::store::GoalStatus;
use porki::store::prelude::*;
use porki::supervisor::{RunSettings, SpawnMode, Supervisor, SupervisorConfig};

use super::{open_store, shut_down_on_signal};

/// Flags of `porki demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Store to run on: the embedded `memory://`, or a Redis URL (`redis://…`, `redis+cluster://…`).
    #[arg(long, default_value = "memory://")]
    redis_url: String,
    /// Folder to write the example into (default: a new temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Time the offline provider takes per answer, so progress is visible.
    #[arg(long, value_parser = super::parse_duration, default_value = "400ms")]
    delay: Duration,
    // With --http, the dashboard stays up after the goal ends, until Ctrl-C.
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

/// The example's files, relative to its folder.
const FILES: &[(&str, &str)] = &[
    (
        "instructions/INSTRUCTIONS.md",
        include_str!("../../examples/demo/instructions/INSTRUCTIONS.md"),
    ),
    (
        "instructions/research.md",
        include_str!("../../examples/demo/instructions/research.md"),
    ),
    (
        "instructions/research_2.md",
        include_str!("../../examples/demo/instructions/research_2.md"),
    ),
    (
        "instructions/writer.md",
        include_str!("../../examples/demo/instructions/writer.md"),
    ),
    (
        "instructions/reviewer.md",
        include_str!("../../examples/demo/instructions/reviewer.md"),
    ),
    (
        "instructions/heartbeat/research.md",
        include_str!("../../examples/demo/instructions/heartbeat/research.md"),
    ),
    (
        "instructions/heartbeat/research_2.md",
        include_str!("../../examples/demo/instructions/heartbeat/research_2.md"),
    ),
    (
        "instructions/heartbeat/writer.md",
        include_str!("../../examples/demo/instructions/heartbeat/writer.md"),
    ),
    (
        "instructions/heartbeat/reviewer.md",
        include_str!("../../examples/demo/instructions/heartbeat/reviewer.md"),
    ),
];

fn write_example(dir: &Path) -> anyhow::Result<()> {
    for (path, text) in FILES {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("example files are in folders"))
            .with_context(|| format!("cannot create the folder of {}", file.display()))?;
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// Runs the demo; exit code 0 when the goal completes.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("porki-demo-{}", std::process::id())),
    };
    write_example(&dir)?;
    let project = Project::load(&dir.join("instructions/INSTRUCTIONS.md"))?;
    let goals = project.goals();
    let workspace = dir.join("workspace").join(porki::workspace::GOAL_VARIABLE);
    println!(
        "porki demo: {} agents, goal {}, store {}, example in {}",
        project.agents.len(),
        goals.join(", "),
        porki::store::redact(&args.redis_url),
        dir.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let secrets = porki::llm::Secrets::new(&args.redis_url, args.http.token());
    // With git, each task works in its own worktree and the goal's folder is a
    // repository whose branch holds the merged work; without it, one folder.
    let git = match runtime.block_on(porki::git::Git::detect(None, &secrets)) {
        Ok(git) => {
            println!(
                "isolation: worktree (git {}.{}): each task in its own git worktree, merged into branch porki/<goal> in the order of the plan",
                git.version().0,
                git.version().1
            );
            Some(Arc::new(porki::agent::GitContext::new(
                git, None, None, None,
            )))
        }
        Err(e) => {
            println!("isolation: shared (every task in one folder): {e}");
            None
        }
    };
    // Under worktrees the reports are part of the work (committed, merged); in
    // one shared folder they go to an artifacts folder of their own.
    let artifacts = match git {
        Some(_) => None,
        None => Some(dir.join("artifacts")),
    };
    let metrics = Arc::new(porki::metrics::Metrics::new());
    let web = args.http.bind(metrics.clone())?;
    let serving = web.is_some();
    let printed = Printed::default();
    let system = System::new();
    let store: Arc<dyn Store> = system.block_on(async {
        let store = open_store(&args.redis_url).await?;
        if let Some(web) = web {
            super::serve::start(web, &args.redis_url, &store)?;
        }
        let settings = RunSettings {
            lease_ttl: Duration::from_secs(10),
            workspace: workspace.clone(),
            artifacts_dir: artifacts.clone(),
            isolation: if git.is_some() {
                porki::domain::Isolation::Worktree
            } else {
                porki::domain::Isolation::Shared
            },
            git: git.clone(),
            llm_max_concurrency: 4,
            llm_wait: Duration::from_secs(60),
            spawn_mode: SpawnMode::Static,
            until_done: true,
            metrics,
            ..RunSettings::default()
        };
        let provider = Arc::new(OfflineProvider::with_delay(args.delay));
        let config = SupervisorConfig::new(project, store.clone(), provider, settings);
        shut_down_on_signal(Supervisor::new(config).start());
        actix::spawn(show_progress(store.clone(), goals.clone(), printed.clone()));
        anyhow::Ok(store)
    })?;
    let code = system.run_with_code().context("the actor system failed")?;
    runtime.block_on(async {
        // A Redis store's connection lived on the stopped system; open a new one.
        let store = if args.redis_url.starts_with("memory:") {
            store
        } else {
            open_store(&args.redis_url).await?
        };
        for goal in &goals {
            if let Some(status) = store.goal_status(goal).await? {
                print_progress(goal, &status, &printed, true);
            }
        }
        for goal in &goals {
            print_summary(&*store, goal).await?;
            if let Some(git) = &git {
                let folder = PathBuf::from(
                    workspace
                        .to_string_lossy()
                        .replace(porki::workspace::GOAL_VARIABLE, goal),
                );
                print_goal_branch(git, &folder, goal).await;
            }
        }
        anyhow::Ok(())
    })?;
    if let Some(artifacts) = &artifacts {
        println!("artifacts: {}", artifacts.display());
    }
    if serving {
        println!("the dashboard stays up until Ctrl-C");
        runtime.block_on(super::shutdown_signal());
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The progress line of each goal last printed, so the last one can be brought
/// up to date once the run ends.
type Printed = Arc<std::sync::Mutex<BTreeMap<String, String>>>;

/// Prints a progress line per goal (redrawn in place on a terminal) while the
/// goals run.
async fn show_progress(store: Arc<dyn Store>, goals: Vec<String>, printed: Printed) {
    loop {
        for goal in &goals {
            if let Ok(Some(status)) = store.goal_status(goal).await {
                print_progress(goal, &status, &printed, false);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints `goal`'s progress line if it changed; `last` ends it (on a terminal,
/// the line drawn in place gets its newline).
fn print_progress(goal: &str, status: &GoalStatus, printed: &Printed, last: bool) {
    let (done, total) = report::progress(status);
    let line = format!(
        "{goal} {} {done}/{total} done, {} running, {} ready, {} blocked, {} awaiting approval, {} failed",
        report::progress_bar(done, total, 30),
        status.count(TaskStatus::Running),
        status.count(TaskStatus::Ready),
        status.count(TaskStatus::Blocked),
        status.count(TaskStatus::AwaitingApproval),
        status.count(TaskStatus::Failed),
    );
    let tty = std::io::stdout().is_terminal();
    let mut printed = printed.lock().unwrap_or_else(|e| e.into_inner());
    let changed = printed.get(goal) != Some(&line);
    if tty && (changed || last) {
        print!("\r{line}\x1b[K{}", if last { "\n" } else { "" });
        let _ = std::io::stdout().flush();
    } else if changed {
        println!("{line}");
    }
    printed.insert(goal.to_string(), line);
}

async fn print_summary(store: &dyn Store, goal: &str) -> anyhow::Result<()> {
    let status = store.goal_status(goal).await?;
    let tasks = store.tasks(goal).await?;
    let mut tasks = tasks;
    tasks.sort_by_key(|t| (t.finished_ms.unwrap_or(u64::MAX), t.id.clone()));
    println!();
    println!(
        "goal {goal}: {}",
        status
            .map(|s| s.state.as_str().to_string())
            .unwrap_or_else(|| "not planned".into())
    );
    println!(
        "{:<18} {:<12} {:<8} {:>7}  artifacts",
        "task", "agent", "state", "time"
    );
    for t in &tasks {
        let time = match (t.started_ms, t.finished_ms) {
            (Some(s), Some(f)) => format!("{:.2}s", f.saturating_sub(s) as f64 / 1000.0),
            _ => "-".into(),
        };
        println!(
            "{:<18} {:<12} {:<8} {:>7}  {}",
            t.id,
            t.owner.as_deref().unwrap_or("-"),
            t.status,
            time,
            t.artifacts.join(", ")
        );
    }
    for line in review_story(&tasks) {
        println!("{line}");
    }
    Ok(())
}

/// The goal branch's history, as `git log --oneline` prints it: one commit per
/// task (a merge commit where two tasks' work met), and where its files are.
async fn print_goal_branch(git: &porki::agent::GitContext, folder: &Path, goal: &str) {
    let branch = porki::git::Branch::goal(goal);
    match git.log_oneline(folder, &branch).await {
        Ok(log) => {
            println!();
            println!(
                "git log --oneline {} (in {})",
                branch.name(),
                folder.display()
            );
            print!("{log}");
            println!("the goal's files: {}", folder.display());
        }
        Err(e) => println!("cannot show branch {}: {e}", branch.name()),
    }
}

/// One line per review: how often it asked for changes, the fixes it got, and
/// how it ended.
fn review_story(tasks: &[porki::domain::TaskState]) -> Vec<String> {
    tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Review)
        .map(|review| {
            let subject = review.of.as_deref().unwrap_or("?");
            let fixes: Vec<&str> = tasks
                .iter()
                .filter(|t| t.kind == TaskKind::Fix && t.of.as_deref() == Some(subject))
                .map(|t| t.id.as_str())
                .collect();
            let ended = match review.status {
                TaskStatus::Done => "then approved",
                TaskStatus::Failed => "then failed",
                TaskStatus::AwaitingApproval => "then passed; awaits a person's approval",
                _ => "still under way",
            };
            let asked = match fixes.as_slice() {
                [] => "approved on the first review".to_string(),
                fixes => format!(
                    "asked for changes {} time(s) ({}), {ended}",
                    review.cycle,
                    fixes.join(", ")
                ),
            };
            format!(
                "review of {subject} by {}: {asked}",
                review.owner.as_deref().unwrap_or("-")
            )
        })
        .collect()
}
