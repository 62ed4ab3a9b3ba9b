//! `porki status`: goals, progress, the task table and agents, read from the store.
//!
//! Reading only, so it works the same while an orchestrator runs and after it
//! stopped. Rendering is [`porki::report`]; this file fetches and prints.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use porki::report::{self, AgentReport, GoalReport};
use porki::store::prelude::*;

use super::{UsageError, block_on, check_goal, connect, unknown_goal};

/// Flags of `porki status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    store: super::StoreArgs,
    /// Show only this goal (default: every goal in the store).
    #[arg(long, value_name = "G")]
    goal: Option<String>,
    /// Print JSON (shape in docs/status-json.md); with --watch, one line per second.
    #[arg(long)]
    json: bool,
    /// Redraw every second until interrupted (Ctrl-C).
    #[arg(long)]
    watch: bool,
}

/// Table width when stdout is not a terminal or `COLUMNS` is not set.
const DEFAULT_WIDTH: usize = 120;

/// Runs `porki status`; exit code 2 when the goal is unknown.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(goal) = &args.goal {
        check_goal(goal)?;
    }
    block_on(async {
        let store = connect(&args.store.redis_url).await?;
        if args.watch {
            watch(&*store, &args).await
        } else {
            print!("{}", frame(&*store, &args, false).await?);
            Ok(ExitCode::SUCCESS)
        }
    })
}

/// Redraws every second until Ctrl-C: in place on a terminal, else one frame
/// after another (blank-line separated text, or one JSON document per line).
async fn watch(store: &dyn Store, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut first = true;
    loop {
        let text = tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            text = frame(store, args, !tty) => text,
        };
        let text = match text {
            Ok(text) => text,
            // A bad goal or an unreachable store at the start is an error; later,
            // Redis going away is shown and the watch keeps trying.
            Err(e) if first || e.downcast_ref::<UsageError>().is_some() => return Err(e),
            Err(e) => format!("porki: cannot read the store: {e:#} (retrying every second)\n"),
        };
        let mut stdout = std::io::stdout().lock();
        if tty {
            write!(stdout, "\x1b[H\x1b[2J{}", watch_banner(now_ms()))?;
        } else if !first && !args.json {
            writeln!(stdout)?;
        }
        write!(stdout, "{text}")?;
        stdout.flush()?;
        drop(stdout);
        first = false;
        tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn watch_banner(now_ms: u64) -> String {
    let secs = now_ms / 1000 % 86_400;
    format!(
        "porki status  {:02}:{:02}:{:02} UTC  (every 1s, Ctrl-C to stop)\n\n",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One rendering of the status; JSON is compact when `compact_json`.
async fn frame(store: &dyn Store, args: &StatusArgs, compact_json: bool) -> anyhow::Result<String> {
    let (goals, agents) = fetch(store, args.goal.as_deref(), &args.store.redis_url).await?;
    let mut spending = Vec::with_capacity(goals.len());
    for goal in &goals {
        spending.push(store.goal_spending(&goal.status.goal).await?);
    }
    let now = now_ms();
    Ok(if args.json {
        let value = report::status_json_with(&goals, &spending, &agents, now);
        let mut text = if compact_json {
            serde_json::to_string(&value)?
        } else {
            serde_json::to_string_pretty(&value)?
        };
        text.push('\n');
        text
    } else {
        report::status_text_with(&goals, &spending, &agents, now, width())
    })
}

/// The goals (one, or all) with their tasks, and the agents (of that goal, or all).
async fn fetch(
    store: &dyn Store,
    goal: Option<&str>,
    url: &str,
) -> anyhow::Result<(Vec<GoalReport>, Vec<AgentReport>)> {
    let ids = match goal {
        Some(goal) => vec![goal.to_string()],
        None => store.goals().await?,
    };
    let mut goals = Vec::with_capacity(ids.len());
    for id in &ids {
        match store.goal_status(id).await? {
            Some(status) => goals.push(GoalReport {
                status,
                tasks: store.tasks(id).await?,
                // What BLOCKED tasks wait for; a goal without a plan has none.
                edges: store.dag(id).await?.map(|d| d.edges).unwrap_or_default(),
            }),
            None if goal.is_some() => return Err(unknown_goal(store, id, url).await),
            // Listed a moment ago, gone now (its plan was replaced or deleted).
            None => {}
        }
    }
    let mut agents = Vec::new();
    for record in store.agents().await? {
        if goal.is_some_and(|g| g != record.goal) {
            continue;
        }
        let last_error = store.agent_errors(&record.name).await?.into_iter().next();
        let alive = store.agent_alive(&record.name).await?;
        agents.push(AgentReport {
            record,
            last_error,
            alive,
        });
    }
    Ok((goals, agents))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The width to fit the table to: `COLUMNS` if set, else a wide default.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(DEFAULT_WIDTH)
}
