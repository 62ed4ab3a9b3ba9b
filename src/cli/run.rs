//! `porki run`: the orchestrator, or one prompt.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::{Context as _, bail};
use porki::agent::AgentSettings;
use porki::llm::{self, LlmProvider, LlmRequest, Phase, ProviderConfig, ProviderKind};
use porki::planner::PlannerSettings;
use porki::project::Project;
use porki::store::prelude::*;
use porki::store::{self, StoreError};
use porki::supervisor::{SpawnMode, Supervisor, SupervisorConfig};

use super::{LlmArgs, RunArgs};

/// Bad input on the command line or in a file: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    UsageError(message.to_string()).into()
}

/// Builds the provider the flags name.
pub fn provider(args: &LlmArgs) -> anyhow::Result<Arc<dyn LlmProvider>> {
    let kind: ProviderKind = args.llm_provider.parse().map_err(usage)?;
    let config = ProviderConfig {
        kind,
        cli: args.llm_cli.clone(),
        extra_args: args.llm_extra_arg.clone(),
        model: args.llm_model.clone(),
        base_url: args.llm_base_url.clone(),
        api_key_env: args.llm_api_key_env.clone(),
        timeout: args.llm_timeout,
    };
    llm::provider_from_config(&config).map_err(usage)
}

/// Opens the store, retrying an unreachable Redis with backoff (a malformed URL fails at once).
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match store::open(url).await {
            Ok(store) => return Ok(store),
            Err(e @ StoreError::BadUrl { .. }) => return Err(usage(e)),
            Err(e) => {
                tracing::warn!(%url, error = %e, retry_in = ?backoff, "cannot reach the store; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// `porki run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.role != "orchestrator" {
        bail!(usage(format!(
            "--role {:?} is not known: the only role is `orchestrator`",
            args.role
        )));
    }
    let provider = provider(&args.llm)?;
    if let Some(prompt) = &args.prompt {
        return one_shot(&*provider, prompt, args.llm.llm_timeout);
    }
    let path = args
        .instructions
        .clone()
        .ok_or_else(|| usage("--instructions PATH is required (or --prompt for one prompt)"))?;
    let project = Project::load(&path).map_err(usage)?;
    let spawn_mode: SpawnMode = args.spawn_mode.parse().map_err(usage)?;
    let system = System::new();
    let started: anyhow::Result<()> = system.block_on(async {
        let store = open_store(&args.store.redis_url).await?;
        Supervisor::new(SupervisorConfig {
            project,
            store,
            provider,
            agent: AgentSettings {
                lease_ttl: args.lease_ttl,
                llm_timeout: args.llm.llm_timeout,
                artifact_dir: args.artifacts_dir.clone(),
                // The guard frees a crashed process's agent names: no longer than a lease.
                llm_select: args.llm.llm_select,
                llm_summarize: args.llm.llm_summarize,
                guard_ttl: args
                    .lease_ttl
                    .clamp(Duration::from_secs(1), Duration::from_secs(15)),
                ..AgentSettings::default()
            },
            planner: PlannerSettings {
                llm_timeout: args.llm.llm_timeout,
                max_attempts: args.max_attempts,
                replan: args.replan,
                ..PlannerSettings::default()
            },
            llm_max_concurrency: args.llm.llm_max_concurrency,
            llm_wait: Duration::from_secs(args.llm.llm_concurrency_wait_seconds),
            goal_token_budget: args.goal_token_budget,
            spawn_mode,
            spawn_limit: args.spawn_limit,
            until_done: args.until_done,
            grace: args.grace,
            max_restarts: args.max_restarts,
            restart_window: args.restart_window,
        })
        .start();
        Ok(())
    });
    started?;
    let code = system.run_with_code().context("the actor system failed")?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `porki run --prompt`: one call, answer on stdout.
fn one_shot(
    provider: &dyn LlmProvider,
    prompt: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let request = LlmRequest {
        phase: Phase::Execute,
        prompt: prompt.to_string(),
        timeout,
    };
    let response = runtime.block_on(provider.call(&request))?;
    println!("{}", response.text);
    Ok(ExitCode::SUCCESS)
}
