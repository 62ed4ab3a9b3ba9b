//! The command line: clap types, turned into library configuration here so the
//! rest of porki never sees clap.

mod demo;
mod graph;
mod instructions;
mod logging;
mod run;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// porki runs a team of LLM agents against goals, coordinated through Redis.
#[derive(Debug, Parser)]
#[command(name = "porki", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The seed's form: `porki --role orchestrator --instructions PATH --redis-url URL`.
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the orchestrator (or one prompt with --prompt).
    Run(Box<RunArgs>),
    /// Run the bundled example offline on the embedded store.
    Demo(demo::DemoArgs),
    /// Check or create instruction files.
    #[command(subcommand)]
    Instructions(instructions::InstructionsCommand),
    /// Show goals, progress, the task table and agents.
    Status(status::StatusArgs),
    /// Print a goal's DAG with task states (Mermaid, DOT or JSON).
    Graph(graph::GraphArgs),
}

/// Flags of `porki run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Process role; only `orchestrator` exists.
    #[arg(long, default_value = "orchestrator")]
    role: String,
    /// The instructions file declaring the agents.
    #[arg(long, value_name = "PATH")]
    instructions: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Send one prompt through the provider and print the answer.
    #[arg(long, short = 'p', value_name = "PROMPT")]
    prompt: Option<String>,
    #[command(flatten)]
    llm: LlmArgs,
    /// Exit when every goal is complete or failed (0 all complete, 1 any failed).
    #[arg(long)]
    until_done: bool,
    /// `static`: run the agents of the first read; `dynamic`: follow instruction changes.
    #[arg(long, env = "PORKI_SPAWN_MODE", default_value = "dynamic")]
    spawn_mode: String,
    /// Most agents running at once; the rest wait for a free slot.
    #[arg(long, env = "PORKI_SPAWN_LIMIT", default_value_t = 10)]
    spawn_limit: usize,
    /// On SIGTERM/SIGINT, let held tasks finish for this long before releasing them.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    grace: Duration,
    /// Lease TTL of a claimed task (renewed every third of it).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    lease_ttl: Duration,
    /// Attempts per task before it is FAILED.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Where task artifacts are written (one folder per goal).
    #[arg(long, default_value = "artifacts")]
    artifacts_dir: PathBuf,
    /// Plan a goal again when its instructions changed since its plan was stored.
    #[arg(long)]
    replan: bool,
    /// Restarts of a crashed agent allowed within --restart-window before it is marked failed.
    #[arg(long, default_value_t = 5)]
    max_restarts: usize,
    /// The restart-intensity window.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    restart_window: Duration,
    /// Tokens a goal may spend on LLM calls; once spent, its next call fails closed.
    #[arg(long, value_name = "TOKENS")]
    goal_token_budget: Option<u64>,
}

/// Where the store is; shared by the commands that read or run it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Redis URL of the store (`redis://HOST:PORT[/DB]`), or `memory://` for the embedded one.
    #[arg(
        long,
        env = "PORKI_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

/// LLM provider flags.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// claude, codex, command, openai, anthropic or offline.
    #[arg(long, env = "PORKI_LLM_PROVIDER", default_value = "claude")]
    llm_provider: String,
    /// Program for CLI providers (required for `command`).
    #[arg(long)]
    llm_cli: Option<PathBuf>,
    /// Extra argument for the CLI program (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    llm_extra_arg: Vec<String>,
    /// Model for HTTP providers.
    #[arg(long)]
    llm_model: Option<String>,
    /// Base URL for HTTP providers.
    #[arg(long)]
    llm_base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long)]
    llm_api_key_env: Option<String>,
    /// Ask the LLM which READY task to take next (default: priority order, no call).
    #[arg(long)]
    llm_select: bool,
    /// After each task, ask the LLM to summarize its results for the tasks that depend on it.
    #[arg(long)]
    llm_summarize: bool,
    /// Timeout of one LLM call.
    #[arg(long, value_parser = parse_duration, default_value = "900s")]
    llm_timeout: Duration,
    /// LLM calls in flight across all processes on this Redis (0: no cap).
    #[arg(long, env = "PORKI_LLM_MAX_CONCURRENCY", default_value_t = porki::llm_gate::DEFAULT_MAX_CONCURRENCY)]
    llm_max_concurrency: u32,
    /// Longest wait for an LLM call slot, in seconds.
    #[arg(long, env = "PORKI_LLM_CONCURRENCY_WAIT_SECONDS", default_value_t = porki::llm_gate::DEFAULT_WAIT.as_secs())]
    llm_concurrency_wait_seconds: u64,
}

/// A duration like `500ms`, `30s`, `5m` (no unit: seconds); zero is allowed here.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if digits.parse::<f64>().is_ok_and(|n| n == 0.0) {
        return Ok(Duration::ZERO);
    }
    porki::instructions::parse_cadence(text)
}

/// Runs the command line; the exit code follows `--until-done` and error kinds.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Some(Command::Demo(_)) => "warn",
        _ => "info",
    };
    logging::init(&cli.log, default_level);
    let result = match cli.command {
        Some(Command::Run(args)) => run::run(*args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Instructions(command)) => instructions::run(command),
        Some(Command::Status(args)) => status::run(args),
        Some(Command::Graph(args)) => graph::run(args),
        None if cli.run.instructions.is_some() || cli.run.prompt.is_some() => run::run(cli.run),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("porki: error: {e:#}");
            ExitCode::from(e.downcast_ref::<run::UsageError>().map_or(1, |_| 2))
        }
    }
}
