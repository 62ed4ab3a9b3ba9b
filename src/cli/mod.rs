//! The command line: clap types, turned into library configuration here so the
//! rest of porki never sees clap.

mod decide;
mod demo;
mod gc;
mod graph;
mod instructions;
mod logging;
mod run;
mod serve;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use porki::domain::{Isolation, check_id};
use porki::llm::{self, LlmProvider, Permissions, ProviderConfig, ProviderKind};
use porki::store::{self, Store};
use porki::supervisor::{RestartPolicy, RunSettings, SpawnMode};

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
    /// Serve the web dashboard, /metrics and health checks for a store (read-only).
    Serve(serve::ServeArgs),
    /// Approve a task that awaits approval: it is DONE and its dependents go on.
    Approve(decide::ApproveArgs),
    /// Reject a task that awaits approval: a fix task carries the reason.
    Reject(decide::RejectArgs),
    /// Remove from the store the goals finished, and agents dead, longer ago than the retention.
    Gc(gc::GcArgs),
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
    #[arg(long, env = "PORKI_SPAWN_MODE", value_enum, ignore_case = true, default_value_t = SpawnMode::Dynamic)]
    spawn_mode: SpawnMode,
    /// Most agents running at once; the rest wait for a free slot, which an idle agent gives up to one with READY tasks no live agent takes.
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
    /// Reviews of a task that may ask for changes; one more rejection goes to a
    /// manager (or fails the review when the goal has none).
    #[arg(long, default_value_t = porki::domain::DEFAULT_MAX_REVIEW_CYCLES)]
    max_review_cycles: u32,
    /// Each goal's workspace, the working directory of its CLI calls; `{goal}` becomes the goal id.
    #[arg(long, value_name = "DIR", default_value = porki::workspace::DEFAULT_WORKSPACE)]
    workspace: PathBuf,
    /// Where task artifacts are written, one folder per goal (default: `artifacts/` in each workspace).
    #[arg(long, value_name = "DIR")]
    artifacts_dir: Option<PathBuf>,
    #[command(flatten)]
    isolation: IsolationArgs,
    /// Plan a goal again when its instructions changed since its plan was stored.
    #[arg(long)]
    replan: bool,
    /// `on`: of READY tasks of one priority, claim first the one with the most estimated work behind it (its rank: the critical path); `off`: plan priority, then the smallest id. Set when a goal is planned.
    #[arg(
        long,
        env = "PORKI_RANKING",
        value_enum,
        ignore_case = true,
        default_value = "on"
    )]
    ranking: Switch,
    /// `on`: an agent waits for an LLM call slot (in the gate's queue at the rank of the best READY task it may take) before claiming, and runs the task's call with it, so no claimed task waits for a slot under its lease; `off`: it claims, then waits for a slot.
    #[arg(
        long,
        env = "PORKI_SLOT_BEFORE_CLAIM",
        value_enum,
        ignore_case = true,
        default_value = "on"
    )]
    slot_before_claim: Switch,
    /// Restarts of a crashed agent allowed within --restart-window before it is marked failed.
    #[arg(long, default_value_t = 5)]
    max_restarts: usize,
    /// The restart-intensity window.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    restart_window: Duration,
    /// Tokens a goal may spend on LLM calls; once spent, its next call fails closed.
    #[arg(long, value_name = "TOKENS")]
    goal_token_budget: Option<u64>,
    /// USD a goal may spend on LLM calls (as the providers report it); a call is
    /// made only while what is spent, reserved and its own estimate fit.
    #[arg(long, env = "PORKI_GOAL_BUDGET_USD", value_name = "AMOUNT", value_parser = parse_usd)]
    goal_budget_usd: Option<f64>,
    // The retention of the cleanup run at start and once an hour (of what other
    // processes left: this process's own goals and agents are kept).
    #[command(flatten)]
    retain: gc::RetainArgs,
    #[command(flatten)]
    http: serve::HttpArgs,
}

/// A feature turned on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

/// How a goal's attempts are kept apart (docs/isolation.md).
#[derive(Debug, Clone, Args)]
pub struct IsolationArgs {
    /// `worktree`: each attempt in its own git worktree, DONE once merged into the goal branch `porki/<goal>`; `shared`: every task in the goal's workspace. Default: worktree for claude, codex and command, shared otherwise; a goal's `Isolation:` in the instructions wins.
    #[arg(long, env = "PORKI_ISOLATION", value_enum, ignore_case = true)]
    isolation: Option<Isolation>,
    /// Where a new goal branch starts when the workspace is inside a git repository (default: its HEAD).
    #[arg(long, value_name = "REF")]
    base_ref: Option<String>,
    /// A git remote (any git URL) the goal branches are shared through, for processes on several machines.
    #[arg(long, value_name = "URL")]
    git_remote: Option<String>,
    /// A command run (`sh -c`) in each new worktree before the CLI, e.g. `npm ci`; its failure fails the attempt with its output.
    #[arg(long, value_name = "CMD")]
    worktree_setup: Option<String>,
}

impl IsolationArgs {
    /// The isolation of goals that ask for none, under `provider`.
    fn default_isolation(&self, provider: ProviderKind) -> Isolation {
        self.isolation
            .unwrap_or_else(|| provider.default_isolation())
    }

    /// git for the goals of `project` isolated in worktrees under `settings`
    /// (none: `None`), each goal's repository opened; a usage error when git
    /// is missing or too old, or a repository cannot be opened (a folder this
    /// user cannot write, a missing `--base-ref`, a rebase in progress, a
    /// remote that does not answer or refuses the goal branch).
    pub(crate) async fn git(
        &self,
        settings: &RunSettings,
        project: &porki::project::Project,
        secrets: &porki::llm::Secrets,
    ) -> anyhow::Result<Option<Arc<porki::agent::GitContext>>> {
        let goals = settings.worktree_goals(project);
        if goals.is_empty() {
            return Ok(None);
        }
        let git = porki::git::Git::detect(None, secrets)
            .await
            .map_err(|e| usage(format!("goal {} uses worktrees: {e}", goals.join(", "))))?;
        let context = porki::agent::GitContext::new(
            git,
            self.base_ref.clone(),
            self.git_remote.clone(),
            self.worktree_setup.clone(),
        );
        let workspaces = settings.workspaces();
        for goal in &goals {
            let workspace = workspaces.for_goal(goal).dir;
            context
                .open(goal, &workspace)
                .await
                .map_err(|e| usage(format!("goal {goal}: {e}")))?;
        }
        Ok(Some(Arc::new(context)))
    }
}

/// Where the store is; shared by the commands that read or run it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Redis URL of the store (`redis://HOST:PORT[/DB]`; a Redis Cluster: `redis+cluster://HOST:PORT[,HOST:PORT…]`), or `memory://` for the embedded one.
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
    /// Who answers: a CLI (claude, codex, any command), an HTTP API (openai, anthropic), or offline.
    #[arg(long, env = "PORKI_LLM_PROVIDER", value_enum, ignore_case = true, default_value_t = ProviderKind::Claude)]
    llm_provider: ProviderKind,
    /// Program for CLI providers (required for `command`).
    #[arg(long)]
    llm_cli: Option<PathBuf>,
    /// What claude or codex may do in the workspace: read-only, edit (files in the workspace) or full.
    #[arg(long, env = "PORKI_LLM_PERMISSIONS", value_enum, ignore_case = true, default_value_t = Permissions::Edit)]
    llm_permissions: Permissions,
    /// Extra argument for the CLI program, after porki's own; it replaces a porki option it names (repeatable).
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

/// A positive, finite amount of US dollars (`2.50`, `$2.50`).
fn parse_usd(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    match trimmed.strip_prefix('$').unwrap_or(trimmed).parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 => Ok(usd),
        _ => Err(format!(
            "`{text}` is not an amount of US dollars: give a positive number such as 2.50"
        )),
    }
}

/// Bad input on the command line or in a file: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] as an `anyhow` error.
fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    UsageError(message.to_string()).into()
}

impl RunArgs {
    /// The run's settings from the flags: the one step from command line to library.
    fn settings(&self) -> RunSettings {
        RunSettings {
            lease_ttl: self.lease_ttl,
            guard_ttl: None,
            llm_timeout: self.llm.llm_timeout,
            workspace: self.workspace.clone(),
            artifacts_dir: self.artifacts_dir.clone(),
            llm_select: self.llm.llm_select,
            llm_summarize: self.llm.llm_summarize,
            max_attempts: self.max_attempts,
            max_review_cycles: self.max_review_cycles,
            replan: self.replan,
            ranking: self.ranking == Switch::On,
            slot_before_claim: self.slot_before_claim == Switch::On,
            llm_max_concurrency: self.llm.llm_max_concurrency,
            llm_wait: Duration::from_secs(self.llm.llm_concurrency_wait_seconds),
            goal_token_budget: self.goal_token_budget,
            goal_budget_usd: self.goal_budget_usd,
            spawn_mode: self.spawn_mode,
            spawn_limit: self.spawn_limit,
            until_done: self.until_done,
            grace: self.grace,
            restart: RestartPolicy {
                max_restarts: self.max_restarts,
                window: self.restart_window,
            },
            metrics: Default::default(),
            retain_finished: self.retain.retain_finished,
            cleanup_every: porki::store::gc::DEFAULT_CLEANUP_EVERY,
            isolation: self.isolation.default_isolation(self.llm.llm_provider),
            git: None,
        }
    }
}

/// Builds the provider the flags name; `secrets` are kept from its children.
fn provider(args: &LlmArgs, secrets: llm::Secrets) -> anyhow::Result<Arc<dyn LlmProvider>> {
    let config = ProviderConfig {
        kind: args.llm_provider,
        cli: args.llm_cli.clone(),
        extra_args: args.llm_extra_arg.clone(),
        model: args.llm_model.clone(),
        base_url: args.llm_base_url.clone(),
        api_key_env: args.llm_api_key_env.clone(),
        timeout: args.llm_timeout,
        permissions: args.llm_permissions,
        secrets,
    };
    let provider = llm::provider_from_config(&config).map_err(usage)?;
    match provider.preflight() {
        Some(problem) => Err(usage(problem)),
        None => Ok(provider),
    }
}

/// Opens the store to run on, retrying an unreachable Redis with backoff (a
/// wrong URL fails at once).
async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let mut backoff = Duration::from_millis(500);
    let shown = store::redact(url);
    loop {
        match store::open(url).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_wrong_url() => return Err(usage(e)),
            Err(e) => {
                tracing::warn!(url = %shown, error = %e, retry_in = ?backoff, "cannot reach the store; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Opens the store once, failing fast: a status read should not wait for Redis.
async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("memory:") {
        return Err(usage(format!(
            "{url} is the store of one process and holds nothing here: point --redis-url (or PORKI_REDIS_URL) at the orchestrator's Redis"
        )));
    }
    match store::open(url).await {
        Ok(store) => Ok(store),
        Err(e) if e.is_wrong_url() => Err(usage(e)),
        // The error's text already carries its cause; keep the message one line.
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the store at {}: {e}",
            store::redact(url)
        )),
    }
}

/// Checks a `--goal` value before it reaches the store.
fn check_goal(goal: &str) -> anyhow::Result<()> {
    check_id("goal id", goal).map_err(usage)
}

/// The exit-2 error for a goal the store does not have, listing the ones it has.
async fn unknown_goal(store: &dyn Store, goal: &str, url: &str) -> anyhow::Error {
    let known = match store.goals().await {
        Ok(goals) if goals.is_empty() => "it has no goals yet".to_string(),
        Ok(goals) => format!("it has {}", goals.join(", ")),
        Err(_) => "its goals could not be listed".to_string(),
    };
    usage(format!(
        "goal {goal:?} is not in the store at {} ({known}): check the name with `porki status`, or start the orchestrator so it plans the goal",
        store::redact(url)
    ))
}

/// Runs `future` to its end on a runtime of this thread: the one-shot
/// commands (status, graph, gc, approve, reject) need no more.
fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// Sends [`porki::supervisor::Shutdown`] to `supervisor` on SIGINT or SIGTERM.
fn shut_down_on_signal(supervisor: actix::Addr<porki::supervisor::Supervisor>) {
    actix::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(%signal, "shutting down: no new claims, held tasks given back");
        supervisor.do_send(porki::supervisor::Shutdown);
    });
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
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
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Approve(args)) => decide::approve(args),
        Some(Command::Reject(args)) => decide::reject(args),
        Some(Command::Gc(args)) => gc::run(args),
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
            ExitCode::from(e.downcast_ref::<UsageError>().map_or(1, |_| 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `porki run`'s flag defaults and [`RunSettings::default`] must not drift apart.
    #[test]
    fn run_flag_defaults_are_the_library_defaults() {
        // Unset the variables clap reads, so the machine's environment cannot leak in.
        for var in [
            "PORKI_SPAWN_MODE",
            "PORKI_SPAWN_LIMIT",
            "PORKI_LLM_MAX_CONCURRENCY",
            "PORKI_LLM_CONCURRENCY_WAIT_SECONDS",
            "PORKI_RETAIN_FINISHED",
            "PORKI_ISOLATION",
            "PORKI_RANKING",
            "PORKI_SLOT_BEFORE_CLAIM",
            "PORKI_GOAL_BUDGET_USD",
        ] {
            assert!(
                std::env::var_os(var).is_none(),
                "unset {var} to run this test"
            );
        }
        let cli = Cli::try_parse_from(["porki", "run", "--instructions", "x.md"]).unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("not a run command");
        };
        let parsed = args.settings();
        // The isolation default follows the provider (claude: worktrees); the
        // library's follows what its tests' providers need (one folder).
        let default = RunSettings {
            isolation: ProviderKind::Claude.default_isolation(),
            ..RunSettings::default()
        };
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn provider_and_spawn_mode_take_any_case_and_refuse_others_naming_the_choices() {
        let cli = Cli::try_parse_from([
            "porki",
            "run",
            "--llm-provider",
            "OFFLINE",
            "--spawn-mode",
            "Static",
        ])
        .unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("not a run command");
        };
        assert_eq!(args.llm.llm_provider, ProviderKind::Offline);
        assert_eq!(args.spawn_mode, SpawnMode::Static);
        for (flag, value, choices) in [
            (
                "--llm-provider",
                "gpt",
                "claude, codex, command, openai, anthropic, offline",
            ),
            ("--spawn-mode", "live", "static, dynamic"),
        ] {
            let err = Cli::try_parse_from(["porki", "run", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(value) && err.contains(choices), "{err}");
        }
    }

    #[test]
    fn a_goal_budget_in_usd_must_be_a_positive_finite_amount() {
        let parse = |value: &str| {
            let flag = format!("--goal-budget-usd={value}");
            Cli::try_parse_from(["porki", "run", flag.as_str()]).map(|cli| {
                let Some(Command::Run(args)) = cli.command else {
                    panic!("not a run command");
                };
                args.settings().goal_budget_usd
            })
        };
        assert_eq!(parse("2.5").unwrap(), Some(2.5));
        assert_eq!(parse("$0.75").unwrap(), Some(0.75));
        for bad in ["0", "-1", "inf", "NaN", "ten"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("not an amount of US dollars") && err.contains("positive"),
                "{bad}: {err}"
            );
        }
    }
}
